//! NACKs are answered from the one cache each publisher track keeps, rewritten into the
//! asking viewer's numbering and sent over its RTX stream (RFC 4588: the original sequence
//! number in the first two payload bytes, a fresh RTX sequence number each time); only
//! packets that viewer would have received, each at most once per ~100 ms.

mod common;

use std::time::{Duration, Instant};

use common::*;
use directo_sfu::{MediaKind, NACK_CACHE_SIZE, Stream};
use rtc::rtp::Packet;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

#[test]
fn answered_from_the_shared_cache_in_each_viewers_numbering() {
    let t0 = start();
    let mut stream = Stream::new();
    let mut first = Publisher::new(1, 0x1111, 0x2222, 500, 7);
    stream.set_publisher(1, first.tracks(), t0);
    stream.add_subscriber(10, viewer_tracks(0xa0, 0xb0), t0);
    feed(&mut stream, 1, first.video_frame(true, 3), t0);
    // A takeover shifts viewer 10's numbering away from the publisher's; viewer 11 joins
    // after it, so the two viewers number the same packets differently.
    let mut second = Publisher::new(2, 0x3333, 0x4444, 30_000, 9);
    stream.set_publisher(2, second.tracks(), t0 + ms(100));
    stream.add_subscriber(11, viewer_tracks(0xa1, 0xb1), t0 + ms(100));
    drain(&mut stream);
    let mut outputs = feed(&mut stream, 2, second.video_frame(true, 3), t0 + ms(200));
    outputs.extend(feed(
        &mut stream,
        2,
        second.video_frame(false, 3),
        t0 + ms(233),
    ));
    let a = rtp_for(&outputs, 10, MediaKind::Video);
    let b = rtp_for(&outputs, 11, MediaKind::Video);
    assert_eq!((a.len(), b.len()), (6, 6));
    assert_ne!(a[4].header.sequence_number, b[4].header.sequence_number);

    // Both lost the fifth packet.
    stream.on_nack(10, 0xb0, &[a[4].header.sequence_number], t0 + ms(300));
    stream.on_nack(11, 0xb1, &[b[4].header.sequence_number], t0 + ms(300));
    let resent = drain(&mut stream);
    let resent_a = rtp_for(&resent, 10, MediaKind::Video);
    let resent_b = rtp_for(&resent, 11, MediaKind::Video);
    assert_eq!((resent_a.len(), resent_b.len()), (1, 1));
    for (resent, original, ssrc) in [(&resent_a[0], &a[4], 0xb0), (&resent_b[0], &b[4], 0xb1)] {
        assert_eq!(resent.header.ssrc, rtx_ssrc(ssrc));
        assert_eq!(resent.header.payload_type, VIEWER_RTX_PT);
        assert_eq!(
            unwrap_rtx(resent),
            (original.header.sequence_number, original.payload.clone())
        );
        // Everything else as the original: timestamp, marker, header extensions.
        assert_eq!(resent.header.timestamp, original.header.timestamp);
        assert_eq!(resent.header.marker, original.header.marker);
        assert_eq!(resent.header.extensions, original.header.extensions);
    }
    assert_eq!(stream.stats(t0 + ms(300)).nacks_answered, 2);
}

#[test]
fn each_retransmission_takes_the_next_rtx_sequence_number() {
    let t0 = start();
    let (mut stream, _, received) = watching_stream(t0);
    let lost = [
        received[2].header.sequence_number,
        received[5].header.sequence_number,
    ];
    stream.on_nack(10, 0xb0, &lost, t0 + ms(100));
    // The same packets again, once the viewer had time to get the first copies.
    stream.on_nack(10, 0xb0, &lost, t0 + ms(250));
    let resent = rtp_for(&drain(&mut stream), 10, MediaKind::Video);
    let osns: Vec<u16> = resent.iter().map(|p| unwrap_rtx(p).0).collect();
    assert_eq!(osns, [lost, lost].concat());
    let first = resent[0].header.sequence_number;
    let rtx_seqs: Vec<u16> = resent.iter().map(|p| p.header.sequence_number).collect();
    assert_eq!(
        rtx_seqs,
        (0..4).map(|i| first.wrapping_add(i)).collect::<Vec<_>>()
    );
    assert!(resent.iter().all(|p| p.header.ssrc == rtx_ssrc(0xb0)));
}

#[test]
fn the_same_packet_is_not_resent_within_100_ms() {
    let t0 = start();
    let (mut stream, _, received) = watching_stream(t0);
    let seq = received[3].header.sequence_number;
    stream.on_nack(10, 0xb0, &[seq, seq], t0 + ms(100));
    stream.on_nack(10, 0xb0, &[seq], t0 + ms(150));
    assert_eq!(rtp_for(&drain(&mut stream), 10, MediaKind::Video).len(), 1);
    stream.on_nack(10, 0xb0, &[seq], t0 + ms(201));
    assert_eq!(rtp_for(&drain(&mut stream), 10, MediaKind::Video).len(), 1);
}

#[test]
fn unknown_evicted_and_foreign_sequence_numbers_are_ignored() {
    let t0 = start();
    let (mut stream, _, received) = watching_stream(t0);
    let first = received[0].header.sequence_number;
    let last = received[received.len() - 1].header.sequence_number;
    // Not sent yet, and before this viewer's start.
    stream.on_nack(
        10,
        0xb0,
        &[last.wrapping_add(1), first.wrapping_sub(1)],
        t0 + ms(100),
    );
    // Not this viewer's SSRC, and not a viewer at all.
    stream.on_nack(10, 0x1111, &[first], t0 + ms(100));
    stream.on_nack(99, 0xb0, &[first], t0 + ms(100));
    assert!(drain(&mut stream).is_empty());
}

#[test]
fn evicted_packets_are_ignored() {
    let t0 = start();
    let (mut stream, mut publisher, received) = watching_stream(t0);
    let mut later = Vec::new();
    for _ in 0..(NACK_CACHE_SIZE / 4) {
        later.extend(feed(
            &mut stream,
            1,
            publisher.video_frame(false, 4),
            t0 + ms(50),
        ));
    }
    assert_eq!(rtp_for(&later, 10, MediaKind::Video).len(), NACK_CACHE_SIZE);
    // The last 1024 packets are still there, the first 8 are gone.
    stream.on_nack(
        10,
        0xb0,
        &[received[0].header.sequence_number],
        t0 + ms(100),
    );
    assert!(drain(&mut stream).is_empty());
    let oldest_kept = later[0].clone();
    let Some(oldest_kept) = rtp_for(&[oldest_kept], 10, MediaKind::Video).pop() else {
        panic!("first later output is viewer 10's video");
    };
    stream.on_nack(
        10,
        0xb0,
        &[oldest_kept.header.sequence_number],
        t0 + ms(100),
    );
    assert_eq!(rtp_for(&drain(&mut stream), 10, MediaKind::Video).len(), 1);
}

#[test]
fn a_keyframe_start_arriving_late_is_repaired_by_nack() {
    let t0 = start();
    let mut stream = Stream::new();
    let mut publisher = Publisher::new(1, 0x1111, 0x2222, 10, 7);
    stream.set_publisher(1, publisher.tracks(), t0);
    stream.add_subscriber(10, viewer_tracks(0xa0, 0xb0), t0);
    let key = publisher.video_frame(true, 3);
    // The second packet overtakes the first: the viewer has not started, so it is held back.
    let mut outputs = feed(&mut stream, 1, vec![key[1].clone()], t0);
    outputs.extend(feed(
        &mut stream,
        1,
        vec![key[0].clone(), key[2].clone()],
        t0,
    ));
    let video = rtp_for(&outputs, 10, MediaKind::Video);
    assert_eq!(video.len(), 2);
    let missing = video[0].header.sequence_number.wrapping_add(1);
    assert_eq!(video[1].header.sequence_number, missing.wrapping_add(1));
    stream.on_nack(10, 0xb0, &[missing], t0 + ms(20));
    let resent = rtp_for(&drain(&mut stream), 10, MediaKind::Video);
    assert_eq!(resent.len(), 1);
    assert_eq!(unwrap_rtx(&resent[0]), (missing, key[1].payload.clone()));
}

/// A stream with viewer 10 watching one keyframe and one delta frame (4 packets each).
fn watching_stream(t0: Instant) -> (Stream, Publisher, Vec<Packet>) {
    let mut stream = Stream::new();
    let mut publisher = Publisher::new(1, 0x1111, 0x2222, 2000, 7);
    stream.set_publisher(1, publisher.tracks(), t0);
    stream.add_subscriber(10, viewer_tracks(0xa0, 0xb0), t0);
    let mut outputs = feed(&mut stream, 1, publisher.video_frame(true, 4), t0);
    outputs.extend(feed(&mut stream, 1, publisher.video_frame(false, 4), t0));
    drain(&mut stream);
    let received = rtp_for(&outputs, 10, MediaKind::Video);
    assert_eq!(received.len(), 8);
    (stream, publisher, received)
}
