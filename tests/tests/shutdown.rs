//! Stopping the server, cleanly and not: on SIGTERM a live stream's recording is finished
//! (Cues and Duration: seekable) and the process exits within its 10 s grace; after a SIGKILL
//! the chat history is intact on restart and `directo recover` makes the cut-off recording
//! seekable.

use directo_tests::ffmpeg::{has_cues, probe_duration};
use directo_tests::recordings::{recording_files, recover};
use directo_tests::{
    CHAT_TIMEOUT, CONNECT_TIMEOUT, MEDIA_TIMEOUT, PublisherConfig, TestServer, ViewerConfig,
    WsClient, wait_for,
};
use signaling_proto::{ClientMessage, Role};
use std::path::PathBuf;
use std::time::{Duration, Instant};

const STREAM: &str = "ending";
/// The server promises to exit within 10 s of SIGTERM; a little more for a loaded machine.
const EXIT_WITHIN: Duration = Duration::from_secs(12);
/// A recording holding a few seconds of synthetic video is at least this big.
const SOME_MEDIA_BYTES: u64 = 100_000;

/// Waits until `STREAM` has one recording file on disk holding a few seconds of media.
async fn recording_with_media(server: &TestServer) -> anyhow::Result<PathBuf> {
    Ok(wait_for(
        "a recording with a few seconds of media",
        MEDIA_TIMEOUT,
        || async {
            let file = recording_files(server, STREAM).into_iter().next();
            let size = file
                .as_ref()
                .and_then(|f| std::fs::metadata(f).ok())
                .map_or(0, |m| m.len());
            Ok(file.filter(|_| size >= SOME_MEDIA_BYTES))
        },
    )
    .await?)
}

/// The file's duration as ffprobe reads it, and whether it carries a Cues index.
fn seekable(file: &std::path::Path) -> anyhow::Result<(Option<f64>, bool)> {
    Ok((probe_duration(file)?, has_cues(file)?))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_finishes_the_live_recording_and_exits_in_time() -> anyhow::Result<()> {
    let mut server = TestServer::start().await?;
    let publisher = server.publish(STREAM, PublisherConfig::default()).await?;
    publisher.wait_connected(CONNECT_TIMEOUT).await?;
    let viewer = server.view(STREAM, ViewerConfig::default()).await?;
    viewer.wait_for_packets(5, 5, MEDIA_TIMEOUT).await?;
    let file = recording_with_media(&server).await?;
    assert!(
        !seekable(&file)?.1,
        "a live recording has no Cues yet: the test would prove nothing"
    );

    let asked = Instant::now();
    let clean = server.terminate(EXIT_WITHIN).await?;
    eprintln!(
        "exited {:.2} s after SIGTERM",
        asked.elapsed().as_secs_f64()
    );
    assert!(clean, "the server did not exit successfully after SIGTERM");

    let (duration, cues) = seekable(&file)?;
    assert!(cues, "no Cues in {} after SIGTERM", file.display());
    let duration = duration.unwrap_or_default();
    assert!(
        duration >= 1.0,
        "{} plays {duration} s after SIGTERM",
        file.display()
    );
    let info = directo_recorder::RecordingInfo::read(&file)?;
    assert!(
        info.seekable,
        "the recorder reads it as not seekable: {info:?}"
    );
    eprintln!("the recording plays {duration:.2} s");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_sigkill_chat_survives_and_recover_makes_the_recording_seekable() -> anyhow::Result<()>
{
    let mut server = TestServer::start().await?;
    let publisher = server.publish(STREAM, PublisherConfig::default()).await?;
    publisher.wait_connected(CONNECT_TIMEOUT).await?;

    // A chat-only member over /ws, speaking the raw protocol.
    let mut ws = WsClient::connect(&server.ws_url()).await?;
    ws.send(&ClientMessage::Join {
        stream: STREAM.into(),
        role: Role::Viewer,
        key: None,
        name: Some("Nia".into()),
        sdp: None,
    })
    .await?;
    ws.send_text(r#"{"type":"chat.send","text":"hi"}"#).await?;
    // The export lists a message once it is logged.
    wait_for("the chat message to be logged", CHAT_TIMEOUT, || async {
        let log = server.chat_export(STREAM).await?;
        Ok(log
            .iter()
            .any(|m| m.message.text == "hi" && m.message.from.name == "Nia")
            .then_some(()))
    })
    .await?;
    let file = recording_with_media(&server).await?;

    server.kill();
    drop(publisher);
    assert!(
        !seekable(&file)?.1,
        "a crashed recording has no Cues: the test would prove nothing"
    );
    let printed = recover(&file).await?;
    eprintln!("directo recover: {}", printed.trim());
    let (duration, cues) = seekable(&file)?;
    assert!(cues, "no Cues in {} after recover", file.display());
    assert!(
        duration.unwrap_or_default() >= 1.0,
        "{} plays {duration:?} s after recover",
        file.display()
    );

    server.restart().await?;
    let member = server.chat_ws(STREAM, Some("Ode"), None).await?;
    let history = member.wait_history(CHAT_TIMEOUT).await?;
    assert!(
        history
            .messages
            .iter()
            .any(|m| m.text == "hi" && m.from.name == "Nia"),
        "the history after a crash: {:?}",
        history.messages
    );
    Ok(())
}
