//! Recorded media in, RTP out, and back through the recorder: the harness that tests and
//! benchmarks share. [`read_source`] reads the frames of a WebM/Matroska file (for example
//! one ffmpeg made from its test sources), [`Packetizer`] turns them into RTP packets with
//! the `rtc` crate's payloaders, and [`replay`] feeds timed packets and sender reports to a
//! [`Recorder`] on a simulated clock. To measure CPU per recorded stream-second, time
//! [`replay`] and divide by [`ReplayReport::stream_seconds`].

use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

use bytes::{BufMut, Bytes, BytesMut};
use directo_sfu::{Codec, MediaKind};
use mkv_element::FrameData;
use rtc::rtp::Packet;
use rtc::rtp::codec::{
    h264::H264Payloader, opus::OpusPayloader, vp8::Vp8Payloader, vp9::Vp9Payloader,
};
use rtc::rtp::packetizer::Payloader;

use crate::error::{RecorderError, Result};
use crate::info::RecordingInfo;
use crate::matroska;
use crate::muxer::codec_from_id;
use crate::recorder::{Recorder, RecorderOutput, RecordingTracks};

/// One encoded frame of a source file.
#[derive(Debug, Clone)]
pub struct SourceFrame {
    /// Audio or video.
    pub kind: MediaKind,
    /// Presentation time in milliseconds.
    pub at_ms: u64,
    /// The frame; H264 in Annex B form with SPS and PPS before every keyframe, as an
    /// encoder hands it to a WebRTC stack.
    pub data: Bytes,
    /// Whether the container marks it a keyframe.
    pub keyframe: bool,
}

/// Reads every frame of a WebM/Matroska file, in file order, with the tracks it holds.
pub fn read_source(path: impl AsRef<Path>) -> Result<(RecordingTracks, Vec<SourceFrame>)> {
    let path = path.as_ref();
    let mut file = std::fs::File::open(path)
        .map_err(|source| RecorderError::io("cannot open", path, source))?;
    let scanned = matroska::scan(&mut file, path)?;
    let mut tracks = RecordingTracks::default();
    let mut kinds = Vec::new();
    let mut parameter_sets = Bytes::new();
    for entry in &scanned.tracks.track_entry {
        let Some(codec) = codec_from_id(&entry.codec_id) else {
            continue;
        };
        match codec.kind() {
            MediaKind::Audio => tracks.audio = Some(codec),
            MediaKind::Video => tracks.video = Some(codec),
        }
        if codec == Codec::H264 {
            parameter_sets = entry
                .codec_private
                .as_ref()
                .and_then(|p| avcc_parameter_sets(&p.0))
                .ok_or_else(|| {
                    RecorderError::malformed(path, "H264 track without a usable avcC")
                })?;
        }
        kinds.push((*entry.track_number, codec));
    }
    let mut frames = Vec::new();
    for cluster_entry in &scanned.clusters {
        let cluster = matroska::read_cluster(&mut file, path, cluster_entry)?;
        for frame in cluster.frames() {
            let frame = frame
                .map_err(|e| RecorderError::malformed(path, format!("unreadable block: {e}")))?;
            let Some(&(_, codec)) = kinds.iter().find(|(n, _)| *n == frame.track_number) else {
                continue;
            };
            let FrameData::Single(data) = frame.data else {
                continue;
            };
            let data = if codec == Codec::H264 {
                let mut annex_b = BytesMut::new();
                if frame.is_keyframe {
                    annex_b.put_slice(&parameter_sets);
                }
                avcc_to_annex_b(data, &mut annex_b);
                annex_b.freeze()
            } else {
                Bytes::copy_from_slice(data)
            };
            frames.push(SourceFrame {
                kind: codec.kind(),
                at_ms: frame.timestamp.max(0) as u64,
                data,
                keyframe: frame.is_keyframe,
            });
        }
    }
    Ok((tracks, frames))
}

fn avcc_to_annex_b(mut data: &[u8], out: &mut BytesMut) {
    while data.len() >= 4 {
        let len = u32::from_be_bytes([data[0], data[1], data[2], data[3]]) as usize;
        let Some(unit) = data.get(4..4 + len) else {
            return;
        };
        out.put_slice(&[0, 0, 0, 1]);
        out.put_slice(unit);
        data = &data[4 + len..];
    }
}

/// SPS and PPS of an `AVCDecoderConfigurationRecord`, in Annex B form.
fn avcc_parameter_sets(avcc: &[u8]) -> Option<Bytes> {
    let mut out = BytesMut::new();
    let mut pos = 5;
    for mask in [0x1f, 0xff] {
        let count = avcc.get(pos)? & mask;
        pos += 1;
        for _ in 0..count {
            let len = usize::from(u16::from_be_bytes([*avcc.get(pos)?, *avcc.get(pos + 1)?]));
            out.put_slice(&[0, 0, 0, 1]);
            out.put_slice(avcc.get(pos + 2..pos + 2 + len)?);
            pos += 2 + len;
        }
    }
    Some(out.freeze())
}

/// Packetizes one track's frames the way a WebRTC sender does.
pub struct Packetizer {
    codec: Codec,
    payloader: Box<dyn Payloader>,
    /// SSRC of the packets.
    pub ssrc: u32,
    /// Sequence number of the next packet.
    pub sequence: u16,
    /// RTP timestamp of media time zero.
    pub timestamp_base: u32,
    /// Largest payload per packet.
    pub mtu: usize,
}

impl Packetizer {
    /// A packetizer for `codec` with the given SSRC, first sequence number and RTP base.
    pub fn new(codec: Codec, ssrc: u32, sequence: u16, timestamp_base: u32) -> Self {
        let payloader: Box<dyn Payloader> = match codec {
            Codec::Opus => Box::new(OpusPayloader),
            Codec::Vp8 => {
                let mut vp8 = Vp8Payloader::default();
                vp8.enable_picture_id = true;
                Box::new(vp8)
            }
            Codec::Vp9 => Box::<Vp9Payloader>::default(),
            Codec::H264 => Box::<H264Payloader>::default(),
        };
        Packetizer {
            codec,
            payloader,
            ssrc,
            sequence,
            timestamp_base,
            mtu: 1_200,
        }
    }

    /// The RTP timestamp of media time `at_ms`.
    pub fn rtp_time(&self, at_ms: u64) -> u32 {
        let ticks = at_ms * u64::from(self.codec.clock_rate()) / 1_000;
        self.timestamp_base.wrapping_add(ticks as u32)
    }

    /// The packets of one frame.
    pub fn packetize(&mut self, frame: &SourceFrame) -> Result<Vec<Packet>> {
        let payloads = self.payloader.payload(self.mtu, &frame.data).map_err(|e| {
            RecorderError::InvalidTracks(format!("cannot packetize a {:?} frame: {e}", self.codec))
        })?;
        let count = payloads.len();
        let timestamp = self.rtp_time(frame.at_ms);
        Ok(payloads
            .into_iter()
            .enumerate()
            .map(|(i, payload)| {
                let mut packet = Packet {
                    payload,
                    ..Packet::default()
                };
                packet.header.version = 2;
                packet.header.marker = i + 1 == count;
                packet.header.payload_type = if self.codec == Codec::Opus { 111 } else { 96 };
                packet.header.sequence_number = self.sequence;
                packet.header.timestamp = timestamp;
                packet.header.ssrc = self.ssrc;
                self.sequence = self.sequence.wrapping_add(1);
                packet
            })
            .collect())
    }
}

/// What happens at one moment of a replay.
#[derive(Debug, Clone)]
pub enum ReplayInput {
    /// An RTP packet of the publisher's track arrives.
    Packet(MediaKind, Packet),
    /// A sender report arrives: NTP time `ntp` is RTP time `rtp` on track `kind`.
    SenderReport {
        /// The track.
        kind: MediaKind,
        /// Its SSRC.
        ssrc: u32,
        /// 64-bit NTP time.
        ntp: u64,
        /// RTP time at that NTP time.
        rtp: u32,
    },
    /// A new publisher takes over with these tracks.
    PublisherChanged(RecordingTracks),
}

/// What a replay produced.
#[derive(Debug, Clone)]
pub struct ReplayReport {
    /// The files written.
    pub recordings: Vec<RecordingInfo>,
    /// Keyframe requests the recorder made.
    pub keyframe_requests: u64,
    /// Video frames dropped as undecodable.
    pub video_frames_dropped: u64,
    /// Seconds of media recorded, summed over files.
    pub stream_seconds: f64,
}

/// Runs a recorder over `inputs`, each at its offset from the start, on a simulated clock:
/// as fast as the machine allows. `inputs` must be in time order.
pub fn replay(
    dir: impl AsRef<Path>,
    stream: &str,
    tracks: RecordingTracks,
    inputs: impl IntoIterator<Item = (Duration, ReplayInput)>,
) -> Result<ReplayReport> {
    let origin = Instant::now();
    let mut recorder = Recorder::start(dir.as_ref(), stream, tracks, origin, SystemTime::now())?;
    let mut keyframe_requests = 0;
    let mut last = origin;
    for (offset, input) in inputs {
        let now = origin + offset;
        last = last.max(now);
        match input {
            ReplayInput::Packet(kind, packet) => recorder.push(kind, packet, now)?,
            ReplayInput::SenderReport {
                kind,
                ssrc,
                ntp,
                rtp,
            } => recorder.sender_report(kind, ssrc, ntp, rtp, now),
            ReplayInput::PublisherChanged(tracks) => recorder.publisher_changed(tracks, now)?,
        }
        while let Some(RecorderOutput::KeyframeNeeded) = recorder.poll_output() {
            keyframe_requests += 1;
        }
    }
    let stats = recorder.stats();
    let recordings = recorder.finish(last)?;
    Ok(ReplayReport {
        stream_seconds: recordings.iter().map(|r| r.duration.as_secs_f64()).sum(),
        recordings,
        keyframe_requests,
        video_frames_dropped: stats.video_frames_dropped,
    })
}
