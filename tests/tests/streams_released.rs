//! Ended streams are let go: two hundred streams go live and end, each with a viewer who says
//! something in the chat, and afterwards the server holds no more open files than before
//! (every chat log, recording and socket of those streams closed), lists no stream, and a
//! stream used again gets its chat history back from disk.

use anyhow::Context;
use directo_tests::{
    CHAT_TIMEOUT, CONNECT_TIMEOUT, Publisher, PublisherConfig, ServerOptions, TestServer, Viewer,
    ViewerConfig, wait_until,
};
use futures::{StreamExt, TryStreamExt};
use signaling_proto::StreamInfo;
use std::time::Duration;

const STREAMS: usize = 200;
/// Streams in flight at once: enough to finish in a minute or two on a busy 2-core machine.
const AT_ONCE: usize = 6;
/// Open files the server may hold beyond its baseline once everything ended. The test's
/// HTTP client keeps no idle connection, so this only covers a connection still closing
/// when a count is taken (the server sees the client's FIN an instant after its response).
const SLACK: usize = 2;
/// How long releasing may take: a room lingers 10 s after its stream ended and the chat
/// thread looks every 5 s; a debug build on a loaded machine needs some margin on top.
const RELEASE_TIMEOUT: Duration = Duration::from_secs(90);

fn open_files(pid: u32) -> anyhow::Result<usize> {
    Ok(std::fs::read_dir(format!("/proc/{pid}/fd"))
        .context("reading the server's /proc/<pid>/fd")?
        .count())
}

/// An HTTP client that keeps no idle connection, so the server's socket count does not
/// depend on the client's connection pool.
fn unpooled_client() -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(0)
        .connect_timeout(Duration::from_secs(10))
        .timeout(Duration::from_secs(60))
        .build()?)
}

/// One stream's life: it goes live, a viewer joins its chat and says hello, both leave.
async fn one_stream(
    server: &TestServer,
    http: &reqwest::Client,
    index: usize,
) -> anyhow::Result<()> {
    let stream = format!("churn-{index:03}");
    let publisher = Publisher::connect_whip(
        http,
        &server.whip_url(&stream),
        Some(server.publish_key()),
        PublisherConfig {
            fps: 10,
            payload_size: 200,
            keyframe_packets: 1,
            delta_packets: 1,
            ..PublisherConfig::default()
        },
    )
    .await?;
    publisher.wait_connected(CONNECT_TIMEOUT).await?;
    let viewer = Viewer::connect_whep(
        http,
        &server.whep_url(&stream),
        ViewerConfig::chat_as(&format!("Viewer {index}")),
    )
    .await?;
    viewer.wait_connected(CONNECT_TIMEOUT).await?;
    let chat = viewer.chat()?;
    chat.wait_history(CHAT_TIMEOUT).await?;
    // Live (and so recording) before anyone leaves.
    chat.wait_stream_status_from(0, true, CHAT_TIMEOUT).await?;
    let text = format!("hello from {stream}");
    chat.say(&text).await?;
    chat.wait_message(&text, CHAT_TIMEOUT).await?;
    viewer.disconnect(http).await?;
    publisher.disconnect(http).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_ended_streams_leave_nothing_open() -> anyhow::Result<()> {
    let server = TestServer::start_with(ServerOptions {
        // Four requests a stream, from one address: more than a public server allows.
        extra_args: [
            "--max-requests-per-minute",
            "1000000",
            "--new-sessions-per-second",
            "1000000",
            "--new-sessions-burst",
            "1000000",
        ]
        .map(str::to_owned)
        .to_vec(),
        ..ServerOptions::default()
    })
    .await?;
    let http = unpooled_client()?;
    let pid = server.pid();
    let baseline = open_files(pid)?;

    futures::stream::iter(0..STREAMS)
        .map(|i| {
            let (server, http) = (&server, &http);
            async move {
                one_stream(server, http, i)
                    .await
                    .with_context(|| format!("stream {i}"))
            }
        })
        .buffer_unordered(AT_ONCE)
        .try_collect::<Vec<()>>()
        .await?;
    let after_churn = open_files(pid)?;

    let streams_url = server.url("api/streams");
    let mut now_open = after_churn;
    let released = wait_until("the ended streams' files to close", RELEASE_TIMEOUT, || {
        now_open = open_files(pid).unwrap_or(usize::MAX);
        now_open <= baseline + SLACK
    })
    .await;
    released.with_context(|| {
        format!(
            "open files: {baseline} before, {after_churn} right after the streams ended, \
             {now_open} now"
        )
    })?;
    let listed: Vec<StreamInfo> = http.get(streams_url).send().await?.json().await?;
    assert!(listed.is_empty(), "ended streams still listed: {listed:?}");
    eprintln!(
        "open files: {baseline} before, {after_churn} right after {STREAMS} streams ended, \
         {now_open} once released"
    );

    // The first stream's chat was let go long ago; used again, its history comes back.
    let member = server.chat_ws("churn-000", Some("Returning"), None).await?;
    let history = member.wait_history(CHAT_TIMEOUT).await?;
    assert!(
        history
            .messages
            .iter()
            .any(|m| m.text == "hello from churn-000"),
        "history of a reopened room: {:?}",
        history.messages
    );
    Ok(())
}
