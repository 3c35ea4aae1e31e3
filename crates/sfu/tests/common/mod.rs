//! Test helpers shared by the behaviour tests: a simulated VP8 + Opus publisher that builds
//! real payloads (valid VP8 payload descriptors), viewer configurations (with RTX, as browsers
//! negotiate it, or without), output draining, and the tests' one clock read. Each test file
//! uses a subset, hence the `dead_code` allowance.
#![allow(dead_code)]

use std::time::{Duration, Instant};

use bytes::Bytes;
use directo_sfu::{
    Codec, DownTrackConfig, KeyframeRequestKind, MediaKind, Output, PeerId, PublishedTrack,
    Quality, RtxConfig, Stream,
};
use rtc::rtcp::sender_report::SenderReport;
use rtc::rtcp::transport_feedbacks::transport_layer_cc::{
    PacketStatusChunk, RecvDelta, RunLengthChunk, StatusChunkTypeTcc, SymbolTypeTcc,
    TransportLayerCc,
};
use rtc::rtp::Packet;
use rtc::rtp::header::Header;

pub mod l1t3;
#[path = "../../src/test_clock.rs"]
mod test_clock;

pub use test_clock::start;

pub const PUBLISHER_VP8_PT: u8 = 96;
pub const PUBLISHER_OPUS_PT: u8 = 111;
pub const VIEWER_VP8_PT: u8 = 120;
pub const VIEWER_OPUS_PT: u8 = 109;
/// The viewer's RTX payload type for VP8 (`apt=120`).
pub const VIEWER_RTX_PT: u8 = 121;

pub const AUDIO_LEVEL: &str = "urn:ietf:params:rtp-hdrext:ssrc-audio-level";
pub const ABS_SEND_TIME: &str = "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time";
pub const MID: &str = "urn:ietf:params:rtp-hdrext:sdes:mid";

/// A VP8 payload: extended descriptor with a 15-bit picture id, then (on the first packet
/// of a frame) the VP8 payload header with the keyframe bit.
pub fn vp8_payload(keyframe: bool, first_packet: bool, picture_id: u16, len: usize) -> Bytes {
    let mut payload = vec![
        0x80 | if first_packet { 0x10 } else { 0x00 },
        0x80,
        0x80 | ((picture_id >> 8) as u8 & 0x7f),
        picture_id as u8,
    ];
    if first_packet {
        if keyframe {
            // P=0, show_frame=1, then the keyframe start code and a 640x480 size.
            payload
                .extend_from_slice(&[0x10, 0x02, 0x00, 0x9d, 0x01, 0x2a, 0x80, 0x02, 0xe0, 0x01]);
        } else {
            payload.extend_from_slice(&[0x11, 0x02, 0x00]);
        }
    }
    while payload.len() < len {
        payload.push(payload.len() as u8);
    }
    Bytes::from(payload)
}

/// A publisher sending one VP8 track and one Opus track, with real-looking numbering.
pub struct Publisher {
    pub id: PeerId,
    pub video_ssrc: u32,
    pub audio_ssrc: u32,
    pub video_seq: u16,
    pub audio_seq: u16,
    pub video_ts: u32,
    pub audio_ts: u32,
    pub picture_id: u16,
    pub extensions: Vec<(u8, String)>,
}

impl Publisher {
    pub fn new(id: PeerId, video_ssrc: u32, audio_ssrc: u32, seq_base: u16, ts_base: u32) -> Self {
        Self {
            id,
            video_ssrc,
            audio_ssrc,
            video_seq: seq_base,
            audio_seq: seq_base.wrapping_mul(3),
            video_ts: ts_base,
            audio_ts: ts_base.wrapping_mul(7),
            picture_id: 1,
            extensions: vec![
                (1, AUDIO_LEVEL.to_string()),
                (3, ABS_SEND_TIME.to_string()),
                (4, MID.to_string()),
            ],
        }
    }

    pub fn tracks(&self) -> Vec<PublishedTrack> {
        self.tracks_with(KeyframeRequestKind::Pli)
    }

    pub fn tracks_with(&self, keyframe_request: KeyframeRequestKind) -> Vec<PublishedTrack> {
        vec![
            PublishedTrack {
                kind: MediaKind::Audio,
                codec: Codec::Opus,
                ssrc: self.audio_ssrc,
                keyframe_request,
                extensions: self.extensions.clone(),
                rid: None,
            },
            PublishedTrack {
                kind: MediaKind::Video,
                codec: Codec::Vp8,
                ssrc: self.video_ssrc,
                keyframe_request,
                extensions: self.extensions.clone(),
                rid: None,
            },
        ]
    }

    fn header(&self, ssrc: u32, pt: u8, seq: u16, ts: u32, marker: bool) -> Header {
        let mut header = Header {
            version: 2,
            marker,
            payload_type: pt,
            sequence_number: seq,
            timestamp: ts,
            ssrc,
            ..Default::default()
        };
        header
            .set_extension(3, Bytes::from_static(&[0x12, 0x34, 0x56]))
            .unwrap();
        header.set_extension(4, Bytes::from_static(b"v")).unwrap();
        header
    }

    /// The packets of one video frame (30 fps), `packets` long.
    pub fn video_frame(&mut self, keyframe: bool, packets: usize) -> Vec<Packet> {
        let frame: Vec<Packet> = (0..packets)
            .map(|i| {
                let seq = self.video_seq.wrapping_add(i as u16);
                Packet {
                    header: self.header(
                        self.video_ssrc,
                        PUBLISHER_VP8_PT,
                        seq,
                        self.video_ts,
                        i + 1 == packets,
                    ),
                    payload: vp8_payload(keyframe, i == 0, self.picture_id, 200),
                }
            })
            .collect();
        self.video_seq = self.video_seq.wrapping_add(packets as u16);
        self.video_ts = self.video_ts.wrapping_add(3000);
        self.picture_id = (self.picture_id + 1) & 0x7fff;
        frame
    }

    /// One 20 ms Opus packet.
    pub fn audio_packet(&mut self) -> Packet {
        let mut header = self.header(
            self.audio_ssrc,
            PUBLISHER_OPUS_PT,
            self.audio_seq,
            self.audio_ts,
            false,
        );
        header
            .set_extension(1, Bytes::from_static(&[0x85]))
            .unwrap();
        self.audio_seq = self.audio_seq.wrapping_add(1);
        self.audio_ts = self.audio_ts.wrapping_add(960);
        Packet {
            header,
            payload: Bytes::from_static(&[0xfc, 0xff, 0xfe, 0x01, 0x02]),
        }
    }

    /// A padding-only video packet (as a BWE probe), taking the next sequence number.
    pub fn video_padding(&mut self) -> Packet {
        let mut header = self.header(
            self.video_ssrc,
            PUBLISHER_VP8_PT,
            self.video_seq,
            self.video_ts,
            false,
        );
        header.padding = true;
        self.video_seq = self.video_seq.wrapping_add(1);
        Packet {
            header,
            payload: Bytes::new(),
        }
    }
}

/// Our RTX SSRC toward a viewer whose video SSRC is `video_ssrc`, in these tests.
pub fn rtx_ssrc(video_ssrc: u32) -> u32 {
    video_ssrc ^ 0x8000_0000
}

/// A viewer that negotiated Opus and VP8 with its own PTs and extension ids, and RTX for its
/// video, as browsers do.
pub fn viewer_tracks(audio_ssrc: u32, video_ssrc: u32) -> Vec<DownTrackConfig> {
    let mut tracks = viewer_tracks_without_rtx(audio_ssrc, video_ssrc);
    tracks[1].rtx = Some(RtxConfig {
        ssrc: rtx_ssrc(video_ssrc),
        payload_types: vec![(102, 103), (VIEWER_VP8_PT, VIEWER_RTX_PT)],
    });
    tracks
}

/// Like [`viewer_tracks`], from a client that did not offer RTX.
pub fn viewer_tracks_without_rtx(audio_ssrc: u32, video_ssrc: u32) -> Vec<DownTrackConfig> {
    let extensions = vec![
        (2, ABS_SEND_TIME.to_string()),
        (5, AUDIO_LEVEL.to_string()),
        (9, MID.to_string()),
    ];
    vec![
        DownTrackConfig {
            kind: MediaKind::Audio,
            ssrc: audio_ssrc,
            payload_types: vec![(Codec::Opus, VIEWER_OPUS_PT)],
            extensions: extensions.clone(),
            quality: Quality::Auto,
            rtx: None,
        },
        DownTrackConfig {
            kind: MediaKind::Video,
            ssrc: video_ssrc,
            payload_types: vec![(Codec::H264, 102), (Codec::Vp8, VIEWER_VP8_PT)],
            extensions,
            quality: Quality::Auto,
            rtx: None,
        },
    ]
}

/// An RTX packet's original sequence number and the original payload after it.
pub fn unwrap_rtx(packet: &Packet) -> (u16, Bytes) {
    assert!(packet.payload.len() >= 2, "an RTX packet carries its OSN");
    (
        u16::from_be_bytes([packet.payload[0], packet.payload[1]]),
        packet.payload.slice(2..),
    )
}

/// Everything the stream has to say right now.
pub fn drain(stream: &mut Stream) -> Vec<Output> {
    std::iter::from_fn(|| stream.poll_output()).collect()
}

/// The RTP packets for one viewer's track among `outputs`.
pub fn rtp_for(outputs: &[Output], viewer: PeerId, wanted: MediaKind) -> Vec<Packet> {
    outputs
        .iter()
        .filter_map(|output| match output {
            Output::Rtp {
                subscriber,
                kind,
                packet,
            } if *subscriber == viewer && *kind == wanted => Some(packet.clone()),
            _ => None,
        })
        .collect()
}

/// The keyframe requests among `outputs`.
pub fn keyframe_requests(outputs: &[Output]) -> Vec<(PeerId, u32, KeyframeRequestKind, u8)> {
    outputs
        .iter()
        .filter_map(|output| match output {
            Output::KeyframeRequest {
                publisher,
                ssrc,
                kind,
                fir_seq,
            } => Some((*publisher, *ssrc, *kind, *fir_seq)),
            _ => None,
        })
        .collect()
}

/// The sender reports for one viewer among `outputs`.
pub fn sender_reports_for(outputs: &[Output], viewer: PeerId) -> Vec<SenderReport> {
    outputs
        .iter()
        .filter_map(|output| match output {
            Output::SenderReport { subscriber, report } if *subscriber == viewer => {
                Some(report.clone())
            }
            _ => None,
        })
        .collect()
}

/// Feeds packets to the stream at `now` and returns what came out.
pub fn feed(
    stream: &mut Stream,
    publisher: PeerId,
    packets: Vec<Packet>,
    now: Instant,
) -> Vec<Output> {
    for packet in packets {
        stream.on_rtp(publisher, packet, now);
    }
    drain(stream)
}

/// Asserts that sequence numbers go up by exactly one each.
pub fn assert_continuous(packets: &[Packet]) {
    for pair in packets.windows(2) {
        assert_eq!(
            pair[1].header.sequence_number,
            pair[0].header.sequence_number.wrapping_add(1),
            "sequence gap between {:?} and {:?}",
            pair[0].header,
            pair[1].header
        );
    }
}

/// Drives the stream's timers from `from` to `to` in 10 ms steps (what the engine's event
/// loop does), collecting the outputs.
pub fn run_timers(stream: &mut Stream, from: Instant, to: Instant) -> Vec<Output> {
    let mut outputs = Vec::new();
    let mut now = from;
    while now <= to {
        if stream.poll_timeout().is_some_and(|due| due <= now) {
            stream.handle_timeout(now);
        }
        outputs.extend(drain(stream));
        now += Duration::from_millis(10);
    }
    outputs
}

/// A transport feedback report: packets `base..base + arrivals.len()` arrived at those times
/// (µs since some origin on the viewer's clock).
pub fn transport_feedback(base: u16, arrivals: &[i64]) -> TransportLayerCc {
    let reference = arrivals[0] / 64_000;
    let mut last = reference * 64_000;
    let recv_deltas = arrivals
        .iter()
        .map(|&at| {
            let delta = (at - last) / 250 * 250;
            last += delta;
            RecvDelta {
                type_tcc_packet: SymbolTypeTcc::PacketReceivedLargeDelta,
                delta,
            }
        })
        .collect();
    TransportLayerCc {
        base_sequence_number: base,
        packet_status_count: arrivals.len() as u16,
        reference_time: reference as u32,
        packet_chunks: vec![PacketStatusChunk::RunLengthChunk(RunLengthChunk {
            type_tcc: StatusChunkTypeTcc::RunLengthChunk,
            packet_status_symbol: SymbolTypeTcc::PacketReceivedLargeDelta,
            run_length: arrivals.len() as u16,
        })],
        recv_deltas,
        ..Default::default()
    }
}

/// A small deterministic generator, so failures reproduce.
pub struct Lcg(pub u64);

impl Lcg {
    /// The next number, uniform over `u32`.
    pub fn next(&mut self) -> u32 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) as u32
    }

    /// Whether an event of `percent` % chance happens.
    pub fn chance(&mut self, percent: u32) -> bool {
        self.next() % 100 < percent
    }
}
