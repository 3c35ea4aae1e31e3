//! `is_keyframe_start`, which the stream runs on every incoming packet: VP8 keyframe and
//! inter-frame starts, a VP8 continuation packet, a VP9 keyframe descriptor and an H.264
//! IDR in a STAP-A.

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use directo_sfu::{Codec, is_keyframe_start};

/// (name, codec, payload, whether it starts a keyframe).
fn payloads() -> Vec<(&'static str, Codec, Vec<u8>, bool)> {
    let mut vp8_key = vec![0x90, 0x80, 0x81, 0x23, 0x10, 0x02, 0x00, 0x9d, 0x01, 0x2a];
    vp8_key.resize(1100, 0x55);
    let mut vp8_inter = vec![0x90, 0x80, 0x81, 0x24, 0x11, 0x02, 0x00];
    vp8_inter.resize(1100, 0x55);
    let mut vp8_middle = vec![0x80, 0x80, 0x81, 0x24];
    vp8_middle.resize(1100, 0x55);
    // VP9: I=1 (picture id), P=0, B=1; 15-bit picture id.
    let mut vp9_key = vec![0x88, 0x80, 0x01];
    vp9_key.resize(1100, 0x55);
    // H.264 STAP-A carrying SPS, PPS and an IDR slice.
    let mut h264_idr = vec![
        0x18, 0x00, 0x04, 0x67, 0x42, 0xc0, 0x1f, 0x00, 0x03, 0x68, 0xce, 0x3c, 0x00, 0x04, 0x65,
        0x88, 0x84, 0x00,
    ];
    h264_idr.resize(1100, 0x55);
    vec![
        ("vp8_keyframe", Codec::Vp8, vp8_key, true),
        ("vp8_inter", Codec::Vp8, vp8_inter, false),
        ("vp8_continuation", Codec::Vp8, vp8_middle, false),
        ("vp9_keyframe", Codec::Vp9, vp9_key, true),
        ("h264_stap_a_idr", Codec::H264, h264_idr, true),
    ]
}

fn keyframe_start(c: &mut Criterion) {
    let mut group = c.benchmark_group("is_keyframe_start");
    for (name, codec, payload, starts) in payloads() {
        // A benchmark of the wrong branch would measure nothing useful.
        assert_eq!(is_keyframe_start(codec, &payload), starts, "{name}");
        group.bench_function(name, |b| {
            b.iter(|| is_keyframe_start(black_box(codec), black_box(&payload)))
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(1));
    targets = keyframe_start
}
criterion_main!(benches);
