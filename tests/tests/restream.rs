//! Restreaming to RTMP: a stream published over WHIP (real WebRTC, VP8 or H264 with Opus)
//! reaches RTMP receivers on loopback (`ffmpeg -listen 1`) as FLV with H264 and AAC that
//! ffprobe decodes; two destinations at once; a receiver killed and started again gets the
//! stream back while the WebRTC viewer loses nothing; a destination where nothing listens is
//! retried and says why; the stream key never reaches the server's log or the API.
//!
//! Needs Debian's `ffmpeg`/`ffprobe` and `cargo build -p directo`. No timing is asserted:
//! waits are for events, with generous timeouts.

use anyhow::{Context, ensure};
use directo_testkit::scratch::scratch_dir;
use directo_tests::ffmpeg::{
    SourceVideo, decode_errors, decoded_video_frames, probe_packets, probe_streams,
};
use directo_tests::{
    CONNECT_TIMEOUT, MediaKind, MediaPublisher, MediaPublisherConfig, MediaSource, TestServer,
    ViewerConfig, wait_for,
};
use reqwest::StatusCode;
use signaling_proto::{ErrorBody, ErrorCode, RestreamInfo, RestreamStatus};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// How long a destination may take to reach a state (encoder start, probing, RTMP
/// handshake, backoff) on a loaded 2-core machine.
const STATUS_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a publisher may take to send its source (paced in real time).
const SEND_TIMEOUT: Duration = Duration::from_secs(120);
/// A keyframe every second at 30 fps.
const GOP: u32 = 30;

/// `ffmpeg -listen 1` receiving RTMP on a loopback port into an FLV file; killed on drop.
struct RtmpReceiver {
    child: Child,
    out: PathBuf,
}

impl RtmpReceiver {
    fn start(port: u16, out: &Path) -> anyhow::Result<Self> {
        let child = Command::new("ffmpeg")
            .args([
                "-hide_banner",
                "-loglevel",
                "error",
                "-y",
                "-listen",
                "1",
                "-i",
            ])
            .arg(format!("rtmp://127.0.0.1:{port}/live/ignored"))
            .args(["-c", "copy", "-f", "flv"])
            .arg(out)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting ffmpeg -listen (apt-get install -y ffmpeg)")?;
        Ok(RtmpReceiver {
            child,
            out: out.to_owned(),
        })
    }

    /// Waits for the receiver to end on its own (the sender closed), killing it after
    /// `timeout`; returns its file.
    async fn finish(mut self, timeout: Duration) -> PathBuf {
        let deadline = std::time::Instant::now() + timeout;
        while std::time::Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        self.out.clone()
    }
}

impl Drop for RtmpReceiver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

fn restreams_url(server: &TestServer, stream: &str) -> reqwest::Url {
    server.url(&format!("/api/streams/{stream}/restreams"))
}

async fn add(
    server: &TestServer,
    stream: &str,
    body: serde_json::Value,
) -> anyhow::Result<(StatusCode, serde_json::Value)> {
    let response = server
        .http()
        .post(restreams_url(server, stream))
        .bearer_auth(server.publish_key())
        .json(&body)
        .send()
        .await?;
    let status = response.status();
    Ok((status, response.json().await?))
}

async fn list(server: &TestServer, stream: &str) -> anyhow::Result<Vec<RestreamInfo>> {
    let response = server
        .http()
        .get(restreams_url(server, stream))
        .bearer_auth(server.publish_key())
        .send()
        .await?;
    ensure!(
        response.status() == StatusCode::OK,
        "GET restreams: {}",
        response.status()
    );
    Ok(response.json().await?)
}

/// Adds `rtmp://127.0.0.1:{port}/live` with `key`; returns its id.
async fn add_local(
    server: &TestServer,
    stream: &str,
    port: u16,
    key: &str,
) -> anyhow::Result<String> {
    let (status, body) = add(
        server,
        stream,
        serde_json::json!({"url": format!("rtmp://127.0.0.1:{port}/live"), "key": key, "name": format!("local {port}")}),
    )
    .await?;
    ensure!(
        status == StatusCode::CREATED,
        "POST restreams: {status} {body}"
    );
    let info: RestreamInfo = serde_json::from_value(body)?;
    ensure!(
        !info.key.contains(key),
        "the API returned the key: {info:?}"
    );
    Ok(info.id)
}

/// Waits until destination `id` is in `status`; returns what the API says of it then.
async fn wait_status(
    server: &TestServer,
    stream: &str,
    id: &str,
    status: RestreamStatus,
) -> anyhow::Result<RestreamInfo> {
    let found = wait_for(
        &format!("restream {id} {status:?}"),
        STATUS_TIMEOUT,
        || async move {
            let all = list(server, stream)
                .await
                .map_err(|e| directo_tests::ClientError::Server(e.to_string()))?;
            Ok(all.into_iter().find(|d| d.id == id && d.status == status))
        },
    )
    .await;
    match found {
        Ok(info) => Ok(info),
        Err(e) => Err(anyhow::anyhow!(
            "{e}; the destinations: {:?}\n{}",
            list(server, stream).await,
            server.log_tail()
        )),
    }
}

/// What ffprobe finds in a received FLV.
fn check_flv(file: &Path) -> anyhow::Result<(usize, f64, f64)> {
    let streams = probe_streams(file)?;
    let mut codecs: Vec<(String, String)> = streams
        .iter()
        .map(|s| (s.codec_type.clone(), s.codec_name.clone()))
        .collect();
    codecs.sort();
    ensure!(
        codecs
            == [
                ("audio".to_owned(), "aac".to_owned()),
                ("video".to_owned(), "h264".to_owned())
            ],
        "{} holds {codecs:?}",
        file.display()
    );
    let frames = decoded_video_frames(file)? as usize;
    let errors = decode_errors(file)?;
    ensure!(
        errors.trim().is_empty(),
        "decoding {} failed: {errors}",
        file.display()
    );
    let packets = probe_packets(file)?;
    let span = |video: bool| -> (f64, f64) {
        let times: Vec<f64> = packets
            .iter()
            .filter(|p| p.video == video)
            .filter_map(|p| p.pts)
            .collect();
        let first = times.iter().copied().fold(f64::INFINITY, f64::min);
        let last = times.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        (first, last)
    };
    let (video_first, video_last) = span(true);
    let (audio_first, audio_last) = span(false);
    Ok((
        frames,
        (video_last - video_first).max(0.0),
        // How far apart the two tracks start and end: both cover the same time.
        (video_first - audio_first)
            .abs()
            .max((video_last - audio_last).abs()),
    ))
}

async fn publish(
    server: &TestServer,
    stream: &str,
    source: &MediaSource,
) -> anyhow::Result<MediaPublisher> {
    let publisher = MediaPublisher::connect_whip(
        server.http(),
        &server.whip_url(stream),
        Some(server.publish_key()),
        source,
        MediaPublisherConfig::default(),
    )
    .await?;
    publisher.wait_connected(CONNECT_TIMEOUT).await?;
    Ok(publisher)
}

/// One codec's run: a destination added before going live gets the whole stream.
async fn restreams_as_h264_and_aac(video: SourceVideo, stream: &str) -> anyhow::Result<()> {
    const KEY: &str = "live_secret_key_4f9a";
    let dir = scratch_dir("restream")?;
    let port = free_port()?;
    let receiver = RtmpReceiver::start(port, &dir.join("received.flv"))?;
    let server = TestServer::start().await?;
    let id = add_local(&server, stream, port, KEY).await?;
    let waiting = list(&server, stream).await?;
    ensure!(
        waiting.len() == 1 && waiting[0].status == RestreamStatus::Waiting,
        "before going live: {waiting:?}"
    );

    let source = MediaSource::make(video, 10, GOP)?;
    let publisher = publish(&server, stream, &source).await?;
    let live = wait_status(&server, stream, &id, RestreamStatus::Live).await?;
    let (sent, _) = publisher.finish(server.http(), SEND_TIMEOUT).await?;
    let file = receiver.finish(STATUS_TIMEOUT).await;
    let (frames, video_s, apart_s) = check_flv(&file)?;
    let sent_s = sent.end_ms() as f64 / 1000.0;
    println!(
        "{stream}: {frames} H264 frames over {video_s:.2} s received of {sent_s:.2} s sent; audio \
         and video ends {apart_s:.3} s apart; live at {:?} bit/s",
        live.bitrate_bps
    );
    ensure!(frames > 0, "no picture decoded");
    // The whole stream from the first picture on arrives: the destination starts at a
    // keyframe within a few seconds of going live, and the end is flushed.
    ensure!(
        video_s >= sent_s / 2.0,
        "{video_s:.2} s of video received of {sent_s:.2} s sent"
    );
    ensure!(
        apart_s < 1.0,
        "audio and video cover different times ({apart_s:.3} s apart)"
    );
    // The stream ended: the destination waits for the next go-live.
    wait_status(&server, stream, &id, RestreamStatus::Waiting).await?;
    ensure!(
        !server.log().contains(KEY),
        "the stream key is in the server's log"
    );
    let _ = std::fs::remove_dir_all(dir);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vp8_and_opus_arrive_as_h264_and_aac() -> anyhow::Result<()> {
    restreams_as_h264_and_aac(SourceVideo::Vp8, "restream-vp8").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h264_is_passed_through_and_opus_becomes_aac() -> anyhow::Result<()> {
    restreams_as_h264_and_aac(SourceVideo::H264, "restream-h264").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_destinations_and_one_that_comes_back_while_viewers_lose_nothing() -> anyhow::Result<()>
{
    const STREAM: &str = "restream-two";
    let dir = scratch_dir("restream")?;
    let (port_a, port_b) = (free_port()?, free_port()?);
    let receiver_a = RtmpReceiver::start(port_a, &dir.join("a1.flv"))?;
    let receiver_b = RtmpReceiver::start(port_b, &dir.join("b.flv"))?;
    let server = TestServer::start().await?;
    let id_a = add_local(&server, STREAM, port_a, "key-a-1234").await?;
    let id_b = add_local(&server, STREAM, port_b, "key-b-5678").await?;

    let source = MediaSource::make(SourceVideo::Vp8, 40, GOP)?;
    let publisher = publish(&server, STREAM, &source).await?;
    let viewer = server.view(STREAM, ViewerConfig::default()).await?;
    viewer.wait_connected(CONNECT_TIMEOUT).await?;
    wait_status(&server, STREAM, &id_a, RestreamStatus::Live).await?;
    wait_status(&server, STREAM, &id_b, RestreamStatus::Live).await?;

    // A's receiver dies: A retries and says why; B goes on.
    drop(receiver_a);
    let retrying = wait_status(&server, STREAM, &id_a, RestreamStatus::Retrying).await?;
    ensure!(
        retrying.error.is_some(),
        "retrying without a reason: {retrying:?}"
    );
    println!("A after its receiver died: {retrying:?}");
    let receiver_a = RtmpReceiver::start(port_a, &dir.join("a2.flv"))?;
    let back = wait_status(&server, STREAM, &id_a, RestreamStatus::Live).await?;
    println!("A back: {back:?}");
    let b = list(&server, STREAM)
        .await?
        .into_iter()
        .find(|d| d.id == id_b);
    ensure!(
        b.as_ref()
            .is_some_and(|b| b.status == RestreamStatus::Live && b.attempts == 1),
        "B was disturbed: {b:?}"
    );

    publisher.finish(server.http(), SEND_TIMEOUT).await?;
    // The viewer is unaffected by a destination coming and going: nothing lost beyond what a
    // busy loopback drops (the same budget as every other test).
    let video = viewer.report().video.sequence();
    println!("the WebRTC viewer's video: {video:?}");
    ensure!(
        video.within_loss_budget(),
        "the WebRTC viewer lost packets: {video:?}"
    );
    ensure!(
        viewer.packets(MediaKind::Audio) > 0,
        "the viewer got no audio"
    );
    let (frames_a, seconds_a, _) = check_flv(&receiver_a.finish(STATUS_TIMEOUT).await)?;
    let (frames_b, seconds_b, _) = check_flv(&receiver_b.finish(STATUS_TIMEOUT).await)?;
    println!(
        "after the restart A got {frames_a} frames ({seconds_a:.1} s); B {frames_b} ({seconds_b:.1} s)"
    );
    ensure!(
        frames_a > 0 && frames_b > frames_a,
        "A {frames_a} frames, B {frames_b}"
    );
    let _ = std::fs::remove_dir_all(dir);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_destination_where_nothing_listens_retries_with_a_reason_and_input_is_checked()
-> anyhow::Result<()> {
    const STREAM: &str = "restream-refused";
    const KEY: &str = "never-log-this-key-77";
    let server = TestServer::start().await?;

    // Bad input: clear codes.
    for body in [
        serde_json::json!({"url": "https://a.example/live", "key": "k"}),
        serde_json::json!({"url": "rtmp://127.0.0.1/live", "key": ""}),
        serde_json::json!({"url": "rtmp://127.0.0.1/live", "key": "with space"}),
        serde_json::json!({"url": "rtmp://127.0.0.1/live", "key": "k", "name": "n".repeat(65)}),
    ] {
        let (status, reply) = add(&server, STREAM, body.clone()).await?;
        let error: ErrorBody = serde_json::from_value(reply)?;
        ensure!(
            status == StatusCode::BAD_REQUEST && error.code == ErrorCode::InvalidRestream,
            "{body} → {status} {error:?}"
        );
    }
    let (status, _) = add(&server, STREAM, serde_json::json!({"url": 5})).await?;
    ensure!(
        status == StatusCode::BAD_REQUEST,
        "a malformed body: {status}"
    );
    let anonymous = server
        .http()
        .get(restreams_url(&server, STREAM))
        .send()
        .await?;
    ensure!(
        anonymous.status() == StatusCode::UNAUTHORIZED,
        "no credential: {}",
        anonymous.status()
    );
    let unknown = server
        .http()
        .delete(server.url(&format!("/api/streams/{STREAM}/restreams/nope")))
        .bearer_auth(server.publish_key())
        .send()
        .await?;
    ensure!(
        unknown.status() == StatusCode::NOT_FOUND,
        "DELETE unknown: {}",
        unknown.status()
    );

    // Nothing listens on the port.
    let port = free_port()?;
    let id = add_local(&server, STREAM, port, KEY).await?;
    let source = MediaSource::make(SourceVideo::Vp8, 20, GOP)?;
    let publisher = publish(&server, STREAM, &source).await?;
    let retrying = wait_status(&server, STREAM, &id, RestreamStatus::Retrying).await?;
    println!("nothing listening: {retrying:?}");
    let reason = retrying.error.clone().context("no reason given")?;
    ensure!(!reason.contains(KEY), "the reason shows the key: {reason}");
    let listed = serde_json::to_string(&list(&server, STREAM).await?)?;
    ensure!(!listed.contains(KEY), "the API shows the key: {listed}");

    // Stopping it works while live.
    let deleted = server
        .http()
        .delete(server.url(&format!("/api/streams/{STREAM}/restreams/{id}")))
        .bearer_auth(server.publish_key())
        .send()
        .await?;
    ensure!(
        deleted.status() == StatusCode::NO_CONTENT,
        "DELETE: {}",
        deleted.status()
    );
    ensure!(
        list(&server, STREAM).await?.is_empty(),
        "still listed after DELETE"
    );
    publisher.close().await?;
    ensure!(
        !server.log().contains(KEY),
        "the stream key is in the server's log"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publisher_who_comes_back_within_the_grace_keeps_the_restream() -> anyhow::Result<()> {
    const STREAM: &str = "restream-back";
    /// Past the 3 s after which a silent publisher may be replaced, well within the 10 s
    /// grace the recording and the restream wait.
    const AWAY: Duration = Duration::from_secs(4);
    let dir = scratch_dir("restream")?;
    let port = free_port()?;
    let receiver = RtmpReceiver::start(port, &dir.join("back.flv"))?;
    let server = TestServer::start().await?;
    let id = add_local(&server, STREAM, port, "key-back-0042").await?;
    let source = MediaSource::make(SourceVideo::Vp8, 8, GOP)?;

    // The first connection is lost (not stopped), the publisher comes back.
    let mut first = publish(&server, STREAM, &source).await?;
    wait_status(&server, STREAM, &id, RestreamStatus::Live).await?;
    first.wait_done(SEND_TIMEOUT).await?;
    first.close().await?;
    tokio::time::sleep(AWAY).await;
    let second = publish(&server, STREAM, &source).await?;
    second.wait_sent_until(2_000, SEND_TIMEOUT).await?;
    let during = list(&server, STREAM).await?;
    ensure!(
        during
            .iter()
            .any(|d| d.id == id && d.status == RestreamStatus::Live && d.attempts == 1),
        "the restream did not keep going across the reconnect: {during:?}"
    );
    second.finish(server.http(), SEND_TIMEOUT).await?;
    let (frames, seconds, _) = check_flv(&receiver.finish(STATUS_TIMEOUT).await)?;
    println!("across the reconnect: {frames} frames over {seconds:.1} s in one RTMP session");
    // Pictures of both publishers, in one connection.
    ensure!(seconds > 10.0, "only {seconds:.1} s of video");
    let _ = std::fs::remove_dir_all(dir);
    Ok(())
}
