//! A publisher whose sender reports are a little off — NTP times up to 30 ms out either way,
//! RTP times those of the last packet sent, as aiortc and others send them — is recorded with
//! every frame at its RTP spacing and with audio and video in sync from the first frame.

mod common;

use common::*;
use directo_recorder::replay::replay;
use directo_sfu::Codec;
use directo_testkit::ffmpeg::{decode_errors, probe_packets};

/// How far off each sender report's NTP time is, at most.
const NTP_ERROR_MS: u64 = 30;
/// How far a frame may sit from its RTP spacing: the file counts whole milliseconds.
const SPACING_TOLERANCE_MS: f64 = 1.0;
/// How far apart audio and video captured together may be written.
const SYNC_TOLERANCE_MS: f64 = 20.0;

#[test]
fn reports_that_are_off_neither_jitter_a_track_nor_unsync_the_tracks() {
    let dir = temp_dir("skewed-reports");
    let (tracks, frames) = source(&dir, Codec::Vp8, 20, 30);
    let send = Send {
        skewed_reports: Some(SkewedReports {
            ntp_error_ms: NTP_ERROR_MS,
        }),
        ..Send::default()
    };
    let sent = packetize(tracks, &frames, &send);
    let report = replay(dir.join("rec"), "skewed", tracks, sent.inputs).expect("replay");
    assert_eq!(report.recordings.len(), 1);
    let file = &report.recordings[0].path;
    assert_eq!(decode_errors(file).expect("ffmpeg runs"), "");

    let packets = probe_packets(file).expect("ffprobe runs");
    let pts_of = |video: bool| -> Vec<f64> {
        packets
            .iter()
            .filter(|p| p.video == video)
            .map(|p| p.pts_ms())
            .collect()
    };
    let (video_pts, audio_pts) = (pts_of(true), pts_of(false));
    for (kind, pts, captured) in [
        ("video", &video_pts, &sent.video_ms),
        ("audio", &audio_pts, &sent.audio_ms),
    ] {
        assert_eq!(pts.len(), captured.len(), "every {kind} frame is recorded");
        for (index, (written, sent)) in pts.windows(2).zip(captured.windows(2)).enumerate() {
            let written_gap = written[1] - written[0];
            let sent_gap = (sent[1] - sent[0]) as f64;
            assert!(
                (written_gap - sent_gap).abs() <= SPACING_TOLERANCE_MS,
                "{kind} frame {} is written {written_gap} ms after the one before, \
                 captured {sent_gap} ms after it",
                index + 1
            );
        }
    }

    // The first video frame and the audio frame captured nearest to it (the source's frames
    // are not captured on one grid): written as far apart as they were captured.
    let audio_index = (0..sent.audio_ms.len())
        .min_by_key(|&i| sent.audio_ms[i].abs_diff(sent.video_ms[0]))
        .expect("audio sent");
    let captured_apart = sent.video_ms[0] as f64 - sent.audio_ms[audio_index] as f64;
    let written_apart = video_pts[0] - audio_pts[audio_index];
    eprintln!(
        "video captured {captured_apart} ms after audio is written {written_apart:.0} ms after it"
    );
    assert!(
        (written_apart - captured_apart).abs() <= SYNC_TOLERANCE_MS,
        "video captured {captured_apart} ms after audio is written {written_apart} ms after it"
    );
}
