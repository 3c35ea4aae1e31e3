//! Shared by the recorder's tests: real media made by Debian's ffmpeg from its test sources,
//! RTP made from it with the `rtc` payloaders, and ffprobe/ffmpeg (`directo-testkit`) to
//! judge the result.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use directo_recorder::RecordingTracks;
use directo_recorder::replay::{Packetizer, ReplayInput, SourceFrame, read_source};
use directo_sfu::{Codec, MediaKind};
use directo_testkit::ffmpeg::{SourceVideo, make_test_media};
use directo_testkit::scratch::scratch_dir;

/// A fresh empty directory for one test.
pub fn temp_dir(name: &str) -> PathBuf {
    scratch_dir(&format!("recorder-{name}")).expect("create temp dir")
}

/// Encodes `seconds` of ffmpeg's test picture and a sine tone; keyframe every `gop` frames.
pub fn make_source(dir: &Path, video: Codec, seconds: u32, gop: u32) -> PathBuf {
    let video = match video {
        Codec::Vp8 => SourceVideo::Vp8,
        Codec::Vp9 => SourceVideo::Vp9,
        Codec::H264 => SourceVideo::H264,
        Codec::Opus => unreachable!("video codec expected"),
    };
    let out = dir.join(format!("source-{video:?}.{}", video.extension()));
    make_test_media(&out, video, seconds, gop).expect("ffmpeg makes the source");
    out
}

/// How a simulated publisher sends a source.
#[derive(Clone)]
pub struct Send {
    /// Drop this fraction of packets (deterministic pseudo-random).
    pub loss: f64,
    /// Up to this much extra arrival delay per packet (reorders packets within it).
    pub jitter_ms: u64,
    /// Start the video this long after the audio (capture time and arrival).
    pub video_delay_ms: u64,
    /// Send sender reports every second (from the start).
    pub sender_reports: bool,
    /// Send sender reports that are a little off instead (when `sender_reports` is set).
    pub skewed_reports: Option<SkewedReports>,
    /// RTP timestamp bases.
    pub audio_base: u32,
    pub video_base: u32,
    pub audio_ssrc: u32,
    pub video_ssrc: u32,
    /// Offset of capture time zero from the replay's start.
    pub start_ms: u64,
    pub seed: u64,
}

impl Default for Send {
    fn default() -> Self {
        Send {
            loss: 0.0,
            jitter_ms: 0,
            video_delay_ms: 0,
            sender_reports: true,
            skewed_reports: None,
            audio_base: 1_000,
            video_base: 2_000_000,
            audio_ssrc: 0x1111,
            video_ssrc: 0x2222,
            start_ms: 0,
            seed: 7,
        }
    }
}

/// Sender reports as some stacks (aiortc among them) send them: every 0.5 to 1.5 s, with the
/// RTP time of the last packet sent before the report rather than the report's own, and an
/// NTP time off by up to `ntp_error_ms` either way. Intervals and errors are drawn from the
/// `Send`'s seed.
#[derive(Clone, Copy, Debug)]
pub struct SkewedReports {
    pub ntp_error_ms: u64,
}

/// What was sent, to compare with what was recorded.
pub struct Sent {
    pub inputs: Vec<(Duration, ReplayInput)>,
    pub video_frames: usize,
    pub video_packets_dropped: usize,
    /// Capture times of the audio frames sent, ms.
    pub audio_ms: Vec<u64>,
    /// Capture times of the video frames sent, ms.
    pub video_ms: Vec<u64>,
    /// Media time span of the sent frames (first to last frame end), ms.
    pub duration_ms: u64,
}

fn xorshift(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

/// NTP time (64-bit fixed point) of capture time `ms` for a publisher whose clock reads
/// 3_900_000_000 s at capture time zero.
pub fn ntp(ms: u64) -> u64 {
    ntp_of_nanos(i128::from(ms) * 1_000_000)
}

/// Like [`ntp`], for a capture time in nanoseconds (negative before capture time zero).
pub fn ntp_of_nanos(capture: i128) -> u64 {
    let nanos = (3_900_000_000i128 * 1_000_000_000 + capture) as u128;
    let seconds = (nanos / 1_000_000_000) as u64;
    let fraction = ((nanos % 1_000_000_000) << 32) / 1_000_000_000;
    seconds << 32 | fraction as u64
}

/// Turns a source's frames into timed RTP packets and sender reports.
pub fn packetize(tracks: RecordingTracks, frames: &[SourceFrame], send: &Send) -> Sent {
    let mut audio = Packetizer::new(Codec::Opus, send.audio_ssrc, 100, send.audio_base);
    let mut video = Packetizer::new(
        tracks.video.expect("video track"),
        send.video_ssrc,
        60_000,
        send.video_base,
    );
    let mut rng = send.seed.max(1);
    let mut inputs = Vec::new();
    let mut video_frames = 0;
    let mut dropped = 0;
    let mut last_ms = 0;
    let mut audio_ms = Vec::new();
    let mut video_ms = Vec::new();
    for frame in frames {
        let capture = frame.at_ms
            + if frame.kind == MediaKind::Video {
                send.video_delay_ms
            } else {
                0
            };
        let packetizer = match frame.kind {
            MediaKind::Audio => &mut audio,
            MediaKind::Video => &mut video,
        };
        let packets = packetizer
            .packetize(&SourceFrame {
                at_ms: capture,
                ..frame.clone()
            })
            .expect("packetize");
        if frame.kind == MediaKind::Video {
            video_frames += 1;
            video_ms.push(capture);
        } else {
            audio_ms.push(capture);
        }
        last_ms = last_ms.max(
            capture
                + if frame.kind == MediaKind::Video {
                    33
                } else {
                    20
                },
        );
        for packet in packets {
            let roll = (xorshift(&mut rng) % 10_000) as f64 / 10_000.0;
            let jitter = if send.jitter_ms > 0 {
                xorshift(&mut rng) % send.jitter_ms
            } else {
                0
            };
            if roll < send.loss {
                if frame.kind == MediaKind::Video {
                    dropped += 1;
                }
                continue;
            }
            let arrival = Duration::from_millis(send.start_ms + capture + 5 + jitter);
            inputs.push((arrival, ReplayInput::Packet(frame.kind, packet)));
        }
    }
    if let (true, Some(skewed)) = (send.sender_reports, send.skewed_reports) {
        let mut rng = send.seed.wrapping_mul(0x9E37_79B9_7F4A_7C15).max(1);
        let mut at = 0;
        loop {
            at += 500 + xorshift(&mut rng) % 1_000;
            if at > last_ms {
                break;
            }
            for (kind, packetizer, ssrc, captures) in [
                (MediaKind::Audio, &audio, send.audio_ssrc, &audio_ms),
                (MediaKind::Video, &video, send.video_ssrc, &video_ms),
            ] {
                let Some(&last_sent) = captures.iter().rev().find(|&&c| c <= at) else {
                    continue;
                };
                let span = 2 * skewed.ntp_error_ms as i128 * 1_000 + 1;
                let error_us =
                    (xorshift(&mut rng) as i128 % span) - skewed.ntp_error_ms as i128 * 1_000;
                let report = ReplayInput::SenderReport {
                    kind,
                    ssrc,
                    ntp: ntp_of_nanos(i128::from(at) * 1_000_000 + error_us * 1_000),
                    rtp: packetizer.rtp_time(last_sent),
                };
                inputs.push((Duration::from_millis(send.start_ms + at + 5), report));
            }
        }
    } else if send.sender_reports {
        let end = last_ms + 1_000;
        let mut at = 0;
        while at < end {
            for (kind, packetizer, ssrc) in [
                (MediaKind::Audio, &audio, send.audio_ssrc),
                (MediaKind::Video, &video, send.video_ssrc),
            ] {
                let report = ReplayInput::SenderReport {
                    kind,
                    ssrc,
                    ntp: ntp(at),
                    rtp: packetizer.rtp_time(at),
                };
                inputs.push((Duration::from_millis(send.start_ms + at + 5), report));
            }
            at += 1_000;
        }
    }
    inputs.sort_by_key(|(at, _)| *at);
    let first = frames.iter().map(|f| f.at_ms).min().unwrap_or(0);
    Sent {
        inputs,
        video_frames,
        video_packets_dropped: dropped,
        audio_ms,
        video_ms,
        duration_ms: last_ms - first,
    }
}

/// Reads a source made by [`make_source`].
pub fn source(
    dir: &Path,
    video: Codec,
    seconds: u32,
    gop: u32,
) -> (RecordingTracks, Vec<SourceFrame>) {
    let path = make_source(dir, video, seconds, gop);
    read_source(&path).expect("read source")
}
