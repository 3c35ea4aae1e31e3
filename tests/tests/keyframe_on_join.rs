//! A viewer that joins in the middle of a group of pictures gets a keyframe right away: the
//! server asks the publisher with a PLI instead of waiting for the next scheduled keyframe,
//! or, when the newest keyframe is recent, starts the viewer on it from its cache.

use anyhow::Context;
use directo_tests::{
    CONNECT_TIMEOUT, MEDIA_TIMEOUT, PublisherConfig, TestServer, ViewerConfig, wait_until,
};
use std::time::Duration;

const STREAM: &str = "midgop";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_viewer_joining_mid_gop_gets_a_keyframe_from_a_pli() -> anyhow::Result<()> {
    let server = TestServer::start().await?;
    // No scheduled keyframe after the first within the test: any other one was requested.
    let publisher = server
        .publish(STREAM, PublisherConfig::keyframes_on_request())
        .await?;
    publisher.wait_connected(CONNECT_TIMEOUT).await?;

    for (round, settle) in [(1, 3), (2, 2)] {
        // Let the stream run so the join lands well inside the group of pictures.
        tokio::time::sleep(Duration::from_secs(settle)).await;
        let requests_before = publisher.keyframe_requests();
        let keyframes_before = publisher.keyframes_sent();

        let viewer = server.view(STREAM, ViewerConfig::default()).await?;
        viewer.wait_connected(CONNECT_TIMEOUT).await?;
        wait_until(
            &format!("viewer {round} to receive a keyframe"),
            MEDIA_TIMEOUT,
            || viewer.keyframes() >= 1,
        )
        .await
        .with_context(|| {
            format!(
                "publisher got {} keyframe requests, sent {} keyframes",
                publisher.keyframe_requests(),
                publisher.keyframes_sent()
            )
        })?;

        assert!(
            publisher.keyframe_requests() > requests_before,
            "viewer {round}: the publisher got no PLI/FIR for the new viewer"
        );
        assert!(publisher.keyframes_sent() > keyframes_before);
        let report = viewer.report();
        let first = report
            .video
            .first
            .with_context(|| format!("viewer {round}: no video"))?;
        assert!(
            publisher.began_at_a_keyframe(&first),
            "viewer {round}: the video does not begin at a keyframe: first packet {first:?}"
        );
        eprintln!(
            "viewer {round}: first keyframe {:?} after joining; publisher saw {} PLI, {} FIR",
            viewer.time_to_first_keyframe(),
            publisher.plis(),
            publisher.firs()
        );
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn viewers_joining_soon_after_a_keyframe_start_on_it_from_the_cache() -> anyhow::Result<()> {
    let server = TestServer::start().await?;
    // Keyframes every 2 s whatever is asked: a viewer either starts from the cache or waits.
    let publisher = server
        .publish(
            "cached",
            PublisherConfig {
                keyframe_interval: Duration::from_secs(2),
                ignore_keyframe_requests: true,
                ..PublisherConfig::default()
            },
        )
        .await?;
    publisher.wait_connected(CONNECT_TIMEOUT).await?;
    // One join every 100 ms for a whole keyframe interval: some land just after a keyframe.
    let mut viewers = Vec::new();
    for _ in 0..20 {
        viewers.push(server.view("cached", ViewerConfig::default()).await?);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for (i, viewer) in viewers.iter().enumerate() {
        viewer.wait_connected(CONNECT_TIMEOUT).await?;
        viewer
            .wait_for_packets(50, 150, MEDIA_TIMEOUT)
            .await
            .with_context(|| format!("viewer {i} got no media"))?;
    }
    let started = server.metric("directo_cached_starts_total").await?;
    assert!(
        started.is_some_and(|n| n >= 1.0),
        "no viewer was started from the cache: {started:?}"
    );
    // Whichever way it started, each one's video begins at a keyframe and runs on without a
    // gap from what the cache sent into the live packets.
    for (i, viewer) in viewers.iter().enumerate() {
        let report = viewer.report();
        let first = report.video.first.context("no video")?;
        assert!(
            publisher.began_at_a_keyframe(&first),
            "viewer {i}: the video does not begin at a keyframe: first packet {first:?}"
        );
        let sequence = report.video.sequence();
        assert!(sequence.within_loss_budget(), "viewer {i}: {sequence:?}");
    }
    Ok(())
}
