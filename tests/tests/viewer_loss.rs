//! Viewers on a lossy link (every 23rd VP8 packet dropped inside the client, before its NACK
//! generator sees it). One that negotiated RTX gets every lost packet back over RTX, under its
//! own sequence number, so its picture never breaks. One that did not is never sent a packet
//! twice — a sequence number sent again would reuse its SRTP nonce — and recovers from fresh
//! keyframes instead.

use std::collections::HashSet;

use anyhow::Context;
use directo_tests::{
    CONNECT_TIMEOUT, MEDIA_TIMEOUT, PublisherConfig, TestServer, TrackLog, ViewerConfig,
};

const STREAM: &str = "viewer-loss";
const LOSE_EVERY: u64 = 23;
/// The newest packets, whose repair may still be on its way when the test looks.
const STILL_REPAIRING: i64 = 60;

/// Sequence numbers (unwrapped) between the first and the newest packets minus the last
/// [`STILL_REPAIRING`] that never arrived, and how many arrived more than once.
fn missing_and_repeated(log: &TrackLog) -> (usize, usize) {
    let mut seen = HashSet::new();
    let mut repeated = 0;
    let mut last: Option<i64> = None;
    for record in &log.records {
        let seq = match last {
            None => i64::from(record.seq),
            Some(prev) => prev + i64::from(record.seq.wrapping_sub(prev as u16) as i16),
        };
        last = Some(seq);
        if !seen.insert(seq) {
            repeated += 1;
        }
    }
    let (Some(&first), Some(&newest)) = (seen.iter().min(), seen.iter().max()) else {
        return (0, repeated);
    };
    let missing = (first..newest - STILL_REPAIRING)
        .filter(|seq| !seen.contains(seq))
        .count();
    (missing, repeated)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_video_comes_back_over_rtx_or_as_a_keyframe() -> anyhow::Result<()> {
    let server = TestServer::start().await?;
    let publisher = server
        .publish(STREAM, PublisherConfig::keyframes_on_request())
        .await?;
    publisher.wait_connected(CONNECT_TIMEOUT).await?;
    let with_rtx = server
        .view(
            STREAM,
            ViewerConfig {
                lose_every_nth_video: Some(LOSE_EVERY),
                ..ViewerConfig::default()
            },
        )
        .await?;
    let without_rtx = server
        .view(
            STREAM,
            ViewerConfig {
                rtx: false,
                lose_every_nth_video: Some(LOSE_EVERY),
                ..ViewerConfig::default()
            },
        )
        .await?;
    for viewer in [&with_rtx, &without_rtx] {
        viewer.wait_connected(CONNECT_TIMEOUT).await?;
        // About five seconds of video: ~100 packets a second.
        viewer
            .wait_for_packets(100, 500, MEDIA_TIMEOUT)
            .await
            .context("video on a lossy link")?;
    }

    // The viewers' NACKs (and receiver reports) were read by the engine itself, past their
    // `rtc` connections, and none was refused.
    let read = server.metric("directo_viewer_rtcp_total").await?;
    assert!(read.is_some_and(|n| n > 0.0), "viewer RTCP read: {read:?}");
    let rejected = server.metric("directo_viewer_rtcp_rejected_total").await?;
    assert!(
        rejected.unwrap_or(0.0) == 0.0,
        "viewer RTCP rejected: {rejected:?}"
    );

    let report = with_rtx.report();
    let (missing, repeated) = missing_and_repeated(&report.video);
    // `webrtc`'s NACK generator does not see what comes back over RTX and asks again, so a
    // repaired packet may arrive more than once; that is the client's business.
    println!(
        "with RTX: {} VP8 packets lost on the link, {missing} never repaired, {repeated} \
         received more than once, {} keyframe starts",
        with_rtx.video_lost(),
        report.video.keyframes
    );
    assert!(with_rtx.video_lost() > 10, "the link lost packets");
    assert_eq!(missing, 0, "every lost packet came back over RTX");
    assert_eq!(
        report.video.ssrcs().len(),
        1,
        "repairs land on the video track"
    );

    let report = without_rtx.report();
    let (missing, repeated) = missing_and_repeated(&report.video);
    println!(
        "without RTX: {} VP8 packets lost on the link, {missing} never repaired, {repeated} \
         received twice, {} keyframe starts",
        without_rtx.video_lost(),
        report.video.keyframes
    );
    assert!(without_rtx.video_lost() > 10, "the link lost packets");
    assert_eq!(repeated, 0, "no sequence number sent twice");
    assert!(missing > 0, "nothing was resent");
    assert!(
        report.video.keyframes >= 3,
        "fresh keyframes after the losses: {}",
        report.video.keyframes
    );
    Ok(())
}
