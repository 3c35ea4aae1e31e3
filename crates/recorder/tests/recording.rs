//! A clean stream of each codec pairing is recorded whole: right container and codecs, every
//! video frame, the duration that was sent, a clean decode, and an index to seek with.

mod common;

use common::*;
use directo_recorder::replay::replay;
use directo_recorder::{RecordingInfo, list_recordings};
use directo_sfu::Codec;
use directo_testkit::ffmpeg::{
    decode_errors, has_cues, probe_duration, probe_packets, probe_streams, seek_errors,
};

fn records_cleanly(video: Codec, ext: &str, codec_name: &str) {
    let dir = temp_dir("clean");
    let (tracks, frames) = source(&dir, video, 4, 30);
    assert_eq!(tracks.video, Some(video));
    let sent = packetize(tracks, &frames, &Send::default());
    let report = replay(dir.join("rec"), "studio", tracks, sent.inputs).expect("replay");

    assert_eq!(report.recordings.len(), 1);
    let info = &report.recordings[0];
    let file = &info.path;
    assert_eq!(file.extension().and_then(|e| e.to_str()), Some(ext));
    assert!(file.starts_with(dir.join("rec").join("studio")));
    let name = file
        .file_stem()
        .and_then(|s| s.to_str())
        .expect("file name");
    assert_eq!(name.len(), "2026-11-22T00-41-07Z".len(), "file name {name}");
    assert!(name.ends_with('Z') && name.as_bytes()[10] == b'T');

    let streams = probe_streams(file).expect("ffprobe runs");
    let has = |name: &str, kind: &str| {
        streams
            .iter()
            .any(|s| s.codec_name == name && s.codec_type == kind)
    };
    assert!(has(codec_name, "video"), "{streams:?}");
    assert!(has("opus", "audio"), "{streams:?}");

    let packets = probe_packets(file).expect("ffprobe runs");
    let video_packets = packets.iter().filter(|p| p.video).count();
    assert_eq!(
        video_packets, sent.video_frames,
        "every sent video frame is recorded"
    );

    let duration = probe_duration(file)
        .expect("ffprobe runs")
        .expect("a Duration")
        * 1000.0;
    assert!(
        (duration - sent.duration_ms as f64).abs() <= 100.0,
        "duration {duration} ms, sent {} ms",
        sent.duration_ms
    );
    assert_eq!(decode_errors(file).expect("ffmpeg runs"), "");
    assert!(has_cues(file).expect("the file reads"), "Cues written");
    assert_eq!(seek_errors(file, 2.5).expect("ffmpeg runs"), "");
    assert_eq!(
        report.keyframe_requests, 1,
        "one request when recording starts, none after"
    );

    let read = RecordingInfo::read(file).expect("read info");
    assert_eq!(read.stream, "studio");
    assert_eq!(read.video, Some(video));
    assert_eq!(read.audio, Some(Codec::Opus));
    assert_eq!(read.video_size, Some((320, 240)));
    assert!(read.seekable);
    assert_eq!(read.size, std::fs::metadata(file).expect("metadata").len());
    assert!((read.duration.as_secs_f64() * 1000.0 - duration).abs() < 2.0);
    assert_eq!(list_recordings(dir.join("rec")).expect("list"), vec![read]);
}

#[test]
fn vp8_and_opus_record_to_webm() {
    records_cleanly(Codec::Vp8, "webm", "vp8");
}

#[test]
fn vp9_and_opus_record_to_webm() {
    records_cleanly(Codec::Vp9, "webm", "vp9");
}

#[test]
fn h264_and_opus_record_to_matroska() {
    records_cleanly(Codec::H264, "mkv", "h264");
}
