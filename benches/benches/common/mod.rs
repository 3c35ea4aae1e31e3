//! Fixtures shared by the benchmarks: a [`Stream`] with a VP8 + Opus publisher and N viewers
//! that have all had their first keyframe, and a source of publisher packets with advancing
//! sequence numbers. Each benchmark file uses a subset, hence the `dead_code` allowance.
#![allow(dead_code)]

use std::time::{Duration, Instant};

use criterion::Criterion;
use directo_benches::stamp::SendTimes;
use directo_benches::synth::{VP8_PAYLOAD_TYPE, VideoShape, VideoSource};
use directo_sfu::{
    Codec, DownTrackConfig, KeyframeRequestKind, MediaKind, PeerId, PublishedTrack, Quality,
    RtxConfig, Stream,
};
use rtc::rtp::Packet;

/// The publisher's peer id.
pub const PUBLISHER: PeerId = 1;
/// The publisher's video SSRC.
pub const VIDEO_SSRC: u32 = 0x1000;
/// The first viewer's peer id (the rest follow).
pub const FIRST_VIEWER: PeerId = 100;

/// Short runs: every benchmark file finishes in well under a minute.
pub fn quick() -> Criterion {
    Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
}

fn video_shape() -> VideoShape {
    VideoShape {
        bitrate_kbps: 1000,
        fps: 30,
        keyframe_interval: Duration::from_secs(2),
        packet_size: 1100,
        pace_factor: 0.0,
    }
}

/// A publisher's video packets: one real keyframe, then inter-frame packets whose sequence
/// numbers and timestamps keep advancing.
pub struct PacketSource {
    template: Packet,
    sequence: u16,
}

impl PacketSource {
    /// The first frame (a keyframe, several packets) and a source of inter-frame packets.
    pub fn new() -> (Vec<Packet>, PacketSource) {
        let times = SendTimes::new();
        let mut video = VideoSource::new(video_shape(), VIDEO_SSRC, VP8_PAYLOAD_TYPE);
        let keyframe = video.next_frame(Instant::now(), &times);
        let mut template = video.next_frame(Instant::now(), &times).remove(0);
        let sequence = template.header.sequence_number;
        template.header.marker = false;
        (keyframe, PacketSource { template, sequence })
    }

    /// The next packet (a copy of one inter-frame packet with the next sequence number).
    pub fn next_packet(&mut self) -> Packet {
        let mut packet = self.template.clone();
        packet.header.sequence_number = self.sequence;
        self.sequence = self.sequence.wrapping_add(1);
        packet
    }
}

/// A stream whose publisher sends VP8 and Opus, with `viewers` viewers that have all
/// received the first keyframe; returns it with the packet source to feed it.
pub fn stream_with_viewers(viewers: u64, now: Instant) -> (Stream, PacketSource) {
    let mut stream = Stream::new();
    stream.set_publisher(
        PUBLISHER,
        vec![
            PublishedTrack {
                kind: MediaKind::Video,
                codec: Codec::Vp8,
                ssrc: VIDEO_SSRC,
                keyframe_request: KeyframeRequestKind::Pli,
                extensions: vec![],
                rid: None,
            },
            PublishedTrack {
                kind: MediaKind::Audio,
                codec: Codec::Opus,
                ssrc: VIDEO_SSRC + 1,
                keyframe_request: KeyframeRequestKind::Pli,
                extensions: vec![],
                rid: None,
            },
        ],
        now,
    );
    for index in 0..viewers {
        let id = FIRST_VIEWER + index;
        stream.add_subscriber(
            id,
            vec![
                DownTrackConfig {
                    kind: MediaKind::Video,
                    ssrc: 0x2000_0000 + index as u32,
                    payload_types: vec![(Codec::Vp8, 96)],
                    extensions: vec![],
                    quality: Quality::Auto,
                    rtx: Some(RtxConfig {
                        ssrc: 0x4000_0000 + index as u32,
                        payload_types: vec![(96, 97)],
                    }),
                },
                DownTrackConfig {
                    kind: MediaKind::Audio,
                    ssrc: 0x3000_0000 + index as u32,
                    payload_types: vec![(Codec::Opus, 111)],
                    extensions: vec![],
                    quality: Quality::Auto,
                    rtx: None,
                },
            ],
            now,
        );
    }
    let (keyframe, source) = PacketSource::new();
    for packet in keyframe {
        stream.on_rtp(PUBLISHER, packet, now);
    }
    while stream.poll_output().is_some() {}
    (stream, source)
}
