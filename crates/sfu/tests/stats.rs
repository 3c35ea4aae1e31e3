//! The stream's counters: packets and bytes in, packets out, and the incoming bitrate over
//! a sliding ~2 s window.

mod common;

use std::time::Duration;

use common::*;
use directo_sfu::Stream;

#[test]
fn counts_traffic_and_estimates_the_incoming_bitrate() {
    let t0 = start();
    let mut stream = Stream::new();
    let mut publisher = Publisher::new(1, 0x1111, 0x2222, 1, 1);
    stream.set_publisher(1, publisher.tracks(), t0);
    stream.add_subscriber(10, viewer_tracks(0xa0, 0xb0), t0);
    stream.add_subscriber(11, viewer_tracks(0xa1, 0xb1), t0);
    // 30 frames a second of 2 packets, for 3 seconds.
    let mut bytes = 0;
    for frame in 0..90u64 {
        let packets = publisher.video_frame(frame == 0, 2);
        if frame >= 30 {
            bytes += packets.iter().map(|p| rtp_size(p) as u64).sum::<u64>();
        }
        feed(
            &mut stream,
            1,
            packets,
            t0 + Duration::from_micros(frame * 33_333),
        );
    }
    let stats = stream.stats(t0 + Duration::from_micros(89 * 33_333));
    assert_eq!(stats.packets_in, 180);
    assert_eq!(stats.packets_out, 360);
    assert!(stats.bytes_in > 180 * 200);
    // The last 2 s carried `bytes` (give or take one 100 ms bucket at each end).
    let expected = bytes * 8 / 2;
    let estimate = stats.incoming_bitrate_bps;
    assert!(
        estimate.abs_diff(expected) <= expected / 10,
        "estimate {estimate} vs {expected}"
    );
}

fn rtp_size(packet: &rtc::rtp::Packet) -> usize {
    use rtc::shared::marshal::MarshalSize;
    packet.marshal_size()
}
