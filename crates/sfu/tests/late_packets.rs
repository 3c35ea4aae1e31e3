//! Late packets from the publisher (retransmissions arriving out of order) reach viewers that
//! have started, at the right sequence number, and never reach a viewer before its first
//! keyframe; a duplicate never reaches a viewer twice (a sequence number sent again, with a new
//! transport-wide number, would reuse its SRTP nonce).

mod common;

use common::*;
use directo_sfu::{MediaKind, Stream};

#[test]
fn late_packets_fill_the_gap_they_left() {
    let now = start();
    let mut stream = Stream::new();
    let mut publisher = Publisher::new(1, 0x1111, 0x2222, 65_530, 7);
    stream.set_publisher(1, publisher.tracks(), now);
    stream.add_subscriber(10, viewer_tracks(0xa0, 0xb0), now);
    drain(&mut stream);

    let key = publisher.video_frame(true, 3);
    let mut frame = publisher.video_frame(false, 6);
    let late = frame.remove(2);
    let frame_start = frame[0].clone();
    let mut outputs = feed(&mut stream, 1, key, now);
    outputs.extend(feed(&mut stream, 1, frame, now));
    let before = rtp_for(&outputs, 10, MediaKind::Video);
    assert_eq!(before.len(), 8);

    let filled = feed(&mut stream, 1, vec![late.clone()], now);
    let filled = rtp_for(&filled, 10, MediaKind::Video);
    assert_eq!(filled.len(), 1);
    // It lands exactly in the hole, across the 16-bit wrap.
    let mut seqs: Vec<u16> = before.iter().map(|p| p.header.sequence_number).collect();
    seqs.insert(5, filled[0].header.sequence_number);
    for pair in seqs.windows(2) {
        assert_eq!(pair[1], pair[0].wrapping_add(1));
    }
    assert_eq!(filled[0].payload, late.payload);

    // A duplicate, of the late packet or of any other, is not forwarded again.
    let duplicates = feed(&mut stream, 1, vec![late, frame_start], now);
    assert!(rtp_for(&duplicates, 10, MediaKind::Video).is_empty());
    assert_eq!(stream.stats(now).duplicates_dropped, 2);
}

#[test]
fn late_packets_from_before_the_keyframe_are_not_forwarded() {
    let now = start();
    let mut stream = Stream::new();
    let mut publisher = Publisher::new(1, 0x1111, 0x2222, 100, 7);
    stream.set_publisher(1, publisher.tracks(), now);
    stream.add_subscriber(10, viewer_tracks(0xa0, 0xb0), now);
    let mut delta = publisher.video_frame(false, 2);
    let late = delta.remove(0);
    feed(&mut stream, 1, delta, now);
    feed(&mut stream, 1, publisher.video_frame(true, 2), now);
    let outputs = feed(&mut stream, 1, vec![late], now);
    assert!(rtp_for(&outputs, 10, MediaKind::Video).is_empty());
}
