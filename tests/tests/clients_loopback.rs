//! The test clients against each other, with no server: the publisher's synthetic media reaches
//! a viewer intact, and a viewer's PLI gets a keyframe out of the publisher. This is what makes
//! a failure in the end-to-end tests a server finding rather than a client one.

use directo_tests::{
    CONNECT_TIMEOUT, MEDIA_TIMEOUT, MediaKind, Publisher, PublisherConfig, RtpRecord, Viewer,
    ViewerConfig, wait_until,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publisher_media_reaches_a_viewer_and_pli_gets_a_keyframe() -> anyhow::Result<()> {
    // A long keyframe interval: any keyframe after the first is the answer to our PLI.
    let config = PublisherConfig::keyframes_on_request();
    let mut publisher = Publisher::new(config.clone()).await?;
    let viewer = Viewer::new(ViewerConfig::default()).await?;
    let offer = publisher.create_offer().await?;
    let answer = viewer.answer_offer(offer).await?;
    publisher.accept_answer(answer).await?;
    publisher.wait_connected(CONNECT_TIMEOUT).await?;
    viewer.wait_connected(CONNECT_TIMEOUT).await?;

    // About two seconds of media.
    viewer.wait_for_packets(100, 150, MEDIA_TIMEOUT).await?;

    let plis_before = publisher.plis();
    let keyframes_sent_before = publisher.keyframes_sent();
    let keyframes_seen_before = viewer.keyframes();
    viewer.request_keyframe().await?;
    wait_until("the publisher to count the PLI", MEDIA_TIMEOUT, || {
        publisher.plis() > plis_before
    })
    .await?;
    wait_until("a keyframe in answer to the PLI", MEDIA_TIMEOUT, || {
        viewer.keyframes() > keyframes_seen_before
    })
    .await?;
    assert!(publisher.keyframes_sent() > keyframes_sent_before);
    assert_eq!(publisher.write_errors(), 0, "the stack refused RTP writes");

    let report = viewer.report();
    assert_eq!(report.video.codec.as_deref(), Some("video/VP8"));
    assert_eq!(
        report
            .audio
            .codec
            .as_deref()
            .map(str::to_ascii_lowercase)
            .as_deref(),
        Some("audio/opus")
    );
    assert_eq!(report.video.tracks_opened, 1);
    assert_eq!(report.audio.tracks_opened, 1);
    assert_eq!(report.video.ssrcs(), vec![publisher.video_ssrc()]);

    for kind in [MediaKind::Audio, MediaKind::Video] {
        let log = report.track(kind);
        let sequence = log.sequence();
        assert!(
            sequence.within_loss_budget(),
            "{kind:?} lost more than a busy loopback drops: {sequence:?}"
        );
        let backwards: Vec<_> = log
            .timestamp_steps()
            .into_iter()
            .filter(|s| s.delta < 0)
            .collect();
        assert!(
            backwards.is_empty(),
            "{kind:?} timestamps went back: {backwards:?}"
        );
    }

    // Video frames: packets of one frame share a timestamp and only the last carries the marker.
    let video = &report.video.records;
    for pair in video.windows(2) {
        let frame_ends = pair[0].timestamp != pair[1].timestamp;
        assert_eq!(
            pair[0].marker, frame_ends,
            "marker bit wrong at {:?}",
            pair[0]
        );
        if frame_ends {
            assert!(
                pair[1].frame_start,
                "a frame must start with S=1: {:?}",
                pair[1]
            );
        } else {
            assert!(!pair[1].frame_start, "S=1 inside a frame: {:?}", pair[1]);
        }
    }
    let keyframe_sizes = frame_sizes(video, true);
    assert!(!keyframe_sizes.is_empty());
    assert!(
        keyframe_sizes.iter().all(|&n| n == config.keyframe_packets),
        "{keyframe_sizes:?}"
    );
    let delta_sizes = frame_sizes(video, false);
    assert!(
        delta_sizes.iter().all(|&n| n == config.delta_packets),
        "{delta_sizes:?}"
    );
    eprintln!(
        "first video packet is a keyframe: {:?}; time to first keyframe: {:?}",
        report.video.first_is_keyframe(),
        viewer.time_to_first_keyframe()
    );
    Ok(())
}

/// Packet counts of the complete keyframes (`keyframes`) or inter frames received.
fn frame_sizes(records: &[RtpRecord], keyframes: bool) -> Vec<usize> {
    let mut sizes = Vec::new();
    let mut start: Option<(usize, bool)> = None;
    for (i, r) in records.iter().enumerate() {
        if r.frame_start {
            start = Some((i, r.keyframe_start));
        }
        if r.marker
            && let Some((s, key)) = start.take()
            && key == keyframes
        {
            sizes.push(i - s + 1);
        }
    }
    sizes
}
