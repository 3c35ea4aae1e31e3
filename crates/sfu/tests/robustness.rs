//! Whatever the packets contain (empty or truncated payloads, wild sequence numbers,
//! unknown SSRCs) and whatever the viewers send, the stream never panics and everything it
//! outputs marshals.

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::*;
use directo_sfu::{Output, Stream};
use rtc::rtp::Packet;
use rtc::rtp::header::Header;
use rtc::shared::marshal::Marshal;

#[test]
fn random_input_never_panics() {
    let mut rng = Lcg(7);
    let mut now = start();
    let mut stream = Stream::new();
    let publisher = Publisher::new(1, 0x1111, 0x2222, 1, 1);
    stream.set_publisher(1, publisher.tracks(), now);
    for viewer in 0..5 {
        stream.add_subscriber(
            viewer,
            viewer_tracks(100 + viewer as u32, 200 + viewer as u32),
            now,
        );
    }
    let mut last_seq = 0u16;
    for round in 0..20_000u32 {
        now += Duration::from_micros(u64::from(rng.next() % 5000));
        match rng.next() % 100 {
            0..=84 => {
                let len = (rng.next() % 12) as usize;
                let mut payload: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
                if rng.next().is_multiple_of(4) && !payload.is_empty() {
                    // Make VP8 keyframe starts common enough for viewers to start.
                    payload[0] = 0x10;
                    if len > 1 {
                        payload[1] &= 0xfe;
                    }
                }
                last_seq = match rng.next() % 10 {
                    0 => rng.next() as u16,
                    1..=2 => last_seq.wrapping_sub((rng.next() % 50) as u16),
                    _ => last_seq.wrapping_add(1),
                };
                let ssrc = [0x1111, 0x2222, 0x9999][(rng.next() % 3) as usize];
                let packet = Packet {
                    header: Header {
                        version: 2,
                        padding: payload.is_empty() && rng.next().is_multiple_of(2),
                        sequence_number: last_seq,
                        timestamp: rng.next(),
                        ssrc,
                        payload_type: 96,
                        ..Default::default()
                    },
                    payload: Bytes::from(payload),
                };
                stream.on_rtp(1, packet, now);
            }
            85..=89 => {
                let lost: Vec<u16> = (0..rng.next() % 20).map(|_| rng.next() as u16).collect();
                let viewer = u64::from(rng.next() % 6);
                stream.on_nack(viewer, 200 + viewer as u32, &lost, now);
            }
            90..=92 => stream.on_keyframe_request(u64::from(rng.next() % 6), now),
            93..=95 => {
                stream.on_sender_report(1, 0x1111, u64::from(rng.next()) << 20, rng.next(), now)
            }
            96 => {
                let viewer = u64::from(rng.next() % 6);
                if rng.next().is_multiple_of(2) {
                    stream.remove_subscriber(viewer);
                } else {
                    stream.add_subscriber(
                        viewer,
                        viewer_tracks(100 + viewer as u32, 200 + viewer as u32),
                        now,
                    );
                }
            }
            97 if round.is_multiple_of(7) => stream.set_publisher(1, publisher.tracks(), now),
            _ => stream.handle_timeout(now),
        }
        while let Some(output) = stream.poll_output() {
            if let Output::Rtp { packet, .. } = output {
                packet.marshal().expect("forwarded packets marshal");
            }
        }
    }
    let stats = stream.stats(now);
    assert!(stats.packets_in > 0 && stats.packets_out > 0);
}
