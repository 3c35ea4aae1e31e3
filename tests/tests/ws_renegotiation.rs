//! Server-initiated renegotiation over `/ws`: a viewer whose first offer lacks video (it
//! joined before the stream had any) is offered the video track when the publisher goes live,
//! answers, and receives video from a keyframe on without a new session.

use anyhow::Context;
use directo_tests::{
    CONNECT_TIMEOUT, MEDIA_TIMEOUT, MediaKind, PublisherConfig, TestServer, Viewer, ViewerConfig,
    WsClient,
};
use signaling_proto::{ClientMessage, Role, ServerMessage};
use std::time::Duration;

const REPLY_TIMEOUT: Duration = Duration::from_secs(20);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_viewer_is_offered_video_when_the_publisher_adds_it() -> anyhow::Result<()> {
    const STREAM: &str = "reneg";
    let server = TestServer::start().await?;

    // The viewer joins first, asking for audio only.
    let mut ws = WsClient::connect(&server.ws_url()).await?;
    let viewer = Viewer::new(ViewerConfig::default()).await?;
    let offer = viewer.create_offer_for(&[MediaKind::Audio]).await?;
    ws.send(&ClientMessage::Join {
        stream: STREAM.to_owned(),
        role: Role::Viewer,
        key: None,
        name: None,
        sdp: Some(offer),
    })
    .await?;
    let (answer, _) = ws
        .recv_until(REPLY_TIMEOUT, |m| match m {
            ServerMessage::Answer { sdp } => Some(sdp.clone()),
            _ => None,
        })
        .await
        .context("waiting for the answer")?;
    viewer.accept_answer(answer).await?;
    viewer.wait_connected(CONNECT_TIMEOUT).await?;

    // The publisher goes live with audio and video: the server offers the viewer video.
    let publisher = server.publish(STREAM, PublisherConfig::default()).await?;
    publisher.wait_connected(CONNECT_TIMEOUT).await?;
    let (offer, _) = ws
        .recv_until(MEDIA_TIMEOUT, |m| match m {
            ServerMessage::Offer { sdp } => Some(sdp.clone()),
            _ => None,
        })
        .await
        .context("waiting for the server's renegotiation offer")?;
    assert!(
        offer.contains("m=video"),
        "the server offer adds no video: {offer}"
    );
    let answer = viewer.answer_offer(offer).await?;
    ws.send(&ClientMessage::Answer { sdp: answer }).await?;

    viewer
        .wait_for_packets(10, 60, MEDIA_TIMEOUT)
        .await
        .context("media after renegotiation")?;
    let report = viewer.report();
    assert_eq!(
        report.video.first_is_keyframe(),
        Some(true),
        "first video packet {:?} does not start a keyframe",
        report.video.first
    );
    ws.send(&ClientMessage::Leave {}).await?;
    Ok(())
}
