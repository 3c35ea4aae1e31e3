//! Answering a viewer's NACK from the track's shared NACK cache (`Stream::on_nack`): 16 lost
//! packets looked up, re-munged and wrapped as RTX packets (payload copied behind the original
//! sequence number) for one viewer among 100, with time moving on between rounds so the
//! per-viewer retransmission throttle never suppresses the answer.

mod common;

use std::hint::black_box;
use std::time::{Duration, Instant};

use common::{FIRST_VIEWER, PUBLISHER, quick, stream_with_viewers};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use directo_sfu::{MediaKind, Output, RETRANSMIT_INTERVAL};

fn on_nack(c: &mut Criterion) {
    let mut now = Instant::now();
    let (mut stream, mut source) = stream_with_viewers(100, now);
    // Forward 500 packets and remember what the first viewer saw of them.
    let mut seen = Vec::new();
    let mut video_ssrc = 0;
    for _ in 0..500 {
        stream.on_rtp(PUBLISHER, source.next_packet(), now);
        while let Some(output) = stream.poll_output() {
            if let Output::Rtp {
                subscriber,
                kind: MediaKind::Video,
                packet,
            } = output
                && subscriber == FIRST_VIEWER
            {
                video_ssrc = packet.header.ssrc;
                seen.push(packet.header.sequence_number);
            }
        }
    }
    let lost: Vec<u16> = seen.iter().rev().step_by(7).take(16).copied().collect();
    let mut group = c.benchmark_group("nack");
    group.throughput(Throughput::Elements(lost.len() as u64));
    group.bench_function("16_lost_of_500", |b| {
        b.iter(|| {
            now += RETRANSMIT_INTERVAL + Duration::from_millis(1);
            stream.on_nack(FIRST_VIEWER, video_ssrc, &lost, now);
            let mut answered = 0;
            while let Some(output) = stream.poll_output() {
                answered += 1;
                black_box(output);
            }
            assert_eq!(answered, lost.len());
        })
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = quick();
    targets = on_nack
}
criterion_main!(benches);
