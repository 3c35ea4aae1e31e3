//! The recorder fed arbitrary RTP (depacketizing VP8, VP9, H264 and Opus from whatever
//! payloads a publisher sends), sender reports and publisher changes, then finished:
//! nothing panics, and the finished file reads back.
#![no_main]

mod common;

use common::Input;
use directo_recorder::{Recorder, RecordingInfo, RecordingTracks};
use directo_sfu::{Codec, MediaKind};
use libfuzzer_sys::fuzz_target;
use rtc::rtp::Packet;
use rtc::shared::marshal::Unmarshal;
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::{Duration, Instant, SystemTime};

const VIDEO: [Codec; 3] = [Codec::Vp8, Codec::Vp9, Codec::H264];

fn dir() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        std::env::temp_dir().join(format!("directo-fuzz-recorder-{}", std::process::id()))
    })
}

fuzz_target!(|data: &[u8]| {
    let mut input = Input(data);
    let first = input.byte().unwrap_or(0);
    let tracks = RecordingTracks {
        audio: (first & 4 == 0).then_some(Codec::Opus),
        video: Some(VIDEO[usize::from(first % 3)]),
    };
    let dir = dir();
    let _ = std::fs::remove_dir_all(dir);
    let mut now = Instant::now();
    let Ok(mut recorder) = Recorder::start(dir, "fuzz", tracks, now, SystemTime::now()) else {
        return;
    };
    while let Some(op) = input.byte() {
        match op % 8 {
            0..=4 => {
                let Some(raw) = input.long_chunk() else { break };
                let kind = if op % 8 == 0 {
                    MediaKind::Audio
                } else {
                    MediaKind::Video
                };
                let mut buf = raw;
                if let Ok(packet) = Packet::unmarshal(&mut buf) {
                    // An error here is the recorder refusing to write, not a crash.
                    if recorder.push(kind, packet, now).is_err() {
                        break;
                    }
                }
            }
            5 => {
                let kind = if input.byte().unwrap_or(0) % 2 == 0 {
                    MediaKind::Audio
                } else {
                    MediaKind::Video
                };
                let ssrc = u32::from(input.u16().unwrap_or(0));
                let ntp = u64::from(input.u16().unwrap_or(0)) << 30;
                let rtp = u32::from(input.u16().unwrap_or(0)) << 12;
                recorder.sender_report(kind, ssrc, ntp, rtp, now);
            }
            6 => {
                let step = u64::from(input.byte().unwrap_or(0));
                now += Duration::from_millis(step * 4);
                recorder.packets_lost(now);
            }
            _ => {
                let video = VIDEO[usize::from(input.byte().unwrap_or(0) % 3)];
                let tracks = RecordingTracks {
                    audio: Some(Codec::Opus),
                    video: Some(video),
                };
                if recorder.publisher_changed(tracks, now).is_err() {
                    break;
                }
            }
        }
        while recorder.poll_output().is_some() {}
    }
    if let Ok(files) = recorder.finish(now + Duration::from_millis(10)) {
        for file in files {
            RecordingInfo::read(&file.path).expect("a finished recording reads back");
        }
    }
});
