//! Synthetic media: the RTP a browser would send, without an encoder.
//!
//! Video is VP8 over RTP (RFC 7741): every payload starts with the descriptor Chrome writes
//! for a simulcast layer (X=1, I=1 with a 15-bit PictureID, L=1 with TL0PICIDX, T=1 with the
//! temporal layer id and layer-sync bit, S=1 on a frame's first packet, partition 0). Frames
//! follow Chrome's three-temporal-layer pattern (`L1T3`): layers 0 2 1 2 from each keyframe
//! on, layer sync (Y) on the first layer-1 and layer-2 frames after a layer-0 one. A keyframe's
//! first packet then carries a valid VP8 keyframe header (frame tag with P=0, start code
//! `9d 01 2a`, 640x360); an inter frame's carries the 3-byte frame tag with P=1. Audio is one
//! 20 ms Opus frame per packet (TOC byte for CELT fullband 20 ms). The rest is filler, and
//! the last bytes of every payload are a send-time stamp (see [`crate::stamp`]).
//!
//! Frame sizes follow the bitrate: inside a keyframe interval, a keyframe is three times the
//! size of an average inter frame and the interval adds up to the target bitrate. Layer-0
//! frames are twice the size of the others, so temporal layers 0, 0–1 and 0–2 carry about 40,
//! 60 and 100 % of the inter-frame bits (libwebrtc's split for three layers).

use std::time::{Duration, Instant};

use bytes::{BufMut, BytesMut};
use directo_testkit::vp8::{frame_header, keyframe_size};
use rtc::rtp::Packet;
use rtc::rtp::header::Header;

use crate::stamp::{STAMP_LEN, SendTimes, write_stamp};

/// The payload type the generator offers VP8 with (Chrome's choice too).
pub const VP8_PAYLOAD_TYPE: u8 = 96;
/// The payload type the generator offers Opus with (Chrome's choice too).
pub const OPUS_PAYLOAD_TYPE: u8 = 111;
/// The payload type viewers offer VP8's RTX format with (RFC 4588), as Chrome does.
pub const RTX_PAYLOAD_TYPE: u8 = 97;

/// VP8 descriptor length we write: flags, extension flags, two PictureID bytes, TL0PICIDX,
/// TID/Y.
const DESCRIPTOR_LEN: usize = 6;
/// Temporal layer of each frame in the `L1T3` pattern, counted from a keyframe.
const TEMPORAL_PATTERN: [u8; 4] = [0, 2, 1, 2];
/// Size of a frame of each position in the pattern, in average inter-frame sizes (×10).
const TEMPORAL_SIZE_TENTHS: [usize; 4] = [16, 8, 8, 8];
/// Opus TOC byte: config 31 (CELT fullband, 20 ms), mono, one frame.
const OPUS_TOC: u8 = 0xf8;
/// Opus payload size: 32 kbit/s at 50 packets a second, stamp included.
const OPUS_PAYLOAD_LEN: usize = 80;
/// Audio frame duration.
pub const AUDIO_FRAME: Duration = Duration::from_millis(20);
/// Smallest payload that holds a descriptor, a keyframe header and a stamp.
pub const MIN_PACKET_SIZE: usize = DESCRIPTOR_LEN + 10 + STAMP_LEN;

/// What the synthetic video looks like.
#[derive(Debug, Clone, Copy)]
pub struct VideoShape {
    /// Target video bitrate in kbit/s.
    pub bitrate_kbps: u32,
    /// Frames a second.
    pub fps: u32,
    /// Time between periodic keyframes.
    pub keyframe_interval: Duration,
    /// RTP payload size in bytes (the last packet of a frame may be shorter).
    pub packet_size: usize,
    /// Video packets leave at this multiple of the bitrate, spread over time as a browser's
    /// pacer spreads them; 0 sends each frame's packets at once.
    pub pace_factor: f64,
}

impl VideoShape {
    /// Time between two frames.
    pub fn frame_interval(&self) -> Duration {
        Duration::from_secs_f64(1.0 / f64::from(self.fps.max(1)))
    }

    /// Inter-frame and keyframe sizes in bytes.
    fn frame_sizes(&self) -> (usize, usize) {
        let frames = (self.keyframe_interval.as_secs_f64() * f64::from(self.fps.max(1))).max(1.0);
        let budget =
            f64::from(self.bitrate_kbps) * 1000.0 / 8.0 * self.keyframe_interval.as_secs_f64();
        // One keyframe of three units and (frames - 1) inter frames of one unit each.
        let unit = (budget / (frames + 2.0)).max(1.0) as usize;
        (unit, unit * 3)
    }
}

/// A synthetic VP8 sender: frames in, stamped RTP packets out.
#[derive(Debug)]
pub struct VideoSource {
    shape: VideoShape,
    ssrc: u32,
    payload_type: u8,
    sequence: u16,
    timestamp: u32,
    picture_id: u16,
    /// TL0PICIDX: counts layer-0 frames.
    tl0_pic_idx: u8,
    /// Frames since the last keyframe (the position in the temporal pattern).
    since_keyframe: usize,
    frames: u64,
    next_periodic_keyframe: u64,
    keyframe_requested: bool,
    keyframes_sent: u64,
    /// The picture size its keyframes announce (a simulcast layer's is smaller).
    dimensions: (u16, u16),
}

impl VideoSource {
    /// The same source announcing `width`×`height` in its keyframes (a simulcast layer).
    pub fn with_dimensions(mut self, width: u16, height: u16) -> Self {
        self.dimensions = (width, height);
        self
    }

    /// The SSRC it sends on.
    pub fn ssrc(&self) -> u32 {
        self.ssrc
    }

    /// A source on `ssrc` with random starting sequence number and timestamp.
    pub fn new(shape: VideoShape, ssrc: u32, payload_type: u8) -> Self {
        let packet_size = shape.packet_size.max(MIN_PACKET_SIZE);
        VideoSource {
            shape: VideoShape {
                packet_size,
                ..shape
            },
            ssrc,
            payload_type,
            sequence: rand::random(),
            timestamp: rand::random(),
            picture_id: rand::random::<u16>() & 0x7fff,
            tl0_pic_idx: rand::random(),
            since_keyframe: 0,
            frames: 0,
            next_periodic_keyframe: 0,
            keyframe_requested: false,
            keyframes_sent: 0,
            dimensions: (640, 360),
        }
    }

    /// Makes the next frame a keyframe, as a browser does on PLI or FIR.
    pub fn request_keyframe(&mut self) {
        self.keyframe_requested = true;
    }

    /// Keyframes produced so far.
    pub fn keyframes_sent(&self) -> u64 {
        self.keyframes_sent
    }

    /// The packets of the next frame, each stamped with `now` in `times`.
    pub fn next_frame(&mut self, now: Instant, times: &SendTimes) -> Vec<Packet> {
        let periodic = (self.shape.keyframe_interval.as_secs_f64() * f64::from(self.shape.fps))
            .round()
            .max(1.0) as u64;
        let keyframe = self.keyframe_requested || self.frames >= self.next_periodic_keyframe;
        if keyframe {
            self.keyframe_requested = false;
            self.next_periodic_keyframe = self.frames + periodic;
            self.keyframes_sent += 1;
        }
        let (inter_size, key_size) = self.shape.frame_sizes();
        if keyframe {
            self.since_keyframe = 0;
        }
        let position = self.since_keyframe % TEMPORAL_PATTERN.len();
        self.since_keyframe += 1;
        let tid = TEMPORAL_PATTERN[position];
        if tid == 0 {
            self.tl0_pic_idx = self.tl0_pic_idx.wrapping_add(1);
        }
        let layer_sync = position == 1 || position == 2;
        let frame_len = if keyframe {
            key_size
        } else {
            inter_size * TEMPORAL_SIZE_TENTHS[position] / 10
        };
        let body_per_packet = self.shape.packet_size - DESCRIPTOR_LEN;
        let packets = frame_len.div_ceil(body_per_packet).max(1);
        let header = frame_header(keyframe, frame_len, self.dimensions.0, self.dimensions.1);
        let picture_id = self.picture_id;

        let mut out = Vec::with_capacity(packets);
        for index in 0..packets {
            let remaining = frame_len.saturating_sub(index * body_per_packet);
            let body = remaining.clamp(header.len() + STAMP_LEN, body_per_packet);
            let mut payload = BytesMut::with_capacity(DESCRIPTOR_LEN + body);
            payload.put_u8(if index == 0 { 0x90 } else { 0x80 });
            payload.put_u8(0xe0);
            payload.put_u16(0x8000 | picture_id);
            payload.put_u8(self.tl0_pic_idx);
            payload.put_u8(tid << 6 | if layer_sync { 0x20 } else { 0 });
            let mut filler = body;
            if index == 0 {
                payload.put_slice(&header);
                filler -= header.len();
            }
            payload.put_bytes(picture_id as u8 ^ index as u8, filler);
            write_stamp(&mut payload, times.stamp(now));
            out.push(Packet {
                header: Header {
                    version: 2,
                    marker: index + 1 == packets,
                    payload_type: self.payload_type,
                    sequence_number: self.sequence,
                    timestamp: self.timestamp,
                    ssrc: self.ssrc,
                    ..Default::default()
                },
                payload: payload.freeze(),
            });
            self.sequence = self.sequence.wrapping_add(1);
        }
        self.picture_id = (self.picture_id + 1) & 0x7fff;
        self.frames += 1;
        self.timestamp = self.timestamp.wrapping_add(90_000 / self.shape.fps.max(1));
        out
    }
}

/// A synthetic Opus sender: one stamped 20 ms packet per call.
#[derive(Debug)]
pub struct AudioSource {
    ssrc: u32,
    payload_type: u8,
    sequence: u16,
    timestamp: u32,
}

impl AudioSource {
    /// A source on `ssrc` with random starting sequence number and timestamp.
    pub fn new(ssrc: u32, payload_type: u8) -> Self {
        AudioSource {
            ssrc,
            payload_type,
            sequence: rand::random(),
            timestamp: rand::random(),
        }
    }

    /// The next 20 ms packet, stamped with `now` in `times`.
    pub fn next_packet(&mut self, now: Instant, times: &SendTimes) -> Packet {
        let mut payload = BytesMut::with_capacity(OPUS_PAYLOAD_LEN);
        payload.put_u8(OPUS_TOC);
        payload.put_bytes(self.sequence as u8, OPUS_PAYLOAD_LEN - 1);
        write_stamp(&mut payload, times.stamp(now));
        let packet = Packet {
            header: Header {
                version: 2,
                marker: false,
                payload_type: self.payload_type,
                sequence_number: self.sequence,
                timestamp: self.timestamp,
                ssrc: self.ssrc,
                ..Default::default()
            },
            payload: payload.freeze(),
        };
        self.sequence = self.sequence.wrapping_add(1);
        self.timestamp = self.timestamp.wrapping_add(960);
        packet
    }
}

/// Whether a VP8 RTP payload starts a keyframe: S=1, partition 0, and P=0 in the frame tag.
pub fn is_vp8_keyframe_start(payload: &[u8]) -> bool {
    directo_sfu::is_keyframe_start(directo_sfu::Codec::Vp8, payload)
}

/// The width a VP8 keyframe's first packet announces (after our 6-byte payload descriptor),
/// if `payload` is one: how a viewer tells which simulcast layer it is getting.
pub fn keyframe_width(payload: &[u8]) -> Option<u16> {
    keyframe_size(payload.get(DESCRIPTOR_LEN..)?).map(|(width, _)| width)
}

/// What a viewer reads from a VP8 payload descriptor we wrote: the picture id, the temporal
/// layer and whether the packet starts a frame.
pub fn vp8_picture(payload: &[u8]) -> Option<(u16, u8, bool)> {
    let descriptor = payload.get(..DESCRIPTOR_LEN)?;
    if descriptor[1] != 0xe0 || descriptor[2] & 0x80 == 0 {
        return None;
    }
    let picture_id = u16::from(descriptor[2] & 0x7f) << 8 | u16::from(descriptor[3]);
    Some((picture_id, descriptor[5] >> 6, descriptor[0] & 0x10 != 0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stamp::read_stamp;

    fn shape() -> VideoShape {
        VideoShape {
            bitrate_kbps: 1000,
            fps: 25,
            keyframe_interval: Duration::from_secs(2),
            packet_size: 1100,
            pace_factor: 0.0,
        }
    }

    #[test]
    fn frames_add_up_to_the_bitrate_and_start_with_a_keyframe() {
        let times = SendTimes::new();
        let mut source = VideoSource::new(shape(), 7, VP8_PAYLOAD_TYPE);
        let now = Instant::now();
        let mut bytes = 0;
        let mut keyframes = 0;
        for frame in 0..50 {
            let packets = source.next_frame(now, &times);
            assert!(packets.last().is_some_and(|p| p.header.marker));
            let first = &packets[0].payload;
            if is_vp8_keyframe_start(first) {
                keyframes += 1;
                assert!(frame == 0 || frame == 50, "keyframe at frame {frame}");
            }
            for packet in &packets {
                assert!(read_stamp(&packet.payload).is_some());
                bytes += packet.payload.len();
            }
        }
        assert_eq!(keyframes, 1);
        let kbps = bytes as f64 * 8.0 / 2.0 / 1000.0;
        assert!((900.0..1150.0).contains(&kbps), "{kbps} kbit/s");
    }

    #[test]
    fn a_keyframe_request_makes_the_next_frame_a_keyframe() {
        let times = SendTimes::new();
        let mut source = VideoSource::new(shape(), 7, VP8_PAYLOAD_TYPE);
        let now = Instant::now();
        source.next_frame(now, &times);
        assert!(!is_vp8_keyframe_start(
            &source.next_frame(now, &times)[0].payload
        ));
        source.request_keyframe();
        assert!(is_vp8_keyframe_start(
            &source.next_frame(now, &times)[0].payload
        ));
        assert_eq!(source.keyframes_sent(), 2);
    }

    #[test]
    fn audio_packets_are_stamped_and_advance_by_20ms() {
        let times = SendTimes::new();
        let mut source = AudioSource::new(9, OPUS_PAYLOAD_TYPE);
        let now = Instant::now();
        let a = source.next_packet(now, &times);
        let b = source.next_packet(now, &times);
        assert_eq!(b.header.timestamp.wrapping_sub(a.header.timestamp), 960);
        assert_eq!(read_stamp(&a.payload), Some(0));
        assert_eq!(read_stamp(&b.payload), Some(1));
    }

    #[test]
    fn frames_follow_the_three_temporal_layer_pattern() {
        let times = SendTimes::new();
        let mut source = VideoSource::new(shape(), 7, VP8_PAYLOAD_TYPE);
        let now = Instant::now();
        let frames: Vec<Vec<Packet>> = (0..9).map(|_| source.next_frame(now, &times)).collect();
        let layers: Vec<u8> = frames
            .iter()
            .map(|f| vp8_picture(&f[0].payload).unwrap().1)
            .collect();
        assert_eq!(layers, [0, 2, 1, 2, 0, 2, 1, 2, 0]);
        let bytes = |tid: u8| -> usize {
            frames
                .iter()
                .skip(1)
                .filter(|f| vp8_picture(&f[0].payload).unwrap().1 == tid)
                .flatten()
                .map(|p| p.payload.len())
                .sum()
        };
        assert!(bytes(0) > bytes(1), "layer-0 frames are the big ones");
        let (first, _, start) = vp8_picture(&frames[1][0].payload).unwrap();
        assert!(start);
        assert_eq!(
            vp8_picture(&frames[2][0].payload).unwrap().0,
            (first + 1) & 0x7fff
        );
        assert!(frames.iter().all(|f| {
            f.iter()
                .skip(1)
                .all(|p| !vp8_picture(&p.payload).unwrap().2)
        }));
    }

    #[test]
    fn a_layers_keyframe_announces_its_width() {
        let times = SendTimes::new();
        let mut source = VideoSource::new(shape(), 7, 96).with_dimensions(160, 90);
        let frame = source.next_frame(Instant::now(), &times);
        assert_eq!(keyframe_width(&frame[0].payload), Some(160));
        let next = source.next_frame(Instant::now(), &times);
        assert_eq!(keyframe_width(&next[0].payload), None, "an inter frame");
    }
}
