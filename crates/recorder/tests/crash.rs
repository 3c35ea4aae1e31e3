//! A recording is readable while it is written, survives its writer being killed at any
//! byte (decodes up to its last complete cluster), and `recover` makes such a file seekable.

mod common;

use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

use common::*;
use directo_recorder::replay::ReplayInput;
use directo_recorder::{Recorder, RecordingInfo, recover};
use directo_sfu::Codec;
use directo_testkit::ffmpeg::{
    decode_errors, has_cues, probe_duration, probe_packets, probe_streams, seek_errors,
};

/// Feeds the first `until` of the inputs to a recorder that is then abandoned (not finished),
/// as a SIGKILL would leave it.
fn record_without_finishing(
    dir: &Path,
    codec: Codec,
    until: Duration,
) -> (std::path::PathBuf, usize) {
    let (tracks, frames) = source(dir, codec, 8, 30);
    let sent = packetize(tracks, &frames, &Send::default());
    let origin = Instant::now();
    let mut recorder =
        Recorder::start(dir.join("rec"), "live", tracks, origin, SystemTime::now()).expect("start");
    for (at, input) in sent.inputs.into_iter().filter(|(at, _)| *at < until) {
        match input {
            ReplayInput::Packet(kind, packet) => {
                recorder.push(kind, packet, origin + at).expect("push")
            }
            ReplayInput::SenderReport {
                kind,
                ssrc,
                ntp,
                rtp,
            } => recorder.sender_report(kind, ssrc, ntp, rtp, origin + at),
            ReplayInput::PublisherChanged(_) => unreachable!(),
        }
    }
    let path = recorder.path().to_path_buf();
    std::mem::forget(recorder);
    (path, sent.video_frames)
}

fn video_packets(file: &Path) -> usize {
    probe_packets(file)
        .expect("ffprobe runs")
        .iter()
        .filter(|p| p.video)
        .count()
}

#[test]
fn a_recording_in_progress_plays_up_to_its_last_cluster() {
    let dir = temp_dir("live");
    let (file, _) = record_without_finishing(&dir, Codec::Vp8, Duration::from_millis(5_500));
    let streams = probe_streams(&file).expect("ffprobe runs");
    assert_eq!(streams.len(), 2, "{streams:?}");
    assert_eq!(decode_errors(&file).expect("ffmpeg runs"), "");
    // Clusters start at each keyframe (every second): the ones before 5 s are on disk.
    let frames = video_packets(&file);
    assert!((120..=150).contains(&frames), "{frames} frames readable");
    let info = RecordingInfo::read(&file).expect("info");
    assert!(!info.seekable);
    assert!(
        info.duration >= Duration::from_secs(4),
        "{:?}",
        info.duration
    );
}

#[test]
fn a_killed_recording_decodes_to_its_last_cluster_and_recovers() {
    let dir = temp_dir("killed");
    for codec in [Codec::Vp8, Codec::H264] {
        let (file, _) = record_without_finishing(&dir, codec, Duration::from_secs(60));
        let whole = std::fs::read(&file).expect("read");
        for fraction in [0.37, 0.81] {
            let cut = dir.join(format!(
                "cut-{codec:?}-{fraction}.{}",
                file.extension().and_then(|e| e.to_str()).unwrap_or("webm")
            ));
            let at = (whole.len() as f64 * fraction) as usize;
            std::fs::write(&cut, &whole[..at]).expect("write cut file");

            // Up to the cut, the file plays (ffmpeg complains only about the cut itself).
            let readable = video_packets(&cut);
            assert!(
                readable > 30,
                "{codec:?}: {readable} frames before a cut at {at} bytes"
            );

            let info = recover(&cut).expect("recover");
            assert!(info.seekable);
            assert!(has_cues(&cut).expect("the file reads"));
            assert_eq!(
                decode_errors(&cut).expect("ffmpeg runs"),
                "",
                "{codec:?} decodes cleanly after recovery"
            );
            let kept = video_packets(&cut);
            assert!(
                kept + 31 >= readable && kept <= readable,
                "{codec:?}: kept {kept} of {readable} frames"
            );
            let duration = probe_duration(&cut)
                .expect("ffprobe runs")
                .expect("a Duration after recovery")
                * 1000.0;
            assert!(
                (duration - kept as f64 * 1000.0 / 30.0).abs() <= 100.0,
                "duration {duration} for {kept} frames"
            );
            assert_eq!(
                seek_errors(&cut, duration / 2000.0).expect("ffmpeg runs"),
                ""
            );
            // Recovering again changes nothing.
            assert_eq!(recover(&cut).expect("recover again"), info);
        }
    }
}

#[test]
fn a_file_cut_inside_its_header_cannot_be_recovered() {
    let dir = temp_dir("header");
    let (file, _) = record_without_finishing(&dir, Codec::Vp8, Duration::from_secs(2));
    let whole = std::fs::read(&file).expect("read");
    let cut = dir.join("cut.webm");
    std::fs::write(&cut, &whole[..60]).expect("write");
    let error = recover(&cut).expect_err("nothing to recover");
    assert!(error.to_string().contains("Tracks"), "{error}");
}
