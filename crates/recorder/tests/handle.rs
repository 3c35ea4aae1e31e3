//! The recorder on its own thread: the forwarding path never waits, a full channel is
//! counted, and video after the hole resumes at a keyframe that the recorder asks for.
//! Also: a publisher with other codecs starts a new file.

mod common;

use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime};

use common::*;
use directo_recorder::replay::{ReplayInput, replay};
use directo_recorder::{Recorder, RecorderEvent, RecorderHandle, RecordingTracks};
use directo_sfu::Codec;
use directo_testkit::ffmpeg::{decode_errors, probe_packets};

#[test]
fn a_full_channel_drops_and_counts_then_video_resumes_at_a_keyframe() {
    let dir = temp_dir("handle");
    let (tracks, frames) = source(&dir, Codec::Vp8, 4, 15);
    let sent = packetize(tracks, &frames, &Send::default());
    let origin = Instant::now();
    let recorder =
        Recorder::start(dir.join("rec"), "busy", tracks, origin, SystemTime::now()).expect("start");

    // The first keyframe request (at start) holds the recorder thread until the test has
    // pushed a second of media: the channel must overflow meanwhile.
    let (release_tx, release_rx) = mpsc::channel::<()>();
    let (events_tx, events_rx) = mpsc::channel::<bool>();
    let mut first = true;
    let handle = RecorderHandle::spawn(recorder, 64, move |event| {
        if first {
            first = false;
            let _ = release_rx.recv();
        }
        let _ = events_tx.send(matches!(event, RecorderEvent::KeyframeNeeded));
    })
    .expect("spawn");

    let mut inputs = sent.inputs.into_iter().peekable();
    let push = |handle: &RecorderHandle, at: Duration, input: ReplayInput| match input {
        ReplayInput::Packet(kind, packet) => handle.push(kind, packet, origin + at),
        ReplayInput::SenderReport {
            kind,
            ssrc,
            ntp,
            rtp,
        } => handle.sender_report(kind, ssrc, ntp, rtp, origin + at),
        ReplayInput::PublisherChanged(tracks) => handle.publisher_changed(tracks, origin + at),
    };
    while let Some((at, input)) = inputs.next_if(|(at, _)| *at < Duration::from_secs(1)) {
        push(&handle, at, input);
    }
    assert!(
        handle.dropped() > 0,
        "a full channel drops instead of waiting"
    );
    release_tx.send(()).expect("release");
    for (at, input) in inputs {
        push(&handle, at, input);
        // Pace the rest like a live stream would, so nothing else is dropped.
        std::thread::sleep(Duration::from_micros(300));
    }
    let dropped = handle.dropped();
    let recordings = handle.finish().expect("finish");
    let keyframe_requests = events_rx.try_iter().filter(|&keyframe| keyframe).count();
    assert!(
        keyframe_requests >= 2,
        "asked at start and after the hole: {keyframe_requests}"
    );

    let file = &recordings[0].path;
    assert_eq!(decode_errors(file).expect("ffmpeg runs"), "");
    let packets = probe_packets(file).expect("ffprobe runs");
    let video: Vec<_> = packets.iter().filter(|p| p.video).collect();
    assert!(video[0].keyframe);
    assert!(
        video.len() < sent.video_frames,
        "video was lost with {dropped} dropped commands"
    );
    assert!(
        video.len() >= sent.video_frames / 2,
        "{} of {} frames",
        video.len(),
        sent.video_frames
    );
}

#[test]
fn a_publisher_with_other_codecs_starts_a_new_file() {
    let dir = temp_dir("codecs");
    let (vp8_tracks, vp8_frames) = source(&dir, Codec::Vp8, 2, 30);
    let (h264_tracks, h264_frames) = source(&dir, Codec::H264, 2, 30);
    let first = packetize(vp8_tracks, &vp8_frames, &Send::default());
    let second = packetize(
        h264_tracks,
        &h264_frames,
        &Send {
            start_ms: 3_000,
            audio_ssrc: 5,
            video_ssrc: 6,
            ..Send::default()
        },
    );
    let mut inputs = first.inputs;
    inputs.push((
        Duration::from_millis(2_500),
        ReplayInput::PublisherChanged(h264_tracks),
    ));
    inputs.extend(second.inputs);
    let report = replay(dir.join("rec"), "switch", vp8_tracks, inputs).expect("replay");
    let codecs: Vec<_> = report.recordings.iter().map(|r| r.video).collect();
    assert_eq!(codecs, vec![Some(Codec::Vp8), Some(Codec::H264)]);
    for recording in &report.recordings {
        assert!(recording.seekable);
        assert_eq!(decode_errors(&recording.path).expect("ffmpeg runs"), "");
    }
    assert_eq!(
        RecordingTracks {
            audio: Some(Codec::Opus),
            video: Some(Codec::H264)
        }
        .extension(),
        "mkv"
    );
}
