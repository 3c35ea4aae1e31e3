//! The forwarding core fed arbitrary RTP from its publisher (any header, any payload, the
//! publisher's SSRCs or not), sender reports, NACKs and keyframe requests from two viewers,
//! a viewer joining late and a publisher reconnecting, with time passing:
//! `Stream::on_rtp` and friends never panic, and `is_keyframe_start` is total for every codec.
#![no_main]

mod common;

use common::Input;
use directo_sfu::{
    Codec, DownTrackConfig, KeyframeRequestKind, MediaKind, PublishedTrack, Quality, RtxConfig,
    Stream, is_keyframe_start,
};
use libfuzzer_sys::fuzz_target;
use rtc::rtp::Packet;
use rtc::shared::marshal::Unmarshal;
use std::time::{Duration, Instant};

const PUBLISHER: u64 = 1;
const AUDIO_SSRC: u32 = 0x1111;
const VIDEO_SSRC: u32 = 0x2222;
const CODECS: [Codec; 4] = [Codec::Opus, Codec::Vp8, Codec::Vp9, Codec::H264];

fn publisher_tracks(video: Codec, generation: u32) -> Vec<PublishedTrack> {
    vec![
        PublishedTrack {
            kind: MediaKind::Audio,
            codec: Codec::Opus,
            ssrc: AUDIO_SSRC + generation,
            keyframe_request: KeyframeRequestKind::Pli,
            extensions: vec![(1, "urn:ietf:params:rtp-hdrext:ssrc-audio-level".into())],
            rid: None,
        },
        PublishedTrack {
            kind: MediaKind::Video,
            codec: video,
            ssrc: VIDEO_SSRC + generation,
            keyframe_request: if generation.is_multiple_of(2) {
                KeyframeRequestKind::Pli
            } else {
                KeyframeRequestKind::Fir
            },
            extensions: vec![(3, "urn:ietf:params:rtp-hdrext:sdes:mid".into())],
            rid: None,
        },
    ]
}

fn viewer_tracks(base: u32) -> Vec<DownTrackConfig> {
    vec![
        DownTrackConfig {
            kind: MediaKind::Audio,
            ssrc: base,
            payload_types: vec![(Codec::Opus, 111)],
            extensions: vec![(1, "urn:ietf:params:rtp-hdrext:ssrc-audio-level".into())],
            quality: Quality::Auto,
            rtx: None,
        },
        DownTrackConfig {
            kind: MediaKind::Video,
            ssrc: base + 1,
            payload_types: vec![(Codec::Vp8, 96), (Codec::Vp9, 98), (Codec::H264, 102)],
            extensions: vec![(4, "urn:ietf:params:rtp-hdrext:sdes:mid".into())],
            quality: Quality::Auto,
            rtx: Some(RtxConfig {
                ssrc: base + 2,
                payload_types: vec![(96, 97), (98, 99), (102, 103)],
            }),
        },
    ]
}

fuzz_target!(|data: &[u8]| {
    let mut input = Input(data);
    let video = CODECS[usize::from(input.byte().unwrap_or(1) % 4)];
    let mut now = Instant::now();
    let mut generation = 0;
    let mut stream = Stream::new();
    stream.set_publisher(PUBLISHER, publisher_tracks(video, generation), now);
    stream.add_subscriber(10, viewer_tracks(0xa0), now);

    while let Some(op) = input.byte() {
        match op % 8 {
            // A packet as it came off the wire, SSRC steered to a track half the time.
            0..=3 => {
                let Some(raw) = input.long_chunk() else { break };
                for codec in CODECS {
                    let _ = is_keyframe_start(codec, raw);
                }
                let mut buf = raw;
                if let Ok(mut packet) = Packet::unmarshal(&mut buf) {
                    match op % 4 {
                        0 => packet.header.ssrc = AUDIO_SSRC + generation,
                        1 => packet.header.ssrc = VIDEO_SSRC + generation,
                        _ => {}
                    }
                    stream.on_rtp(PUBLISHER, packet, now);
                }
            }
            4 => {
                let ssrc = if input.byte().unwrap_or(0) % 2 == 0 {
                    AUDIO_SSRC
                } else {
                    VIDEO_SSRC
                } + generation;
                let ntp = u64::from(input.u16().unwrap_or(0)) << 32;
                let rtp = u32::from(input.u16().unwrap_or(0)) << 8;
                stream.on_sender_report(PUBLISHER, ssrc, ntp, rtp, now);
            }
            5 => {
                let viewer = if input.byte().unwrap_or(0) % 2 == 0 {
                    10
                } else {
                    11
                };
                let lost: Vec<u16> = (0..input.byte().unwrap_or(0) % 32)
                    .filter_map(|_| input.u16())
                    .collect();
                stream.on_nack(viewer, 0xa1, &lost, now);
                stream.on_keyframe_request(viewer, now);
            }
            6 => {
                let step = u64::from(input.byte().unwrap_or(0));
                now += Duration::from_millis(step * step);
                stream.handle_timeout(now);
            }
            _ => match input.byte().unwrap_or(0) % 4 {
                0 => stream.add_subscriber(11, viewer_tracks(0xb0), now),
                1 => stream.remove_subscriber(11),
                2 => {
                    generation += 1;
                    stream.set_publisher(PUBLISHER, publisher_tracks(video, generation), now);
                }
                _ => stream.request_keyframe(now),
            },
        }
        while stream.poll_output().is_some() {}
    }
    let _ = stream.stats(now);
    stream.remove_publisher(PUBLISHER, now);
    while stream.poll_output().is_some() {}
});
