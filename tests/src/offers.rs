//! Ready-made SDP offers for refusal tests: real offers from a `webrtc` peer, bent on purpose.

use crate::error::Result;
use crate::peer::{CodecSpec, PeerSetup, build_peer, local_offer};
use rtc::media_stream::MediaStreamTrack;
use rtc::rtp_transceiver::rtp_sender::{
    RTCRtpCodec, RTCRtpCodingParameters, RTCRtpEncodingParameters, RtpCodecKind,
};
use rtc::rtp_transceiver::{RTCRtpTransceiverDirection, RTCRtpTransceiverInit};
use std::sync::Arc;
use webrtc::media_stream::track_local::TrackLocal;
use webrtc::media_stream::track_local::static_rtp::TrackLocalStaticRTP;

/// A complete publisher offer with one sendonly track whose only codec is `mime_type`
/// (`video/AV1`, `audio/PCMU`, ...), to test refusal of codecs Directo does not forward.
pub async fn single_codec_offer(mime_type: &str) -> Result<String> {
    let (kind, clock_rate, channels) = if mime_type.to_ascii_lowercase().starts_with("audio/") {
        (RtpCodecKind::Audio, 8_000, 1)
    } else {
        (RtpCodecKind::Video, 90_000, 0)
    };
    let codec = RTCRtpCodec {
        mime_type: mime_type.to_owned(),
        clock_rate,
        channels,
        sdp_fmtp_line: String::new(),
        rtcp_feedback: Vec::new(),
    };
    let (pc, events) = build_peer(PeerSetup {
        codecs: vec![CodecSpec {
            codec: codec.clone(),
            payload_type: 102,
            kind,
        }],
        keyframe_requests: false,
        on_track: None,
        lossy_link: None,
        skewed_reports: None,
    })
    .await?;
    let track = MediaStreamTrack::new(
        "single-codec".to_owned(),
        "single-codec-track".to_owned(),
        "single".to_owned(),
        kind,
        vec![RTCRtpEncodingParameters {
            rtp_coding_parameters: RTCRtpCodingParameters {
                ssrc: Some(rand::random::<u32>() | 1),
                ..Default::default()
            },
            codec,
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
