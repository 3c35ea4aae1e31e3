//! One published track on its way into the recording: RTP packets are reordered and
//! reassembled into frames by the `rtc` crate's `SampleBuilder` (reorder window of
//! [`REORDER_WINDOW`]), stamped on the recorder's timeline by the track's clock, and — for
//! video — gated so that after any loss nothing is written until the next keyframe.
//! Owns the per-track RTP state (SSRC, sequence, reassembly); not the file.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use directo_sfu::{Codec, MediaKind};
use rtc::media::io::sample_builder::SampleBuilder;
use rtc::rtp::Packet;

use crate::bitstream::{VideoFrameInfo, inspect_video, opus_packet_samples};
use crate::clock::{Nanos, TrackClock};
use crate::depacketizer::CountingDepacketizer;

/// How long a missing packet is waited for before its frame is given up.
pub const REORDER_WINDOW: Duration = Duration::from_millis(100);
/// Packets held at most while waiting; above the packet count of the largest keyframe.
const MAX_LATE_PACKETS: u16 = 1_000;

/// A frame reassembled from RTP, with its extended RTP timestamp.
#[derive(Debug)]
pub(crate) struct TrackFrame {
    pub rtp: i64,
    pub data: Bytes,
    pub keyframe: bool,
    pub duration_ms: Option<f64>,
    pub video: Option<VideoFrameInfo>,
}

/// Reassembly and loss handling for one track.
pub(crate) struct TrackPipeline {
    codec: Codec,
    builder: SampleBuilder<CountingDepacketizer>,
    failures: Arc<AtomicU64>,
    seen_failures: u64,
    pub(crate) clock: TrackClock,
    ssrc: Option<u32>,
    /// Highest sequence number and its timestamp, for the flushing sentinel.
    highest: Option<(u16, u32)>,
    need_keyframe: bool,
    frames_dropped: u64,
    /// Which of the recording's publishers (counted from 0) the packets come from.
    run: u64,
}

impl TrackPipeline {
    /// A fresh pipeline for `codec`, for the recording's `run`th publisher.
    pub(crate) fn new(codec: Codec, run: u64) -> Self {
        let failures = Arc::new(AtomicU64::new(0));
        let depacketizer = CountingDepacketizer::new(codec, failures.clone());
        TrackPipeline {
            codec,
            builder: SampleBuilder::new(MAX_LATE_PACKETS, depacketizer, codec.clock_rate())
                .with_max_time_delay(REORDER_WINDOW),
            failures,
            seen_failures: 0,
            clock: TrackClock::new(codec.clock_rate()),
            ssrc: None,
            highest: None,
            need_keyframe: codec.kind() == MediaKind::Video,
            frames_dropped: 0,
            run,
        }
    }

    /// Which of the recording's publishers the track's packets come from.
    pub(crate) fn run(&self) -> u64 {
        self.run
    }

    /// The SSRC of the packets seen, once there are some.
    pub(crate) fn ssrc(&self) -> Option<u32> {
        self.ssrc
    }

    /// Whether video is being dropped until a keyframe arrives.
    pub(crate) fn wants_keyframe(&self) -> bool {
        self.need_keyframe
    }

    /// Video frames dropped so far because they could not be decoded.
    pub(crate) fn frames_dropped(&self) -> u64 {
        self.frames_dropped
    }

    /// Makes the track start over for the `run`th publisher; the caller flushes first.
    pub(crate) fn reset(&mut self, run: u64) {
        let dropped = self.frames_dropped;
        *self = TrackPipeline::new(self.codec, run);
        self.frames_dropped = dropped;
    }

    /// Declares that packets went missing outside the builder's view (a full channel):
    /// video waits for a keyframe.
    pub(crate) fn mark_loss(&mut self) {
        if self.codec.kind() == MediaKind::Video {
            self.need_keyframe = true;
        }
    }

    /// Takes one packet. The caller has checked the SSRC.
    pub(crate) fn push(&mut self, packet: Packet, arrival: Nanos, now: Instant) {
        let header = &packet.header;
        self.ssrc = Some(header.ssrc);
        self.clock.on_packet(header.timestamp, arrival);
        let newer = self
            .highest
            .is_none_or(|(seq, _)| header.sequence_number.wrapping_sub(seq) < 0x8000);
        if newer {
            self.highest = Some((header.sequence_number, header.timestamp));
        }
        self.builder.push(now, packet);
    }

    /// Pushes an empty packet just after the newest one, so the builder releases the last
    /// complete frame it holds (it otherwise waits for the next frame to begin).
    pub(crate) fn push_flush_sentinel(&mut self, now: Instant) {
        let (Some((seq, ts)), Some(ssrc)) = (self.highest, self.ssrc) else {
            return;
        };
        let mut sentinel = Packet::default();
        sentinel.header.version = 2;
        sentinel.header.ssrc = ssrc;
        sentinel.header.sequence_number = seq.wrapping_add(1);
        sentinel.header.timestamp = ts.wrapping_add(1);
        self.highest = Some((seq.wrapping_add(1), ts.wrapping_add(1)));
        self.builder.push(now, sentinel);
    }

    /// The next frame fit to be written, if one is complete.
    pub(crate) fn pop(&mut self, now: Instant) -> Option<TrackFrame> {
        loop {
            let sample = self.builder.pop(now)?;
            let failures = self.failures.load(Ordering::Relaxed);
            let lost = sample.prev_dropped_packets > sample.prev_padding_packets
                || failures != self.seen_failures;
            self.seen_failures = failures;
            if sample.data.is_empty() {
                continue;
            }
            let rtp = self.clock.extend(sample.packet_timestamp);
            if self.codec.kind() == MediaKind::Audio {
                // A lost audio packet just leaves a gap: every frame keeps its own timestamp.
                let Some(samples) = opus_packet_samples(&sample.data) else {
                    continue;
                };
                return Some(TrackFrame {
                    rtp,
                    data: sample.data,
                    keyframe: true,
                    duration_ms: Some(f64::from(samples) / 48.0),
                    video: None,
                });
            }
            let info = inspect_video(self.codec, &sample.data);
            if lost || info.is_none() {
                self.need_keyframe = true;
            }
            let Some(info) = info.filter(|info| info.keyframe || !self.need_keyframe) else {
                self.frames_dropped += 1;
                continue;
            };
            if info.keyframe {
                self.need_keyframe = false;
            }
            return Some(TrackFrame {
                rtp,
                data: sample.data,
                keyframe: info.keyframe,
                duration_ms: None,
                video: Some(info),
            });
        }
    }
}
