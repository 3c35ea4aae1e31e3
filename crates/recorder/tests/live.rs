//! The live stream a restream encoder reads (`Recorder::start_live`): the same frames as a
//! recording, as Matroska written into a pipe without ever seeking back, which ffmpeg reads
//! whole and decodes without an error.

mod common;

use common::*;
use directo_recorder::Recorder;
use directo_recorder::replay::ReplayInput;
use directo_sfu::Codec;
use directo_testkit::ffmpeg::{decode_errors, probe_packets, probe_streams};
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime};

/// A writer that keeps what it is given (stands for the encoder's stdin).
#[derive(Clone, Default)]
struct Pipe(Arc<Mutex<Vec<u8>>>);

impl Write for Pipe {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("lock").extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn streams_live(video: Codec, codec_name: &str) {
    let dir = temp_dir("live");
    let (tracks, frames) = source(&dir, video, 4, 30);
    let sent = packetize(tracks, &frames, &Send::default());
    let pipe = Pipe::default();
    let origin = Instant::now();
    let mut recorder = Recorder::start_live(
        Box::new(pipe.clone()),
        "studio",
        tracks,
        origin,
        SystemTime::now(),
    )
    .expect("starts");
    let mut last = origin;
    let mut written_at_2s = None;
    for (offset, input) in sent.inputs {
        let now = origin + offset;
        last = last.max(now);
        match input {
            ReplayInput::Packet(kind, packet) => recorder.push(kind, packet, now).expect("push"),
            ReplayInput::SenderReport {
                kind,
                ssrc,
                ntp,
                rtp,
            } => recorder.sender_report(kind, ssrc, ntp, rtp, now),
            ReplayInput::PublisherChanged(tracks) => recorder
                .publisher_changed(tracks, now)
                .expect("same codecs"),
        }
        // Frames leave while the stream goes on, not when a cluster closes.
        if offset.as_millis() >= 2_000 && written_at_2s.is_none() {
            written_at_2s = Some(pipe.0.lock().expect("lock").len());
        }
    }
    let files = recorder.finish(last).expect("finish");
    assert!(files.is_empty(), "a live stream makes no file: {files:?}");
    let total = pipe.0.lock().expect("lock").len();
    let early = written_at_2s.expect("the source lasts 4 s");
    assert!(
        early > total / 4,
        "only {early} of {total} bytes written after 2 s of 4"
    );
    let file = dir.join(format!("live-{codec_name}.mkv"));
    std::fs::write(&file, pipe.0.lock().expect("lock").as_slice()).expect("write");

    let streams = probe_streams(&file).expect("ffprobe runs");
    let mut codecs: Vec<(String, String)> = streams
        .iter()
        .map(|s| (s.codec_type.clone(), s.codec_name.clone()))
        .collect();
    codecs.sort();
    assert_eq!(
        codecs,
        [
            ("audio".to_owned(), "opus".to_owned()),
            ("video".to_owned(), codec_name.to_owned())
        ]
    );
    let packets = probe_packets(&file).expect("ffprobe runs");
    assert_eq!(
        packets.iter().filter(|p| p.video).count(),
        sent.video_frames,
        "every video frame is in the live stream"
    );
    assert_eq!(decode_errors(&file).expect("ffmpeg runs"), "");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn vp8_and_opus_stream_live() {
    streams_live(Codec::Vp8, "vp8");
}

#[test]
fn h264_and_opus_stream_live() {
    streams_live(Codec::H264, "h264");
}

#[test]
fn other_codecs_end_a_live_stream() {
    let pipe = Pipe::default();
    let now = Instant::now();
    let tracks = directo_recorder::RecordingTracks {
        audio: Some(Codec::Opus),
        video: Some(Codec::Vp8),
    };
    let mut recorder =
        Recorder::start_live(Box::new(pipe), "studio", tracks, now, SystemTime::now())
            .expect("starts");
    let h264 = directo_recorder::RecordingTracks {
        video: Some(Codec::H264),
        ..tracks
    };
    assert!(recorder.publisher_changed(tracks, now).is_ok());
    assert!(recorder.publisher_changed(h264, now).is_err());
}
