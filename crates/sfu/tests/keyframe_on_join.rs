//! A viewer that joins mid-stream gets audio at once and no video until the first packet of
//! a keyframe; from there it gets every packet, numbered without gaps. Started from the cache
//! (once it can decrypt), that keyframe is the newest one the cache holds when it is recent.

mod common;

use std::time::Duration;

use common::*;
use directo_sfu::{Codec, MediaKind, Stream, is_keyframe_start};

/// Later than this after a keyframe, a viewer is not started on it from the cache.
const STALE: Duration = Duration::from_millis(600);

#[test]
fn video_starts_at_a_keyframe_audio_at_once() {
    let t0 = start();
    let mut stream = Stream::new();
    let mut publisher = Publisher::new(1, 0x1111, 0x2222, 40_000, 1_000_000);
    stream.set_publisher(publisher.id, publisher.tracks(), t0);
    feed(&mut stream, 1, publisher.video_frame(true, 3), t0);
    feed(&mut stream, 1, publisher.video_frame(false, 2), t0);

    let joined = t0 + Duration::from_millis(50);
    stream.add_subscriber(10, viewer_tracks(0xa0, 0xb0), joined);
    drain(&mut stream);

    let mut before_keyframe = Vec::new();
    for i in 0..5 {
        let now = joined + Duration::from_millis(20 * i);
        before_keyframe.extend(feed(&mut stream, 1, publisher.video_frame(false, 2), now));
        before_keyframe.extend(feed(&mut stream, 1, vec![publisher.audio_packet()], now));
    }
    assert!(rtp_for(&before_keyframe, 10, MediaKind::Video).is_empty());
    let audio = rtp_for(&before_keyframe, 10, MediaKind::Audio);
    assert_eq!(audio.len(), 5);
    assert_continuous(&audio);

    let mut after = Vec::new();
    let later = joined + Duration::from_millis(200);
    after.extend(feed(&mut stream, 1, publisher.video_frame(true, 4), later));
    for _ in 0..3 {
        after.extend(feed(&mut stream, 1, publisher.video_frame(false, 2), later));
    }
    let video = rtp_for(&after, 10, MediaKind::Video);
    assert_eq!(video.len(), 4 + 3 * 2);
    assert!(is_keyframe_start(Codec::Vp8, &video[0].payload));
    assert_continuous(&video);
    assert!(video.iter().all(|p| p.header.ssrc == 0xb0));
    assert!(video.iter().all(|p| p.header.payload_type == VIEWER_VP8_PT));
}

#[test]
fn each_viewer_starts_at_its_own_first_keyframe() {
    let t0 = start();
    let mut stream = Stream::new();
    let mut publisher = Publisher::new(1, 0x1111, 0x2222, 1, 1);
    stream.set_publisher(1, publisher.tracks(), t0);
    stream.add_subscriber(10, viewer_tracks(0xa0, 0xb0), t0);
    let first = feed(&mut stream, 1, publisher.video_frame(true, 2), t0);
    stream.add_subscriber(11, viewer_tracks(0xa1, 0xb1), t0);
    let mut rest = feed(&mut stream, 1, publisher.video_frame(false, 2), t0);
    rest.extend(feed(&mut stream, 1, publisher.video_frame(true, 2), t0));
    assert_eq!(rtp_for(&first, 10, MediaKind::Video).len(), 2);
    assert_eq!(rtp_for(&rest, 10, MediaKind::Video).len(), 4);
    let late_viewer = rtp_for(&rest, 11, MediaKind::Video);
    assert_eq!(late_viewer.len(), 2);
    assert!(is_keyframe_start(Codec::Vp8, &late_viewer[0].payload));
}

#[test]
fn a_viewer_joining_soon_after_a_keyframe_starts_on_it_from_the_cache() {
    let t0 = start();
    let mut stream = Stream::new();
    let mut publisher = Publisher::new(1, 0x1111, 0x2222, 40_000, 1_000_000);
    stream.set_publisher(publisher.id, publisher.tracks(), t0);
    let ms = |n| t0 + Duration::from_millis(n);
    feed(&mut stream, 1, publisher.video_frame(false, 2), t0);
    feed(&mut stream, 1, publisher.video_frame(true, 3), ms(33));
    feed(&mut stream, 1, publisher.video_frame(false, 2), ms(66));
    feed(&mut stream, 1, publisher.video_frame(false, 2), ms(100));

    // Once the viewer has its keys (its first RTCP came), the keyframe and what followed it,
    // at once.
    stream.add_subscriber(10, viewer_tracks(0xa0, 0xb0), ms(110));
    let at_join = drain(&mut stream);
    assert!(rtp_for(&at_join, 10, MediaKind::Video).is_empty());
    assert!(stream.start_from_cache(10, ms(120)));
    let at_join = drain(&mut stream);
    let mut video = rtp_for(&at_join, 10, MediaKind::Video);
    assert_eq!(video.len(), 3 + 2 + 2);
    assert!(is_keyframe_start(Codec::Vp8, &video[0].payload));

    // Live packets go on from there without a gap, in the publisher's timing.
    let live = feed(&mut stream, 1, publisher.video_frame(false, 2), ms(133));
    let live = rtp_for(&live, 10, MediaKind::Video);
    assert_eq!(live.len(), 2);
    // Three frames (3,000 ticks each) after the keyframe.
    assert_eq!(
        live[0]
            .header
            .timestamp
            .wrapping_sub(video[0].header.timestamp),
        3 * 3000
    );
    video.extend(live);
    assert_continuous(&video);
}

#[test]
fn a_stale_keyframe_is_not_replayed() {
    let t0 = start();
    let mut stream = Stream::new();
    let mut publisher = Publisher::new(1, 0x1111, 0x2222, 40_000, 1_000_000);
    stream.set_publisher(publisher.id, publisher.tracks(), t0);
    feed(&mut stream, 1, publisher.video_frame(true, 3), t0);
    feed(
        &mut stream,
        1,
        publisher.video_frame(false, 2),
        t0 + STALE / 2,
    );
    stream.add_subscriber(10, viewer_tracks(0xa0, 0xb0), t0 + STALE);
    assert!(!stream.start_from_cache(10, t0 + STALE));
    assert!(rtp_for(&drain(&mut stream), 10, MediaKind::Video).is_empty());
}
