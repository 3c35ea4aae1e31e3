//! How Directo builds each `rtc` peer connection: codecs, ICE-lite settings, interceptors.
//!
//! Publishers get the receive-side interceptors a browser needs to send well (NACK generator,
//! receiver reports, transport-wide congestion control feedback). Viewers get none of the
//! send-side ones: retransmissions come from the one shared NACK cache in `directo-sfu`,
//! sender reports are derived from the publisher's, and transport-wide sequence numbers are
//! stamped and their feedback read by the SFU, so nothing is buffered per viewer in `rtc`.
//! Viewers are offered RTX (RFC 4588) for every video codec: their retransmissions and probe
//! traffic go over it, never again on the media SSRC, where a sequence number sent twice would
//! reuse an SRTP nonce.

use rtc::interceptor::{Registry, Slot};
use rtc::peer_connection::configuration::interceptor_registry::register_default_interceptors;
use rtc::peer_connection::configuration::media_engine::{
    MIME_TYPE_H264, MIME_TYPE_OPUS, MIME_TYPE_RTX, MIME_TYPE_VP8, MIME_TYPE_VP9, MediaEngine,
};
use rtc::peer_connection::configuration::setting_engine::SettingEngineBuilder;
use rtc::peer_connection::transport::RTCDtlsRole;
use rtc::peer_connection::{RTCPeerConnection, RTCPeerConnectionBuilder};
use rtc::rtp_transceiver::rtp_sender::{
    RTCPFeedback, RTCRtpCodec, RTCRtpCodecParameters, RTCRtpHeaderExtensionCapability, RtpCodecKind,
};
use std::time::{Duration, Instant};

use directo_sfu::{RTCP_TAP_SLOT, RtcpTap};

use crate::rtcp_tap::engine_rtcp;

/// Time without a STUN check before `rtc` calls a peer's ICE disconnected: two of Firefox's
/// consent checks (every 4-6 s), five of Chrome's (about every 2.5 s).
const ICE_DISCONNECTED_TIMEOUT: Duration = Duration::from_secs(12);

/// The role a peer connection is built for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PeerRole {
    Publisher,
    Viewer,
}

fn video_feedback() -> Vec<RTCPFeedback> {
    [("nack", ""), ("nack", "pli"), ("ccm", "fir")]
        .into_iter()
        .map(|(typ, parameter)| RTCPFeedback {
            typ: typ.to_owned(),
            parameter: parameter.to_owned(),
        })
        .collect()
}

/// The codecs Directo forwards. Publishers are offered no RTX: their retransmissions arrive on
/// the media SSRC, which keeps one sequence space per track and one NACK cache.
fn codecs() -> Vec<(RTCRtpCodecParameters, RtpCodecKind)> {
    let video = |mime: &str, fmtp: &str, payload_type: u8| {
        (
            RTCRtpCodecParameters {
                rtp_codec: RTCRtpCodec {
                    mime_type: mime.to_owned(),
                    clock_rate: 90_000,
                    channels: 0,
                    sdp_fmtp_line: fmtp.to_owned(),
                    rtcp_feedback: video_feedback(),
                },
                payload_type,
            },
            RtpCodecKind::Video,
        )
    };
    vec![
        (
            RTCRtpCodecParameters {
                rtp_codec: RTCRtpCodec {
                    mime_type: MIME_TYPE_OPUS.to_owned(),
                    clock_rate: 48_000,
                    channels: 2,
                    sdp_fmtp_line: "minptime=10;useinbandfec=1".to_owned(),
                    rtcp_feedback: vec![],
                },
                payload_type: 111,
            },
            RtpCodecKind::Audio,
        ),
        video(MIME_TYPE_VP8, "", 96),
        video(MIME_TYPE_VP9, "profile-id=0", 98),
        video(
            MIME_TYPE_H264,
            "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f",
            102,
        ),
        video(
            MIME_TYPE_H264,
            "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42001f",
            104,
        ),
        video(
            MIME_TYPE_H264,
            "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=640c1f",
            106,
        ),
    ]
}

/// What a relay pull (another node's WHEP client) offers its upstream: the codecs Directo
/// forwards, at the payload types Directo uses.
pub fn relay_codecs() -> Vec<(RTCRtpCodecParameters, RtpCodecKind)> {
    codecs()
}

/// The header extensions a relay pull offers: the ones the upstream forwards to viewers.
pub fn relay_extensions() -> &'static [(&'static str, RtpCodecKind)] {
    VIEWER_EXTENSIONS
}

/// The codec a viewer's outgoing track of `codec` is created with: the first registered entry
/// of that codec in [`codecs`] (the answer then settles the payload type and parameters).
pub(crate) fn rtc_codec(codec: directo_sfu::Codec) -> RTCRtpCodec {
    codecs()
        .into_iter()
        .map(|(parameters, _)| parameters.rtp_codec)
        .find(|c| directo_sfu::Codec::from_mime(&c.mime_type) == Some(codec))
        .map(|c| RTCRtpCodec {
            rtcp_feedback: Vec::new(),
            ..c
        })
        .unwrap_or_default()
}

/// A viewer's RTX format for each video codec, at the payload type after the codec's (`apt`
/// names the codec, RFC 4588), as `rtc`'s own defaults pair them.
fn rtx_codecs() -> Vec<RTCRtpCodecParameters> {
    codecs()
        .into_iter()
        .filter(|(_, kind)| *kind == RtpCodecKind::Video)
        .map(|(codec, _)| RTCRtpCodecParameters {
            rtp_codec: RTCRtpCodec {
                mime_type: MIME_TYPE_RTX.to_owned(),
                clock_rate: 90_000,
                channels: 0,
                sdp_fmtp_line: format!("apt={}", codec.payload_type),
                rtcp_feedback: vec![],
            },
            payload_type: codec.payload_type + 1,
        })
        .collect()
}

/// The associated payload type (`apt`) of an RTX format's fmtp line, e.g. `apt=96;rtx-time=3000`.
pub(crate) fn rtx_apt(fmtp: &str) -> Option<u8> {
    fmtp.split(';')
        .find_map(|parameter| parameter.trim().strip_prefix("apt="))
        .and_then(|apt| apt.trim().parse().ok())
}

/// The MIME types a client may offer for video, for error messages.
pub(crate) const ACCEPTED_VIDEO: &str = "video/VP8, video/VP9, video/H264 (packetization-mode=1)";

/// Header extensions viewers may negotiate: the ones worth forwarding from the publisher.
const VIEWER_EXTENSIONS: &[(&str, RtpCodecKind)] = &[
    (
        "urn:ietf:params:rtp-hdrext:ssrc-audio-level",
        RtpCodecKind::Audio,
    ),
    ("urn:3gpp:video-orientation", RtpCodecKind::Video),
    (
        "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time",
        RtpCodecKind::Video,
    ),
    (
        "http://www.webrtc.org/experiments/rtp-hdrext/playout-delay",
        RtpCodecKind::Video,
    ),
];

/// Header extensions publishers may negotiate (beyond what the interceptors register).
const PUBLISHER_EXTENSIONS: &[(&str, RtpCodecKind)] = &[
    (
        "urn:ietf:params:rtp-hdrext:ssrc-audio-level",
        RtpCodecKind::Audio,
    ),
    ("urn:3gpp:video-orientation", RtpCodecKind::Video),
    (
        "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time",
        RtpCodecKind::Video,
    ),
    (
        "http://www.webrtc.org/experiments/rtp-hdrext/playout-delay",
        RtpCodecKind::Video,
    ),
    ("urn:ietf:params:rtp-hdrext:sdes:mid", RtpCodecKind::Audio),
    ("urn:ietf:params:rtp-hdrext:sdes:mid", RtpCodecKind::Video),
    // Simulcast: which layer (RID) a packet of a new SSRC belongs to.
    (
        "urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id",
        RtpCodecKind::Video,
    ),
    (
        "urn:ietf:params:rtp-hdrext:sdes:repaired-rtp-stream-id",
        RtpCodecKind::Video,
    ),
];

/// ICE credentials and the certificate-independent settings of one peer connection.
pub(crate) struct PeerSetup {
    pub(crate) ufrag: String,
    pub(crate) pwd: String,
}

/// Build a peer connection for `role`: ICE-lite, DTLS server, GCM first, our codecs.
pub(crate) fn build_peer_connection(
    role: PeerRole,
    setup: &PeerSetup,
    now: Instant,
) -> Result<RTCPeerConnection, rtc::shared::error::Error> {
    use rtc::dtls::extension::extension_use_srtp::SrtpProtectionProfile;

    let settings = SettingEngineBuilder::new()
        .with_lite(true)
        .with_ice_credentials(setup.ufrag.clone(), setup.pwd.clone())
        .with_answering_dtls_role(RTCDtlsRole::Server)
        // Only STUN counts as a sign of life here (`rtc` does not count media), and as ICE-lite we
        // only answer checks: Firefox checks consent every 4-6 s (RFC 7675), so at `rtc`'s 5 s
        // default each Firefox peer flipped to disconnected and back every few seconds. Nothing
        // is dropped on "disconnected" (silent peers go at --idle-timeout-s), so this only keeps
        // the state and its log lines true; the failed timeout stays at its default.
        .with_ice_timeouts(Some(ICE_DISCONNECTED_TIMEOUT), None, None)
        // AEAD_AES_128_GCM first: browsers offer it and it costs a fraction of AES-CM+HMAC.
        .with_srtp_protection_profiles(vec![
            SrtpProtectionProfile::Srtp_Aead_Aes_128_Gcm,
            SrtpProtectionProfile::Srtp_Aes128_Cm_Hmac_Sha1_80,
        ])
        .build();

    let mut media_engine = MediaEngine::default();
    for (codec, kind) in codecs() {
        media_engine.register_codec(codec, kind)?;
    }
    if role == PeerRole::Viewer {
        for codec in rtx_codecs() {
            media_engine.register_codec(codec, RtpCodecKind::Video)?;
        }
    }
    let extensions = match role {
        PeerRole::Publisher => PUBLISHER_EXTENSIONS,
        PeerRole::Viewer => VIEWER_EXTENSIONS,
    };
    for (uri, kind) in extensions {
        media_engine.register_header_extension(
            RTCRtpHeaderExtensionCapability {
                uri: (*uri).to_owned(),
            },
            *kind,
            None,
        )?;
    }

    let registry = match role {
        PeerRole::Publisher => register_default_interceptors(Registry::new(), &mut media_engine)?,
        PeerRole::Viewer => {
            // Transport-wide congestion control toward viewers: the SFU numbers every packet
            // it forwards (`directo_sfu::Stream`) and reads the viewer's feedback, so nothing
            // in `rtc`'s chain does either.
            directo_sfu::negotiate_transport_cc(&mut media_engine)?;
            Registry::new()
        }
    };
    let registry = registry.with(Slot::from(RTCP_TAP_SLOT), RtcpTap::delivering(engine_rtcp));

    RTCPeerConnectionBuilder::new()
        .with_setting_engine(settings)
        .with_media_engine(media_engine)
        .with_interceptor_registry(registry)
        .build(now)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_video_codec_has_an_rtx_format_on_a_payload_type_of_its_own() {
        let rtx = rtx_codecs();
        let video: Vec<u8> = codecs()
            .iter()
            .filter(|(_, kind)| *kind == RtpCodecKind::Video)
            .map(|(codec, _)| codec.payload_type)
            .collect();
        assert_eq!(rtx.len(), video.len());
        let mut all: Vec<u8> = codecs()
            .iter()
            .map(|(codec, _)| codec.payload_type)
            .collect();
        for format in &rtx {
            assert!(video.contains(&rtx_apt(&format.rtp_codec.sdp_fmtp_line).unwrap()));
            all.push(format.payload_type);
        }
        let count = all.len();
        all.sort_unstable();
        all.dedup();
        assert_eq!(all.len(), count, "payload types collide");
    }

    #[test]
    fn reads_the_apt_among_other_parameters() {
        assert_eq!(rtx_apt("apt=96"), Some(96));
        assert_eq!(rtx_apt("rtx-time=3000; apt=102"), Some(102));
        assert_eq!(rtx_apt("rtx-time=3000"), None);
        assert_eq!(rtx_apt("apt=x"), None);
    }
}
