//! A viewer whose client did not negotiate RTX is never sent a packet twice: resending on its
//! media SSRC would reuse an SRTP nonce. Its NACKs are counted, not answered; when it lost a
//! video packet it was sent, the publisher is asked for a keyframe — collapsed and throttled
//! with everyone's requests — and the viewer's picture recovers from that keyframe.

mod common;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use common::*;
use directo_sfu::{KEYFRAME_REQUEST_INTERVAL, KeyframeRequestKind, MediaKind, Stream};
use rtc::rtp::Packet;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// Viewer 10 without RTX and viewer 11 with it, both watching a keyframe and a delta frame;
/// returns what viewer 10 got, once the start's keyframe request may be repeated.
fn watching(t0: Instant) -> (Stream, Publisher, Vec<Packet>, Instant) {
    let mut stream = Stream::new();
    let mut publisher = Publisher::new(1, 0x1111, 0x2222, 65_530, 7);
    stream.set_publisher(1, publisher.tracks(), t0);
    stream.add_subscriber(10, viewer_tracks_without_rtx(0xa0, 0xb0), t0);
    stream.add_subscriber(11, viewer_tracks(0xa1, 0xb1), t0);
    let mut outputs = feed(&mut stream, 1, publisher.video_frame(true, 4), t0);
    outputs.extend(feed(&mut stream, 1, publisher.video_frame(false, 4), t0));
    outputs.extend(feed(&mut stream, 1, vec![publisher.audio_packet()], t0));
    let received = rtp_for(&outputs, 10, MediaKind::Video);
    assert_eq!(received.len(), 8);
    (stream, publisher, received, t0 + KEYFRAME_REQUEST_INTERVAL)
}

#[test]
fn a_lost_video_packet_is_not_resent_but_repaired_with_a_keyframe() {
    let t0 = start();
    let (mut stream, mut publisher, received, now) = watching(t0);
    let lost = received[5].header.sequence_number;
    stream.on_nack(10, 0xb0, &[lost], now);
    let outputs = drain(&mut stream);
    assert!(rtp_for(&outputs, 10, MediaKind::Video).is_empty());
    assert_eq!(
        keyframe_requests(&outputs),
        vec![(1, 0x1111, KeyframeRequestKind::Pli, 0)]
    );
    // More NACKs right after, from it or from another viewer's PLI, ask for nothing more.
    stream.on_nack(10, 0xb0, &[lost, lost.wrapping_add(1)], now + ms(20));
    stream.on_keyframe_request(11, now + ms(30));
    assert!(keyframe_requests(&drain(&mut stream)).is_empty());
    assert_eq!(stream.stats(now).nacks_unanswered, 3);
    assert_eq!(stream.stats(now).nacks_answered, 0);

    // The keyframe comes: the viewer goes on from it, every number new.
    let after = feed(&mut stream, 1, publisher.video_frame(true, 4), now + ms(40));
    let after = rtp_for(&after, 10, MediaKind::Video);
    assert_eq!(after.len(), 4);
    let mut seen = HashSet::new();
    for packet in received.iter().chain(&after) {
        assert_eq!(packet.header.ssrc, 0xb0);
        assert!(seen.insert(packet.header.sequence_number));
    }
    assert_continuous(&[received, after].concat());
}

#[test]
fn nacks_of_packets_it_was_not_sent_or_of_audio_ask_for_nothing() {
    let t0 = start();
    let (mut stream, _, received, now) = watching(t0);
    let first = received[0].header.sequence_number;
    let last = received[7].header.sequence_number;
    stream.on_nack(
        10,
        0xb0,
        &[first.wrapping_sub(1), last.wrapping_add(1)],
        now,
    );
    stream.on_nack(10, 0xa0, &[1, 2, 3], now);
    assert!(drain(&mut stream).is_empty());
    assert_eq!(stream.stats(now).nacks_unanswered, 5);
}
