//! The recorder's CPU per recorded stream-second at 2.5 Mbit/s: ten seconds of VP8 (720p,
//! 30 fps, constant rate) + Opus made by Debian's ffmpeg (`directo_testkit::ffmpeg`),
//! packetized into RTP with the `rtc` payloaders, and replayed through `directo_recorder` as
//! fast as one core allows. Prints the figure; needs `ffmpeg` on the PATH (the test command
//! installs it).

use directo_recorder::replay::{Packetizer, ReplayInput, read_source, replay};
use directo_sfu::{Codec, MediaKind};
use directo_testkit::ffmpeg::{SourceVideo, TestMedia};
use directo_testkit::scratch::scratch_dir;
use std::time::{Duration, Instant};

fn main() {
    let dir = match scratch_dir("recorder-bench") {
        Ok(dir) => dir,
        Err(e) => {
            println!("recorder bench skipped: no scratch directory: {e}");
            return;
        }
    };
    let source = dir.join("source.webm");
    let media = TestMedia {
        size: (1280, 720),
        constant_kbps: Some(2500),
        ..TestMedia::new(SourceVideo::Vp8, 10, 60)
    };
    if let Err(e) = media.make(&source) {
        println!("recorder bench skipped: ffmpeg could not make the source: {e}");
        return;
    }
    let (tracks, frames) = match read_source(&source) {
        Ok(read) => read,
        Err(e) => {
            println!("recorder bench skipped: cannot read the source: {e}");
            return;
        }
    };
    let mut video = Packetizer::new(Codec::Vp8, 0x1111, 100, 1_000);
    let mut audio = Packetizer::new(Codec::Opus, 0x2222, 200, 2_000);
    let mut inputs = Vec::new();
    let mut bytes = 0usize;
    for frame in &frames {
        let packetizer = match frame.kind {
            MediaKind::Video => &mut video,
            MediaKind::Audio => &mut audio,
        };
        let Ok(packets) = packetizer.packetize(frame) else {
            continue;
        };
        for packet in packets {
            bytes += packet.payload.len();
            inputs.push((
                Duration::from_millis(frame.at_ms),
                ReplayInput::Packet(frame.kind, packet),
            ));
        }
    }
    let packets = inputs.len();
    let out = dir.join("out");
    let started = Instant::now();
    let report = match replay(&out, "bench", tracks, inputs) {
        Ok(report) => report,
        Err(e) => {
            println!("recorder bench failed: {e}");
            return;
        }
    };
    let took = started.elapsed();
    let per_second = took.as_secs_f64() / report.stream_seconds.max(1e-9);
    println!(
        "recorder: {:.1} s of VP8+Opus ({:.2} Mbit/s, {packets} RTP packets) recorded in {:.1} ms: \
         {:.0} µs of CPU per stream-second ({:.2}% of a core per live stream)",
        report.stream_seconds,
        bytes as f64 * 8.0 / report.stream_seconds.max(1e-9) / 1e6,
        took.as_secs_f64() * 1e3,
        per_second * 1e6,
        per_second * 100.0,
    );
    let _ = std::fs::remove_dir_all(&dir);
}
