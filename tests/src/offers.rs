//! Ready-made SDP offers for refusal tests: real offers from a `webrtc` peer, bent on purpose.

use crate::error::Result;
use crate::peer::{CodecSpec, PeerSetup, build_peer, h264_codec, local_offer};
use rtc::media_stream::MediaStreamTrack;
use rtc::rtp_transceiver::rtp_sender::{
    RTCRtpCodingParameters, RTCRtpEncodingParameters, RtpCodecKind,
};
use rtc::rtp_transceiver::{RTCRtpTransceiverDirection, RTCRtpTransceiverInit};
use std::sync::Arc;
use webrtc::media_stream::track_local::TrackLocal;
use webrtc::media_stream::track_local::static_rtp::TrackLocalStaticRTP;

/// A complete publisher offer whose only media is H.264 video (no Opus, no VP8).
pub async fn h264_only_offer() -> Result<String> {
    let (pc, events) = build_peer(PeerSetup {
        codecs: vec![CodecSpec {
            codec: h264_codec(),
            payload_type: 102,
            kind: RtpCodecKind::Video,
        }],
        keyframe_requests: false,
        on_track: None,
    })
    .await?;
    let track = MediaStreamTrack::new(
        "h264-only".to_owned(),
        "h264-video".to_owned(),
        "video".to_owned(),
        RtpCodecKind::Video,
        vec![RTCRtpEncodingParameters {
            rtp_coding_parameters: RTCRtpCodingParameters {
                ssrc: Some(rand::random::<u32>() | 1),
                ..Default::default()
            },
            codec: h264_codec(),
            ..Default::default()
        }],
    );
    pc.add_transceiver_from_track(
        Arc::new(TrackLocalStaticRTP::new(track)) as Arc<dyn TrackLocal>,
        Some(RTCRtpTransceiverInit {
            direction: RTCRtpTransceiverDirection::Sendonly,
            ..Default::default()
        }),
    )
    .await?;
    let offer = local_offer(&pc, &events).await;
    pc.close().await?;
    offer
}

/// `offer` grown past `min_len` bytes with attribute lines no parser needs to understand.
pub fn padded_offer(offer: &str, min_len: usize) -> String {
    let mut out = offer.trim_end().to_owned();
    out.push_str("\r\n");
    let line = format!("a=x-directo-padding:{}\r\n", "x".repeat(1000));
    while out.len() <= min_len {
        out.push_str(&line);
    }
    out
}
