//! How Directo builds each `rtc` peer connection: codecs, ICE-lite settings, interceptors.
//!
//! Publishers get the receive-side interceptors a browser needs to send well (NACK generator,
//! receiver reports, transport-wide congestion control feedback). Viewers get none of the
//! send-side ones: retransmissions come from the one shared NACK cache in `directo-sfu`,
//! sender reports are derived from the publisher's, and transport-wide sequence numbers are
//! stamped and their feedback read by the SFU, so nothing is buffered per viewer in `rtc`.

use rtc::interceptor::{Registry, Slot};
use rtc::peer_connection::configuration::interceptor_registry::register_default_interceptors;
use rtc::peer_connection::configuration::media_engine::{
    MIME_TYPE_H264, MIME_TYPE_OPUS, MIME_TYPE_VP8, MIME_TYPE_VP9, MediaEngine,
};
use rtc::peer_connection::configuration::setting_engine::SettingEngineBuilder;
use rtc::peer_connection::transport::RTCDtlsRole;
use rtc::peer_connection::{RTCPeerConnection, RTCPeerConnectionBuilder};
use rtc::rtp_transceiver::rtp_sender::{
    RTCPFeedback, RTCRtpCodec, RTCRtpCodecParameters, RTCRtpHeaderExtensionCapability, RtpCodecKind,
};
use std::time::Instant;

use directo_sfu::{RTCP_TAP_SLOT, RtcpTap};

use crate::rtcp_tap::engine_rtcp;

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

/// The codecs Directo forwards. No RTX: retransmissions travel on the media SSRC, which keeps
/// one sequence space per track and one NACK cache.
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
