//! Padding-only packets (bandwidth probes) are not forwarded, and viewers see no sequence
//! gap where they were; late packets still land in the right place.

mod common;

use common::*;
use directo_sfu::{MediaKind, Stream};

#[test]
fn padding_is_dropped_without_a_gap() {
    let now = start();
    let mut stream = Stream::new();
    let mut publisher = Publisher::new(1, 0x1111, 0x2222, 65_530, 1);
    stream.set_publisher(1, publisher.tracks(), now);
    stream.add_subscriber(10, viewer_tracks(0xa0, 0xb0), now);
    let mut outputs = feed(&mut stream, 1, publisher.video_frame(true, 2), now);
    for _ in 0..5 {
        outputs.extend(feed(&mut stream, 1, vec![publisher.video_padding()], now));
    }
    outputs.extend(feed(&mut stream, 1, publisher.video_frame(false, 2), now));
    outputs.extend(feed(&mut stream, 1, vec![publisher.video_padding()], now));
    outputs.extend(feed(&mut stream, 1, publisher.video_frame(false, 2), now));

    let video = rtp_for(&outputs, 10, MediaKind::Video);
    assert_eq!(video.len(), 6);
    assert!(video.iter().all(|p| !p.payload.is_empty()));
    assert_continuous(&video);
    assert_eq!(stream.stats(now).padding_dropped, 6);
}

#[test]
fn late_packets_around_padding_land_in_place() {
    let now = start();
    let mut stream = Stream::new();
    let mut publisher = Publisher::new(1, 0x1111, 0x2222, 300, 1);
    stream.set_publisher(1, publisher.tracks(), now);
    stream.add_subscriber(10, viewer_tracks(0xa0, 0xb0), now);
    let mut outputs = feed(&mut stream, 1, publisher.video_frame(true, 3), now);
    let padding = vec![publisher.video_padding(), publisher.video_padding()];
    let delta = publisher.video_frame(false, 3);
    // The delta frame's first packet is overtaken by the rest of its frame.
    outputs.extend(feed(&mut stream, 1, padding, now));
    outputs.extend(feed(&mut stream, 1, delta[1..].to_vec(), now));
    outputs.extend(feed(&mut stream, 1, vec![delta[0].clone()], now));
    outputs.extend(feed(&mut stream, 1, publisher.video_frame(false, 1), now));

    let mut video = rtp_for(&outputs, 10, MediaKind::Video);
    assert_eq!(video.len(), 7);
    // Arrival order had the late packet after its successors; its number puts it back.
    let late = video.remove(5);
    assert_eq!(late.payload, delta[0].payload);
    video.insert(3, late);
    assert_continuous(&video);
    assert_eq!(video[3].payload, delta[0].payload);
    assert_eq!(video[4].payload, delta[1].payload);
}
