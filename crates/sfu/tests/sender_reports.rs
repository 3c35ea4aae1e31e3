//! Sender reports: once the publisher has sent one, each viewer's down track gets its own
//! about once a second, with the publisher's NTP↔RTP mapping moved to the send time and
//! shifted into that viewer's timestamps, and that viewer's packet and octet counts.

mod common;

use std::time::Duration;

use common::*;
use directo_sfu::{MediaKind, Stream};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

#[test]
fn no_sender_report_before_the_publisher_sent_one() {
    let t0 = start();
    let mut stream = Stream::new();
    let mut publisher = Publisher::new(1, 0x1111, 0x2222, 1, 1);
    stream.set_publisher(1, publisher.tracks(), t0);
    stream.add_subscriber(10, viewer_tracks(0xa0, 0xb0), t0);
    let mut outputs = feed(&mut stream, 1, publisher.video_frame(true, 2), t0);
    outputs.extend(run_timers(&mut stream, t0, t0 + ms(3000)));
    assert!(sender_reports_for(&outputs, 10).is_empty());
}

#[test]
fn each_viewer_gets_its_own_report_every_second() {
    let t0 = start();
    let mut stream = Stream::new();
    let mut first = Publisher::new(1, 0x1111, 0x2222, 1, 1);
    stream.set_publisher(1, first.tracks(), t0);
    stream.add_subscriber(10, viewer_tracks(0xa0, 0xb0), t0);
    let mut outputs = feed(&mut stream, 1, first.video_frame(true, 2), t0);

    // After a takeover viewer 10's timestamps are shifted; viewer 11 joins fresh.
    let mut second = Publisher::new(2, 0x3333, 0x4444, 5000, 3_000_000_000);
    stream.set_publisher(2, second.tracks(), t0 + ms(100));
    stream.add_subscriber(11, viewer_tracks(0xa1, 0xb1), t0 + ms(100));
    let publisher_ts = second.video_ts;
    outputs.extend(feed(
        &mut stream,
        2,
        second.video_frame(true, 3),
        t0 + ms(200),
    ));
    outputs.extend(feed(
        &mut stream,
        2,
        second.video_frame(false, 2),
        t0 + ms(233),
    ));

    let t_sr = t0 + ms(300);
    let ntp = 0xE000_0000_8000_0000u64;
    let rtp = second.video_ts.wrapping_add(123);
    stream.on_sender_report(2, 0x3333, ntp, rtp, t_sr);
    let right_away = drain(&mut stream);
    let mut later = run_timers(&mut stream, t_sr + ms(10), t_sr + ms(3000));
    later.extend(drain(&mut stream));

    for (viewer, ssrc) in [(10, 0xb0), (11, 0xb1)] {
        let video = rtp_for(&outputs, viewer, MediaKind::Video);
        // The keyframe from the second publisher: its offset into this viewer's timestamps.
        let from_second = &video[video.len() - 5];
        let offset = from_second.header.timestamp.wrapping_sub(publisher_ts);
        let packets = video.len() as u32;
        let octets: u32 = video.iter().map(|p| p.payload.len() as u32).sum();

        let first_report = sender_reports_for(&right_away, viewer);
        assert_eq!(first_report.len(), 1);
        let report = &first_report[0];
        assert_eq!(report.ssrc, ssrc);
        assert_eq!(report.ntp_time, ntp);
        assert_eq!(report.rtp_time, rtp.wrapping_add(offset));
        assert_eq!((report.packet_count, report.octet_count), (packets, octets));

        let reports = sender_reports_for(&later, viewer);
        assert_eq!(reports.len(), 3, "one a second");
        for (seconds, report) in (1u32..).zip(&reports) {
            assert_eq!(report.ssrc, ssrc);
            assert_eq!(report.ntp_time, ntp + (u64::from(seconds) << 32));
            assert_eq!(
                report.rtp_time,
                rtp.wrapping_add(offset).wrapping_add(90_000 * seconds)
            );
        }
    }
    // Viewer 10's offset is not the publisher's: the reports really are per viewer.
    let a = &sender_reports_for(&right_away, 10)[0];
    let b = &sender_reports_for(&right_away, 11)[0];
    assert_ne!(a.rtp_time, b.rtp_time);
}

#[test]
fn a_new_publisher_needs_its_own_report_first() {
    let t0 = start();
    let mut stream = Stream::new();
    let mut first = Publisher::new(1, 0x1111, 0x2222, 1, 1);
    stream.set_publisher(1, first.tracks(), t0);
    stream.add_subscriber(10, viewer_tracks(0xa0, 0xb0), t0);
    feed(&mut stream, 1, first.video_frame(true, 2), t0);
    stream.on_sender_report(1, 0x1111, 1 << 32, 1, t0);
    assert_eq!(sender_reports_for(&drain(&mut stream), 10).len(), 1);

    let mut second = Publisher::new(2, 0x3333, 0x4444, 1, 1);
    stream.set_publisher(2, second.tracks(), t0 + ms(100));
    let mut outputs = feed(&mut stream, 2, second.video_frame(true, 2), t0 + ms(100));
    outputs.extend(run_timers(&mut stream, t0 + ms(100), t0 + ms(3000)));
    assert!(sender_reports_for(&outputs, 10).is_empty());
}
