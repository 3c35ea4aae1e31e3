//! Recording over a bad network and an unsteady publisher: loss, reordering, tracks that
//! start at different moments, RTP timestamp wraparound, and a publisher who reconnects.

mod common;

use std::time::Duration;

use common::*;
use directo_recorder::replay::{ReplayInput, replay};
use directo_sfu::Codec;
use directo_testkit::ffmpeg::{ProbedPacket, decode_errors, probe_duration, probe_packets};

fn gaps_resume_at_keyframes(packets: &[ProbedPacket]) {
    let video: Vec<&ProbedPacket> = packets.iter().filter(|p| p.video).collect();
    assert!(video[0].keyframe, "video starts with a keyframe");
    for pair in video.windows(2) {
        if pair[1].pts_ms() - pair[0].pts_ms() > 50.0 {
            assert!(
                pair[1].keyframe,
                "video resumes at a keyframe after a gap at {} ms",
                pair[0].pts_ms()
            );
        }
    }
}

/// Every recorded audio frame sits where it was captured (up to one shift for the whole
/// file): loss leaves gaps and moves nothing.
fn audio_keeps_its_timestamps(packets: &[ProbedPacket], sent_ms: &[u64]) {
    let audio: Vec<f64> = packets
        .iter()
        .filter(|p| !p.video)
        .map(|p| p.pts_ms())
        .collect();
    let misses = |shift: f64| {
        audio
            .iter()
            .filter(|&&pts| {
                !sent_ms
                    .iter()
                    .any(|&s| (s as f64 + shift - pts).abs() <= 1.0)
            })
            .count()
    };
    let best = sent_ms[..5]
        .iter()
        .map(|&s| misses(audio[0] - s as f64))
        .min()
        .unwrap_or(usize::MAX);
    assert_eq!(best, 0, "audio frames moved from their capture times");
}

#[test]
fn five_percent_loss_with_reordering_decodes_cleanly() {
    for (video, seed) in [
        (Codec::Vp8, 7),
        (Codec::Vp9, 11),
        (Codec::H264, 7),
        (Codec::H264, 13),
    ] {
        let dir = temp_dir("loss");
        let (tracks, frames) = source(&dir, video, 6, 15);
        let send = Send {
            loss: 0.05,
            jitter_ms: 25,
            seed,
            ..Send::default()
        };
        let sent = packetize(tracks, &frames, &send);
        assert!(sent.video_packets_dropped > 0);
        let report = replay(dir.join("rec"), "lossy", tracks, sent.inputs).expect("replay");
        let file = &report.recordings[0].path;

        assert_eq!(
            decode_errors(file).expect("ffmpeg runs"),
            "",
            "{video:?} decodes without an error"
        );
        let packets = probe_packets(file).expect("ffprobe runs");
        let recorded = packets.iter().filter(|p| p.video).count();
        assert!(
            recorded < sent.video_frames,
            "{video:?}: some frames were dropped"
        );
        let keyframes = packets.iter().filter(|p| p.video && p.keyframe).count();
        assert!(
            keyframes >= 3,
            "{video:?}: video resumes at later keyframes ({recorded} of {} frames)",
            sent.video_frames
        );
        gaps_resume_at_keyframes(&packets);
        audio_keeps_its_timestamps(&packets, &sent.audio_ms);
        assert!(
            report.keyframe_requests > 1,
            "keyframes were asked for after loss"
        );
        assert!(report.video_frames_dropped > 0);
    }
}

fn first_pts(packets: &[ProbedPacket], video: bool) -> f64 {
    packets
        .iter()
        .find(|p| p.video == video)
        .expect("a packet")
        .pts_ms()
}

#[test]
fn tracks_starting_apart_stay_in_sync() {
    let dir = temp_dir("sync");
    let (tracks, frames) = source(&dir, Codec::Vp8, 4, 30);
    for sender_reports in [true, false] {
        let send = Send {
            video_delay_ms: 700,
            jitter_ms: 30,
            sender_reports,
            ..Send::default()
        };
        let sent = packetize(tracks, &frames, &send);
        let report = replay(
            dir.join(format!("rec-{sender_reports}")),
            "sync",
            tracks,
            sent.inputs,
        )
        .expect("replay");
        let packets = probe_packets(&report.recordings[0].path).expect("ffprobe runs");
        let offset = first_pts(&packets, true) - first_pts(&packets, false);
        assert!(
            (offset - 700.0).abs() <= 20.0,
            "video starts {offset} ms after audio, sent 700 ms (sender reports: {sender_reports})"
        );
    }
}

#[test]
fn sender_reports_fix_sync_that_arrival_times_get_wrong() {
    // Video packets arrive 80 ms later than audio ones (a deeper send queue): only the
    // sender reports tell that both tracks were captured together.
    let dir = temp_dir("sr");
    let (tracks, frames) = source(&dir, Codec::Vp8, 4, 30);
    let sent = packetize(tracks, &frames, &Send::default());
    let mut inputs: Vec<_> = sent
        .inputs
        .into_iter()
        .map(|(at, input)| match input {
            ReplayInput::Packet(directo_sfu::MediaKind::Video, _) => {
                (at + Duration::from_millis(80), input)
            }
            other => (at, other),
        })
        .collect();
    inputs.sort_by_key(|(at, _)| *at);
    let report = replay(dir.join("rec"), "sr", tracks, inputs).expect("replay");
    let packets = probe_packets(&report.recordings[0].path).expect("ffprobe runs");
    let offset = first_pts(&packets, true) - first_pts(&packets, false);
    assert!(
        offset.abs() <= 20.0,
        "audio and video captured together are {offset} ms apart"
    );
}

#[test]
fn rtp_timestamp_wraparound_is_invisible() {
    let dir = temp_dir("wrap");
    let (tracks, frames) = source(&dir, Codec::Vp8, 4, 30);
    let send = Send {
        audio_base: u32::MAX - 48_000,
        video_base: u32::MAX - 2 * 90_000,
        ..Send::default()
    };
    let sent = packetize(tracks, &frames, &send);
    let report = replay(dir.join("rec"), "wrap", tracks, sent.inputs).expect("replay");
    let file = &report.recordings[0].path;
    let packets = probe_packets(file).expect("ffprobe runs");
    assert_eq!(
        packets.iter().filter(|p| p.video).count(),
        sent.video_frames
    );
    let duration = probe_duration(file)
        .expect("ffprobe runs")
        .expect("duration")
        * 1000.0;
    assert!(
        (duration - sent.duration_ms as f64).abs() <= 100.0,
        "duration {duration}"
    );
    assert_eq!(decode_errors(file).expect("ffmpeg runs"), "");
}

#[test]
fn reconnecting_publisher_continues_the_file_with_monotonic_timestamps() {
    let dir = temp_dir("reconnect");
    let (tracks, frames) = source(&dir, Codec::Vp8, 4, 30);
    let (first, second): (Vec<_>, Vec<_>) = frames.iter().cloned().partition(|f| f.at_ms < 2_000);
    let second: Vec<_> = second
        .into_iter()
        .map(|mut f| {
            f.at_ms -= 2_000;
            f
        })
        .collect();
    for explicit in [true, false] {
        let a = packetize(tracks, &first, &Send::default());
        let b = packetize(
            tracks,
            &second,
            &Send {
                start_ms: 3_000,
                audio_ssrc: 0x3333,
                video_ssrc: 0x4444,
                audio_base: 77_777,
                video_base: 4_000_000_000,
                ..Send::default()
            },
        );
        let mut inputs = a.inputs;
        if explicit {
            inputs.push((
                Duration::from_millis(2_900),
                ReplayInput::PublisherChanged(tracks),
            ));
        }
        inputs.extend(b.inputs);
        let report =
            replay(dir.join(format!("rec-{explicit}")), "again", tracks, inputs).expect("replay");
        assert_eq!(report.recordings.len(), 1, "the same file goes on");
        let file = &report.recordings[0].path;
        assert_eq!(decode_errors(file).expect("ffmpeg runs"), "");
        let packets = probe_packets(file).expect("ffprobe runs");
        for video in [true, false] {
            let pts: Vec<f64> = packets
                .iter()
                .filter(|p| p.video == video)
                .map(|p| p.pts_ms())
                .collect();
            assert!(
                pts.windows(2).all(|w| w[1] > w[0]),
                "monotonic timestamps (video: {video})"
            );
            let gap = pts.windows(2).map(|w| w[1] - w[0]).fold(0.0, f64::max);
            assert!(
                (gap - 1_000.0).abs() <= 80.0,
                "the gap is the time away: {gap} ms (video: {video})"
            );
        }
        assert_eq!(
            packets.iter().filter(|p| p.video).count(),
            a.video_frames + b.video_frames
        );
        let duration = probe_duration(file)
            .expect("ffprobe runs")
            .expect("duration")
            * 1000.0;
        assert!(
            (duration - 5_000.0).abs() <= 100.0,
            "duration {duration} ms"
        );
    }
}
