//! A viewer learns from its chat channel when the stream goes live and when it ends, and how
//! many watch it, without asking the API: the server pushes `stream.status` and `presence`
//! on the channel the viewer already has.

use directo_tests::{
    CHAT_TIMEOUT, CONNECT_TIMEOUT, PublisherConfig, TestServer, ViewerConfig, wait_until,
};
use signaling_proto::ChatServerMessage;

const STREAM: &str = "premiere";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_chat_channel_says_live_then_offline() -> anyhow::Result<()> {
    let server = TestServer::start().await?;
    // The viewer arrives first and waits for the presenter.
    let early = server
        .view_chat(STREAM, ViewerConfig::chat_as("Early"))
        .await?;
    let chat = early.chat()?;
    // Right after the history: not live yet.
    let received = chat.received();
    let history = received
        .iter()
        .position(|m| matches!(m, ChatServerMessage::History { .. }))
        .unwrap_or(0);
    chat.wait_stream_status_from(history, false, CHAT_TIMEOUT)
        .await?;
    wait_until(
        "presence to count the viewer watching",
        CHAT_TIMEOUT,
        || chat.watching() == Some(1),
    )
    .await?;

    let from = chat.len();
    let publisher = server
        .publish(
            STREAM,
            PublisherConfig {
                fps: 10,
                ..PublisherConfig::default()
            },
        )
        .await?;
    publisher.wait_connected(CONNECT_TIMEOUT).await?;
    let (kinds, _) = chat
        .wait_stream_status_from(from, true, CHAT_TIMEOUT)
        .await?;
    assert!(
        kinds.iter().any(|k| k == "video") && kinds.iter().any(|k| k == "audio"),
        "the live status names the tracks: {kinds:?}"
    );

    // Someone joining now hears `live` right after the history.
    let late = server
        .view_chat(STREAM, ViewerConfig::chat_as("Late"))
        .await?;
    let late_chat = late.chat()?;
    let heard = late_chat.received();
    let history = heard
        .iter()
        .position(|m| matches!(m, ChatServerMessage::History { .. }))
        .ok_or_else(|| anyhow::anyhow!("no history in {heard:?}"))?;
    let first = late_chat
        .wait_for_from(
            history,
            "a status after the history",
            CHAT_TIMEOUT,
            |m| match m {
                ChatServerMessage::StreamStatus { live, .. } => Some(*live),
                _ => None,
            },
        )
        .await?;
    assert!(first, "a viewer joining a live stream hears `live` first");
    wait_until(
        "presence to count both viewers watching",
        CHAT_TIMEOUT,
        || chat.watching() == Some(2),
    )
    .await?;

    // The presenter ends the stream (WHIP DELETE): both hear it on their channels.
    let from = chat.len();
    let late_from = late_chat.len();
    publisher.disconnect(server.http()).await?;
    chat.wait_stream_status_from(from, false, CHAT_TIMEOUT)
        .await?;
    late_chat
        .wait_stream_status_from(late_from, false, CHAT_TIMEOUT)
        .await?;

    // The viewers stay connected, waiting for the next go-live.
    let from = chat.len();
    let again = server.publish(STREAM, PublisherConfig::default()).await?;
    again.wait_connected(CONNECT_TIMEOUT).await?;
    chat.wait_stream_status_from(from, true, CHAT_TIMEOUT)
        .await?;
    Ok(())
}
