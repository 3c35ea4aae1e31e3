//! Signaling over `/ws`: a viewer joins with its offer in the `join` message, gets `joined`
//! and an `answer`, and receives media. Unknown or malformed messages get an `error` reply and
//! the socket stays open.

use anyhow::Context;
use directo_tests::{
    CONNECT_TIMEOUT, MEDIA_TIMEOUT, MediaKind, PublisherConfig, TestServer, Viewer, ViewerConfig,
    WsClient,
};
use signaling_proto::{ClientMessage, ErrorCode, Role, ServerMessage};
use std::time::Duration;

/// How long to wait for a reply on `/ws`.
const REPLY_TIMEOUT: Duration = Duration::from_secs(20);

/// Sends a viewer `join` with an offer; returns the session id once `joined` and `answer` came
/// (in either order) and the answer is applied.
async fn join_as_viewer(
    ws: &mut WsClient,
    viewer: &Viewer,
    stream: &str,
) -> anyhow::Result<String> {
    let offer = viewer.create_offer().await?;
    ws.send(&ClientMessage::Join {
        stream: stream.to_owned(),
        role: Role::Viewer,
        key: None,
        name: Some("Ana".to_owned()),
        sdp: Some(offer),
    })
    .await?;
    let mut session = None;
    let mut answer = None;
    while session.is_none() || answer.is_none() {
        match ws
            .recv(REPLY_TIMEOUT)
            .await
            .context("waiting for joined/answer")?
        {
            ServerMessage::Joined {
                session: id,
                stream: joined,
                role,
            } => {
                assert_eq!(joined, stream);
                assert_eq!(role, Role::Viewer);
                // The offer came with the join, so the session exists already.
                let id = id.context("joined without a session id despite the offer")?;
                assert!(!id.is_empty(), "empty session id");
                session = Some(id);
            }
            ServerMessage::Answer { sdp } => answer = Some(sdp),
            ServerMessage::Error { code, message } => {
                anyhow::bail!("join refused: {code:?}: {message}")
            }
            // live, viewers, ... are fine to see on the way.
            _ => {}
        }
    }
    viewer
        .accept_answer(answer.unwrap_or_default())
        .await
        .context("applying the /ws answer")?;
    Ok(session.unwrap_or_default())
}

/// Answers server offers (renegotiation) until the viewer has `video` video packets.
async fn receive_while_answering(
    ws: &mut WsClient,
    viewer: &Viewer,
    video: u64,
) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + MEDIA_TIMEOUT;
    while viewer.packets(MediaKind::Video) < video {
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "only {} video packets over the /ws-negotiated connection",
            viewer.packets(MediaKind::Video)
        );
        match ws.recv(Duration::from_millis(100)).await {
            Ok(ServerMessage::Offer { sdp }) => {
                let answer = viewer.answer_offer(sdp).await?;
                ws.send(&ClientMessage::Answer { sdp: answer }).await?;
            }
            Ok(ServerMessage::Error { code, message }) => {
                anyhow::bail!("server error on /ws: {code:?}: {message}")
            }
            Ok(_) | Err(directo_tests::ClientError::Timeout { .. }) => {}
            Err(other) => return Err(other.into()),
        }
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_viewer_joins_over_ws_and_receives_media() -> anyhow::Result<()> {
    const STREAM: &str = "wslive";
    let server = TestServer::start().await?;
    let publisher = server.publish(STREAM, PublisherConfig::default()).await?;
    publisher.wait_connected(CONNECT_TIMEOUT).await?;

    let mut ws = WsClient::connect(&server.ws_url()).await?;
    let viewer = Viewer::new(ViewerConfig::default()).await?;
    join_as_viewer(&mut ws, &viewer, STREAM).await?;
    viewer.wait_connected(CONNECT_TIMEOUT).await?;
    receive_while_answering(&mut ws, &viewer, 100).await?;

    let report = viewer.report();
    let first = report
        .video
        .first
        .context("no video over the /ws connection")?;
    assert!(
        publisher.began_at_a_keyframe(&first),
        "the video does not begin at a keyframe: first packet {first:?}"
    );
    assert!(report.audio.packets > 0, "no audio over the /ws connection");
    let sequence = report.video.sequence();
    assert!(sequence.within_loss_budget(), "{sequence:?}");

    ws.send(&ClientMessage::Leave {}).await?;
    ws.close().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_messages_get_an_error_and_the_socket_stays_open() -> anyhow::Result<()> {
    const STREAM: &str = "wsbad";
    let server = TestServer::start().await?;
    let mut ws = WsClient::connect(&server.ws_url()).await?;

    let bad = [
        r#"{"type":"dance"}"#.to_owned(),
        "this is not json".to_owned(),
        r#"{"type":"join"}"#.to_owned(),
        r#"[1,2,3]"#.to_owned(),
        serde_json::to_string(&ClientMessage::Answer { sdp: "v=0".into() })?,
    ];
    for text in &bad {
        ws.send_text(text).await?;
        let reply = ws
            .recv(REPLY_TIMEOUT)
            .await
            .with_context(|| format!("no reply to {text:?}, or the socket closed"))?;
        assert!(
            matches!(reply, ServerMessage::Error { .. }),
            "{text:?} got {reply:?} instead of an error"
        );
    }

    // Refusals that name the problem.
    for (stream, role, key, code) in [
        ("bad name", Role::Viewer, None, ErrorCode::InvalidStreamName),
        (
            STREAM,
            Role::Publisher,
            Some("wrong-key"),
            ErrorCode::Unauthorized,
        ),
    ] {
        ws.send(&ClientMessage::Join {
            stream: stream.to_owned(),
            role,
            key: key.map(str::to_owned),
            name: None,
            sdp: None,
        })
        .await?;
        match ws.recv(REPLY_TIMEOUT).await? {
            ServerMessage::Error { code: got, .. } => assert_eq!(got, code, "join {stream:?}"),
            other => panic!("join {stream:?} as {role:?} got {other:?}, expected {code:?}"),
        }
    }

    // The same socket still works: a real join succeeds and media flows.
    let publisher = server.publish(STREAM, PublisherConfig::default()).await?;
    publisher.wait_connected(CONNECT_TIMEOUT).await?;
    let viewer = Viewer::new(ViewerConfig::default()).await?;
    join_as_viewer(&mut ws, &viewer, STREAM).await?;
    viewer.wait_connected(CONNECT_TIMEOUT).await?;
    receive_while_answering(&mut ws, &viewer, 30).await?;
    Ok(())
}
