//! A viewer may join a stream before anyone publishes it; it starts receiving, from a
//! keyframe, when the publisher arrives.

use anyhow::Context;
use directo_tests::{
    CONNECT_TIMEOUT, MEDIA_TIMEOUT, MediaKind, PublisherConfig, TestServer, ViewerConfig,
};
use std::time::Duration;

const STREAM: &str = "early";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_viewer_waiting_for_the_publisher_receives_when_it_arrives() -> anyhow::Result<()> {
    let server = TestServer::start().await?;
    let viewer = server
        .view(STREAM, ViewerConfig::default())
        .await
        .context("WHEP before the stream is live must be accepted")?;
    viewer
        .wait_connected(CONNECT_TIMEOUT)
        .await
        .context("a viewer of an offline stream should still complete ICE and DTLS")?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        viewer.packets(MediaKind::Video),
        0,
        "media before any publisher?"
    );

    let publisher = server.publish(STREAM, PublisherConfig::default()).await?;
    publisher.wait_connected(CONNECT_TIMEOUT).await?;
    viewer
        .wait_for_packets(50, 100, MEDIA_TIMEOUT)
        .await
        .context("the waiting viewer got no media after the publisher arrived")?;

    let report = viewer.report();
    assert_eq!(
        report.video.first_is_keyframe(),
        Some(true),
        "first video packet {:?} does not start a keyframe",
        report.video.first
    );
    for kind in [MediaKind::Audio, MediaKind::Video] {
        let sequence = report.track(kind).sequence();
        assert!(sequence.within_loss_budget(), "{kind:?}: {sequence:?}");
    }
    assert_eq!(report.video.tracks_opened, 1);
    assert_eq!(report.audio.tracks_opened, 1);

    let info = server
        .stream(STREAM)
        .await?
        .context("stream missing from the API")?;
    assert!(info.live, "{info:?}");
    assert_eq!(info.viewers, 1, "{info:?}");
    Ok(())
}
