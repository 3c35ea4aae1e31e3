//! The munger: viewers get their own SSRC, payload type and header-extension ids, and see
//! one continuous stream when the publisher is replaced (reconnect or takeover) with a new
//! SSRC and a new random sequence/timestamp base, or when the viewer itself is subscribed
//! again on the same SSRCs (after a renegotiation).

mod common;

use std::time::Duration;

use common::*;
use directo_sfu::{MediaKind, Stream};
use rtc::rtp::Packet;
use rtc::shared::marshal::{Marshal, Unmarshal};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

#[test]
fn numbering_continues_across_a_takeover() {
    let t0 = start();
    let mut stream = Stream::new();
    let mut first = Publisher::new(1, 0x1111, 0x2222, 65_500, 4_000_000_000);
    stream.set_publisher(1, first.tracks(), t0);
    stream.add_subscriber(10, viewer_tracks(0xa0, 0xb0), t0);
    let mut before = feed(&mut stream, 1, first.video_frame(true, 3), t0);
    for i in 1..=20 {
        let now = t0 + ms(33 * i);
        before.extend(feed(&mut stream, 1, first.video_frame(false, 2), now));
        before.extend(feed(&mut stream, 1, vec![first.audio_packet()], now));
    }
    let last_forward = t0 + ms(660);
    let video_before = rtp_for(&before, 10, MediaKind::Video);
    let audio_before = rtp_for(&before, 10, MediaKind::Audio);
    assert_continuous(&video_before);

    let t1 = t0 + ms(1000);
    let mut second = Publisher::new(2, 0x3333, 0x4444, 12_345, 777);
    stream.set_publisher(2, second.tracks(), t1);
    assert_eq!(stream.subscriber_count(), 1);
    assert_eq!(stream.publisher(), Some(2));
    drain(&mut stream);
    // The old publisher's stragglers are ignored.
    assert!(feed(&mut stream, 1, first.video_frame(false, 2), t1).is_empty());

    let t2 = t1 + ms(200);
    let mut after = feed(&mut stream, 2, second.video_frame(false, 2), t2);
    after.extend(feed(&mut stream, 2, vec![second.audio_packet()], t2));
    after.extend(feed(
        &mut stream,
        2,
        second.video_frame(true, 3),
        t2 + ms(50),
    ));
    after.extend(feed(
        &mut stream,
        2,
        second.video_frame(false, 2),
        t2 + ms(83),
    ));
    let video_after = rtp_for(&after, 10, MediaKind::Video);
    let audio_after = rtp_for(&after, 10, MediaKind::Audio);
    assert_eq!(
        video_after.len(),
        5,
        "delta frames before the new keyframe are held back"
    );
    assert_eq!(audio_after.len(), 1);

    let last_video = &video_before[video_before.len() - 1].header;
    let resumed = &video_after[0].header;
    assert_eq!(
        resumed.sequence_number,
        last_video.sequence_number.wrapping_add(1)
    );
    let elapsed = (t2 + ms(50) - last_forward).as_millis() as u32;
    assert_eq!(
        resumed.timestamp,
        last_video.timestamp.wrapping_add(elapsed * 90)
    );
    assert_eq!(
        video_after[3].header.timestamp,
        resumed.timestamp.wrapping_add(3000),
        "the new publisher's own spacing is kept"
    );
    let whole: Vec<Packet> = video_before.iter().chain(&video_after).cloned().collect();
    assert_continuous(&whole);
    assert!(whole.iter().all(|p| p.header.ssrc == 0xb0));

    let last_audio = &audio_before[audio_before.len() - 1].header;
    let resumed_audio = &audio_after[0].header;
    assert_eq!(
        resumed_audio.sequence_number,
        last_audio.sequence_number.wrapping_add(1)
    );
    let elapsed = (t2 - last_forward).as_millis() as u32;
    assert_eq!(
        resumed_audio.timestamp,
        last_audio.timestamp.wrapping_add(elapsed * 48)
    );
    assert_eq!(resumed_audio.ssrc, 0xa0);
}

#[test]
fn a_publisher_that_leaves_and_comes_back_is_resumed() {
    let t0 = start();
    let mut stream = Stream::new();
    let mut first = Publisher::new(1, 0x1111, 0x2222, 100, 100);
    stream.set_publisher(1, first.tracks(), t0);
    stream.add_subscriber(10, viewer_tracks(0xa0, 0xb0), t0);
    let before = rtp_for(
        &feed(&mut stream, 1, first.video_frame(true, 2), t0),
        10,
        MediaKind::Video,
    );

    stream.remove_publisher(99, t0 + ms(10));
    assert_eq!(
        stream.publisher(),
        Some(1),
        "not the current publisher: no-op"
    );
    stream.remove_publisher(1, t0 + ms(10));
    assert_eq!(stream.publisher(), None);
    assert!(stream.tracks().is_empty());
    assert_eq!(stream.subscriber_count(), 1);

    let mut again = Publisher::new(1, 0x5555, 0x6666, 40_000, 5);
    stream.set_publisher(1, again.tracks(), t0 + ms(5000));
    let after = feed(&mut stream, 1, again.video_frame(true, 2), t0 + ms(5000));
    let after = rtp_for(&after, 10, MediaKind::Video);
    assert_eq!(
        after[0].header.sequence_number,
        before[1].header.sequence_number.wrapping_add(1)
    );
    assert_eq!(
        after[0].header.timestamp,
        before[1].header.timestamp.wrapping_add(5000 * 90)
    );
}

#[test]
fn a_viewer_subscribed_again_goes_on_where_it_was() {
    let t0 = start();
    let mut stream = Stream::new();
    let mut first = Publisher::new(1, 0x1111, 0x2222, 100, 7);
    stream.set_publisher(1, first.tracks(), t0);
    stream.add_subscriber(10, viewer_tracks(0xa0, 0xb0), t0);
    let frame = feed(&mut stream, 1, first.video_frame(true, 3), t0);
    let mut video = rtp_for(&frame, 10, MediaKind::Video);
    // A takeover moves the viewer's numbering away from the new publisher's own.
    let mut second = Publisher::new(2, 0x3333, 0x4444, 30_000, 9);
    stream.set_publisher(2, second.tracks(), t0 + ms(100));
    let frame = feed(&mut stream, 2, second.video_frame(true, 3), t0 + ms(100));
    video.extend(rtp_for(&frame, 10, MediaKind::Video));
    stream.on_nack(10, 0xb0, &[video[4].header.sequence_number], t0 + ms(150));
    let resent = rtp_for(&drain(&mut stream), 10, MediaKind::Video);

    // Subscribed again with the same SSRCs: numbering on both goes on, nothing is reused.
    stream.add_subscriber(10, viewer_tracks(0xa0, 0xb0), t0 + ms(200));
    let frame = feed(&mut stream, 2, second.video_frame(true, 3), t0 + ms(233));
    let after = rtp_for(&frame, 10, MediaKind::Video);
    assert_eq!(after.len(), 3);
    video.extend(after);
    assert_continuous(&video);
    stream.on_nack(10, 0xb0, &[video[7].header.sequence_number], t0 + ms(300));
    let resent_after = rtp_for(&drain(&mut stream), 10, MediaKind::Video);
    assert_eq!(
        resent_after[0].header.sequence_number,
        resent[0].header.sequence_number.wrapping_add(1)
    );
}

#[test]
fn payload_type_ssrc_and_header_extensions_are_the_viewers() {
    let t0 = start();
    let mut stream = Stream::new();
    let mut publisher = Publisher::new(1, 0x1111, 0x2222, 100, 100);
    stream.set_publisher(1, publisher.tracks(), t0);
    stream.add_subscriber(10, viewer_tracks(0xa0, 0xb0), t0);
    let mut outputs = feed(&mut stream, 1, publisher.video_frame(true, 2), t0);
    outputs.extend(feed(&mut stream, 1, vec![publisher.audio_packet()], t0));

    let video = &rtp_for(&outputs, 10, MediaKind::Video)[0];
    assert_eq!(video.header.payload_type, VIEWER_VP8_PT);
    assert_eq!(video.header.ssrc, 0xb0);
    // abs-send-time moves from the publisher's id 3 to the viewer's id 2; MID is dropped.
    assert_eq!(video.header.get_extension_ids(), vec![2]);
    assert_eq!(
        video.header.get_extension(2).as_deref(),
        Some(&[0x12, 0x34, 0x56][..])
    );

    let audio = &rtp_for(&outputs, 10, MediaKind::Audio)[0];
    assert_eq!(audio.header.payload_type, VIEWER_OPUS_PT);
    assert_eq!(audio.header.ssrc, 0xa0);
    let mut ids = audio.header.get_extension_ids();
    ids.sort_unstable();
    assert_eq!(ids, vec![2, 5]);
    assert_eq!(audio.header.get_extension(5).as_deref(), Some(&[0x85][..]));

    // What goes on the wire parses back to the same packet.
    for packet in [video, audio] {
        let mut wire = packet.marshal().unwrap().freeze();
        assert_eq!(&Packet::unmarshal(&mut wire).unwrap(), packet);
    }
}
