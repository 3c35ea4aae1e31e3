//! The publisher goes away and a new one takes over the stream: viewers keep their session and
//! their tracks, and what they receive continues seamlessly (same SSRC, sequence numbers without
//! a jump or reset, timestamps that keep moving forward), starting with the new publisher's
//! keyframe. While a publisher is live, a second one is refused with 409.

use anyhow::Context;
use directo_tests::{
    CONNECT_TIMEOUT, ClientError, MEDIA_TIMEOUT, MediaKind, PublisherConfig,
    RTCPeerConnectionState, TestServer, Viewer, ViewerConfig,
};
use signaling_proto::ErrorCode;
use std::time::{Duration, Instant};

const STREAM: &str = "relay";
const VIEWERS: usize = 2;
/// The most an RTP timestamp may advance across the switch: far more than the test takes,
/// far less than a random new base would give.
const MAX_TIMESTAMP_STEP_SECONDS: i64 = 60;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn viewers_continue_seamlessly_across_a_publisher_change() -> anyhow::Result<()> {
    let server = TestServer::start().await?;
    let first = server.publish(STREAM, PublisherConfig::default()).await?;
    first.wait_connected(CONNECT_TIMEOUT).await?;

    let mut viewers = Vec::new();
    for _ in 0..VIEWERS {
        viewers.push(server.view(STREAM, ViewerConfig::default()).await?);
    }
    for viewer in &viewers {
        viewer.wait_connected(CONNECT_TIMEOUT).await?;
        viewer.wait_for_packets(50, 100, MEDIA_TIMEOUT).await?;
    }

    // A second publisher while the first is live is refused.
    match server.publish(STREAM, PublisherConfig::default()).await {
        Err(ClientError::Status { status, body, text }) => {
            assert_eq!(status, 409, "{text}");
            assert_eq!(body.map(|b| b.code), Some(ErrorCode::StreamBusy), "{text}");
        }
        Err(other) => return Err(other).context("second publisher"),
        Ok(_) => panic!("a second publisher was accepted while the first was live"),
    }

    let status = first.disconnect(server.http()).await?;
    assert!(status == 200 || status == 204, "DELETE answered {status}");

    // Anything the first publisher had in flight has landed by now.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let switched_at = Instant::now();
    let video_before: Vec<u64> = viewers
        .iter()
        .map(|v| v.packets(MediaKind::Video))
        .collect();
    let second = server
        .publish(STREAM, PublisherConfig::default())
        .await
        .context("a new publisher after the first one's DELETE")?;
    second.wait_connected(CONNECT_TIMEOUT).await?;
    for (viewer, before) in viewers.iter().zip(&video_before) {
        let audio_now = viewer.packets(MediaKind::Audio);
        viewer
            .wait_for_packets(audio_now + 50, before + 200, MEDIA_TIMEOUT)
            .await
            .context("viewers got no media from the new publisher")?;
    }

    for (i, viewer) in viewers.iter().enumerate() {
        check_continuity(i, viewer, switched_at);
    }
    Ok(())
}

fn check_continuity(i: usize, viewer: &Viewer, switched_at: Instant) {
    let history = viewer.state_history();
    assert!(
        !history.iter().any(|s| matches!(
            s,
            RTCPeerConnectionState::Disconnected
                | RTCPeerConnectionState::Failed
                | RTCPeerConnectionState::Closed
        )),
        "viewer {i} lost its connection: {history:?}"
    );
    let report = viewer.report();
    for (kind, clock_rate) in [(MediaKind::Audio, 48_000), (MediaKind::Video, 90_000)] {
        let log = report.track(kind);
        assert_eq!(
            log.tracks_opened, 1,
            "viewer {i} {kind:?}: a new track opened"
        );
        assert_eq!(
            log.ssrcs().len(),
            1,
            "viewer {i} {kind:?}: SSRC changed: {:?}",
            log.ssrcs()
        );

        // A jump or reset of the numbering at the switch counts its whole jump as missing.
        let sequence = log.sequence();
        assert!(
            sequence.within_loss_budget(),
            "viewer {i} {kind:?}: sequence numbers jump or reset at the switch, or more was \
             lost than a busy loopback drops: {sequence:?}"
        );

        let steps = log.timestamp_steps();
        let max_step = MAX_TIMESTAMP_STEP_SECONDS * clock_rate;
        let bad: Vec<_> = steps
            .iter()
            .filter(|s| s.delta < 0 || s.delta > max_step)
            .collect();
        assert!(
            bad.is_empty(),
            "viewer {i} {kind:?}: timestamps go back or leap at the switch: {bad:?}"
        );
    }

    // The first video packet from the new publisher starts its keyframe.
    let after_switch = report
        .video
        .records
        .iter()
        .find(|r| r.at > switched_at)
        .copied();
    assert!(
        after_switch.is_some_and(|r| r.keyframe_start),
        "viewer {i}: first packet after the switch {after_switch:?} does not start a keyframe"
    );
}
