//! VP8 temporal layers: a viewer whose link cannot carry even the smallest layer gets that
//! layer thinned to its base temporal layer (a quarter of the frames, ~40 % of the bits), as one
//! continuous stream — consecutive sequence numbers and picture ids, which is what a receiver's
//! jitter buffer and reference finder need to decode without waiting or asking for a keyframe —
//! while the other viewers get every frame. Its NACKs still name the packets it saw, and once
//! its link recovers it gets every frame again.

mod common;

use std::time::{Duration, Instant};

use common::l1t3::{L1t3, descriptor};
use common::*;
use directo_sfu::{MediaKind, Stream};
use rtc::rtp::Packet;

const THIN: u64 = 10;
const FULL: u64 = 11;
const THIN_VIDEO_SSRC: u32 = 0xb0;
const FULL_VIDEO_SSRC: u32 = 0xb1;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// Asserts consecutive sequence numbers and picture ids (one per frame).
fn assert_one_stream(packets: &[Packet]) {
    assert_continuous(packets);
    let pictures: Vec<u16> = packets
        .iter()
        .filter(|p| descriptor(p).2)
        .map(|p| descriptor(p).1)
        .collect();
    for pair in pictures.windows(2) {
        assert_eq!(pair[1], (pair[0] + 1) & 0x7fff, "picture ids {pictures:?}");
    }
}

fn setup(t0: Instant) -> (Stream, L1t3) {
    let mut stream = Stream::new();
    let publisher = L1t3::new(Publisher::new(1, 0x1111, 0x2222, 65_000, 7));
    stream.set_publisher(1, publisher.publisher.tracks(), t0);
    stream.add_subscriber(THIN, viewer_tracks(0xa0, THIN_VIDEO_SSRC), t0);
    stream.add_subscriber(FULL, viewer_tracks(0xa1, FULL_VIDEO_SSRC), t0);
    drain(&mut stream);
    (stream, publisher)
}

/// Feeds `frames` frames at 30 fps from `now`, returning the outputs and the time after.
fn run(
    stream: &mut Stream,
    publisher: &mut L1t3,
    frames: usize,
    mut now: Instant,
) -> (Vec<directo_sfu::Output>, Instant) {
    let mut outputs = Vec::new();
    for _ in 0..frames {
        outputs.extend(feed(stream, 1, publisher.next_frame(false), now));
        now += ms(33);
    }
    (outputs, now)
}

#[test]
fn a_viewer_below_the_smallest_layer_gets_its_base_temporal_layer_as_one_stream() {
    let t0 = start();
    let (mut stream, mut publisher) = setup(t0);
    feed(&mut stream, 1, publisher.next_frame(true), t0);
    let (_, now) = run(&mut stream, &mut publisher, 60, t0 + ms(33));

    // 70 % loss: the estimate falls to about a quarter of the layer, below all but layer 0.
    stream.on_receiver_report(THIN, THIN_VIDEO_SSRC, 180, now);
    let (outputs, now) = run(&mut stream, &mut publisher, 40, now);
    let thin = rtp_for(&outputs, THIN, MediaKind::Video);
    let full = rtp_for(&outputs, FULL, MediaKind::Video);
    assert_eq!(full.len(), 100, "the other viewer gets every packet");
    let full_layers: Vec<u8> = full.iter().map(|p| descriptor(p).0).collect();
    assert!(full_layers.contains(&2) && full_layers.contains(&1));
    assert_one_stream(&full);
    // The thin viewer: the layer-0 frames only (10 frames of 4 packets), one stream.
    assert_eq!(thin.len(), 40);
    assert!(thin.iter().all(|p| descriptor(p).0 == 0));
    assert_one_stream(&thin);
    let frames: Vec<u16> = thin
        .iter()
        .filter(|p| descriptor(p).2)
        .map(|p| descriptor(p).1)
        .collect();
    assert_eq!(frames.len(), 10);
    // Renumbered copies for the thin viewer only.
    assert_ne!(thin[0].payload, full[0].payload);
    assert_eq!(
        stream.stats(now).keyframe_requests_sent,
        1,
        "only the start's"
    );

    // A NACK names a packet as the thin viewer numbered it.
    let lost = &thin[17];
    stream.on_nack(THIN, THIN_VIDEO_SSRC, &[lost.header.sequence_number], now);
    let resent = rtp_for(&drain(&mut stream), THIN, MediaKind::Video);
    assert_eq!(resent.len(), 1);
    // Over RTX, with the picture id renumbered as the viewer got it.
    assert_eq!(
        unwrap_rtx(&resent[0]),
        (lost.header.sequence_number, lost.payload.clone())
    );

    // A clean link: the estimate climbs back (after the congested rate's hold) and the viewer
    // gets every frame again, still one stream; at the next keyframe it goes back to the
    // publisher's own picture ids and shares the publisher's bytes.
    let mut now = now;
    let mut received = Vec::new();
    for _ in 0..40 {
        stream.on_receiver_report(THIN, THIN_VIDEO_SSRC, 0, now);
        let (outputs, later) = run(&mut stream, &mut publisher, 30, now);
        received.extend(rtp_for(&outputs, THIN, MediaKind::Video));
        now = later;
    }
    assert_one_stream(&received);
    let tail: Vec<u8> = received[received.len() - 50..]
        .iter()
        .map(|p| descriptor(p).0)
        .collect();
    assert!(tail.contains(&2), "every temporal layer again: {tail:?}");

    let mut outputs = feed(&mut stream, 1, publisher.next_frame(true), now);
    outputs.extend(run(&mut stream, &mut publisher, 4, now + ms(33)).0);
    let thin = rtp_for(&outputs, THIN, MediaKind::Video);
    let full = rtp_for(&outputs, FULL, MediaKind::Video);
    assert_eq!(thin.len(), full.len());
    assert_eq!(
        thin[0].header.sequence_number,
        received
            .last()
            .unwrap()
            .header
            .sequence_number
            .wrapping_add(1)
    );
    assert_eq!(descriptor(&thin[0]).1, descriptor(&full[0]).1);
    assert!(
        thin.iter()
            .zip(&full)
            .all(|(a, b)| a.payload.as_ptr() == b.payload.as_ptr())
    );
}

#[test]
fn a_pinned_viewer_gets_every_temporal_layer_whatever_its_estimate() {
    let t0 = start();
    let (mut stream, mut publisher) = setup(t0);
    stream.set_quality(THIN, directo_sfu::Quality::Low, t0);
    feed(&mut stream, 1, publisher.next_frame(true), t0);
    let (_, now) = run(&mut stream, &mut publisher, 60, t0 + ms(33));
    stream.on_receiver_report(THIN, THIN_VIDEO_SSRC, 180, now);
    let (outputs, _) = run(&mut stream, &mut publisher, 20, now);
    assert_eq!(rtp_for(&outputs, THIN, MediaKind::Video).len(), 50);
}
