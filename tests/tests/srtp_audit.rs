//! SRTP keys are never used twice (issue 13): with `--srtp-audit` the server records every
//! (SSRC, index) pair each viewer's send leg protects, and watches what `rtc` sends for
//! forwarded SSRCs (a second context); any reuse counts in `directo_srtp_index_reuse_total`.
//!
//! A VP8 publisher and viewers of every kind: on lossy links with RTX (their NACKs are
//! answered with retransmissions), on a lossy link without RTX (it gets keyframes instead),
//! on a clean link; one leaves mid-stream and two join mid-stream, one of them on a lossy link.
//! At the end the counter is on `/metrics` and is 0, and retransmissions did happen: the RTX
//! viewers lost packets on their links and got every one of them back.

use std::collections::HashSet;
use std::time::Duration;

use anyhow::Context;
use directo_tests::{
    CONNECT_TIMEOUT, MEDIA_TIMEOUT, MediaKind, PublisherConfig, ServerOptions, TestServer,
    TrackLog, Viewer, ViewerConfig,
};

const STREAM: &str = "audited";
/// The newest packets, whose repair may still be on its way when the test looks.
const STILL_REPAIRING: i64 = 60;

/// Sequence numbers (unwrapped) between the first and the newest packets minus the last
/// [`STILL_REPAIRING`] that never arrived.
fn missing(log: &TrackLog) -> usize {
    let mut seen = HashSet::new();
    let mut last: Option<i64> = None;
    for record in &log.records {
        let seq = match last {
            None => i64::from(record.seq),
            Some(prev) => prev + i64::from(record.seq.wrapping_sub(prev as u16) as i16),
        };
        last = Some(seq);
        seen.insert(seq);
    }
    let (Some(&first), Some(&newest)) = (seen.iter().min(), seen.iter().max()) else {
        return 0;
    };
    (first..newest - STILL_REPAIRING)
        .filter(|seq| !seen.contains(seq))
        .count()
}

fn lossy(every: u64, rtx: bool) -> ViewerConfig {
    ViewerConfig {
        rtx,
        lose_every_nth_video: Some(every),
        ..ViewerConfig::default()
    }
}

/// Waits until `viewer` got `more` video packets beyond what it has now.
async fn more_video(viewer: &Viewer, more: u64) -> anyhow::Result<()> {
    let now = viewer.packets(MediaKind::Video);
    viewer
        .wait_for_packets(0, now + more, MEDIA_TIMEOUT)
        .await
        .context("video kept coming")?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_srtp_index_is_protected_twice_with_loss_retransmissions_and_churn() -> anyhow::Result<()>
{
    let server = TestServer::start_with(ServerOptions {
        extra_args: vec!["--srtp-audit".into()],
        ..ServerOptions::default()
    })
    .await?;
    let publisher = server
        .publish(
            STREAM,
            PublisherConfig {
                keyframe_interval: Duration::from_secs(3),
                ..PublisherConfig::default()
            },
        )
        .await?;
    publisher.wait_connected(CONNECT_TIMEOUT).await?;

    let rtx_a = server.view(STREAM, lossy(19, true)).await?;
    let rtx_b = server.view(STREAM, lossy(31, true)).await?;
    let plain = server.view(STREAM, lossy(23, false)).await?;
    let clean = server.view(STREAM, ViewerConfig::default()).await?;
    let leaving = server.view(STREAM, ViewerConfig::default()).await?;
    for viewer in [&rtx_a, &rtx_b, &plain, &clean, &leaving] {
        viewer.wait_connected(CONNECT_TIMEOUT).await?;
        viewer.wait_for_packets(20, 200, MEDIA_TIMEOUT).await?;
    }

    // Mid-stream: one leaves, two join (one of them on a lossy link with RTX).
    leaving.disconnect(server.http()).await?;
    let late_rtx = server.view(STREAM, lossy(17, true)).await?;
    let late_clean = server.view(STREAM, ViewerConfig::default()).await?;
    for viewer in [&late_rtx, &late_clean] {
        viewer.wait_connected(CONNECT_TIMEOUT).await?;
    }
    // About three more seconds of video at everyone (~100 packets a second).
    for viewer in [&rtx_a, &rtx_b, &plain, &clean, &late_rtx, &late_clean] {
        more_video(viewer, 300).await?;
    }

    // Retransmissions happened: the RTX viewers' links lost packets and every one came back.
    for (name, viewer) in [
        ("rtx_a", &rtx_a),
        ("rtx_b", &rtx_b),
        ("late_rtx", &late_rtx),
    ] {
        let lost = viewer.video_lost();
        let never_repaired = missing(&viewer.report().video);
        println!("{name}: {lost} VP8 packets lost on the link, {never_repaired} never repaired");
        assert!(lost >= 5, "{name}'s link lost packets: {lost}");
        assert_eq!(
            never_repaired, 0,
            "{name} got every lost packet back over RTX"
        );
    }
    assert!(
        plain.video_lost() >= 5,
        "the viewer without RTX lost packets"
    );

    let reused = server.metric("directo_srtp_index_reuse_total").await?;
    println!("directo_srtp_index_reuse_total = {reused:?}");
    assert_eq!(
        reused,
        Some(0.0),
        "the SRTP audit counter is on /metrics and no (SSRC, index) was protected twice"
    );
    Ok(())
}
