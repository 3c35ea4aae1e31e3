//! One peer connection the engine drives: a publisher or a viewer of one stream, and, for a
//! viewer, what its negotiation settled for each down track (payload types, header extensions,
//! the RTX stream) and which SSRCs are still free for its senders.

use directo_sfu::{Codec, DownTrackConfig, MediaKind, PublishedTrack, Quality, RtxConfig};
use rand::Rng;
use rtc::data_channel::RTCDataChannelId;
use rtc::peer_connection::RTCPeerConnection;
use rtc::peer_connection::configuration::media_engine::MIME_TYPE_RTX;
use rtc::rtp_transceiver::RTCRtpSenderId;
use rtc::rtp_transceiver::rtp_sender::RTCRtpSendParameters;
use rtc::shared::{TaggedBytesMut, TransportContext};
use std::time::Instant;
use tokio::sync::mpsc;

use crate::chat_port::Identity;
use crate::handle::SessionEvent;
use crate::setup::{PeerRole, rtx_apt};

/// The engine's id for a peer; also the id `directo-sfu` knows it by.
pub(crate) type PeerId = directo_sfu::PeerId;

/// One of a viewer's outgoing tracks.
pub(crate) struct Sender {
    pub(crate) kind: MediaKind,
    pub(crate) id: RTCRtpSenderId,
    pub(crate) ssrc: u32,
    /// The SSRC offered for its RTX stream (video), used if the viewer negotiates RTX.
    pub(crate) rtx_ssrc: Option<u32>,
}

/// A peer connection and what the engine knows about it.
pub(crate) struct Peer {
    pub(crate) session: String,
    pub(crate) stream: String,
    pub(crate) role: PeerRole,
    pub(crate) ufrag: String,
    /// Our ICE password: a released viewer's consent checks are answered with it.
    pub(crate) ice_pwd: String,
    /// The peer's `rtc` connection; `None` once a viewer's was released after setup
    /// (`engine/release.rs`).
    pub(crate) pc: Option<Box<RTCPeerConnection>>,
    pub(crate) created: Instant,
    pub(crate) last_rx: Instant,
    pub(crate) connected: bool,
    /// Set once the peer is gone; it is removed at the end of the current pass.
    pub(crate) closing: bool,
    /// The deadline the timer heap holds for this peer.
    pub(crate) timeout: Option<Instant>,
    /// Whether the peer is queued for a processing pass.
    pub(crate) dirty: bool,
    /// Publisher: the tracks opened so far.
    pub(crate) published: Vec<PublishedTrack>,
    /// Publisher: how many tracks its offer announced.
    pub(crate) expected_tracks: usize,
    /// Publisher: when to go live with the tracks opened so far.
    pub(crate) live_deadline: Option<Instant>,
    /// Viewer: whether its first video packet (a keyframe) was sent.
    pub(crate) joined: bool,
    /// Who the peer said it is.
    pub(crate) identity: Identity,
    /// The peer's open `chat` data channel.
    pub(crate) chat_channel: Option<RTCDataChannelId>,
    /// Viewer: one sender per kind offered.
    pub(crate) senders: Vec<Sender>,
    /// Viewer: the transport its send leg uses (see `fanout`), once it has one.
    pub(crate) sending_to: Option<TransportContext>,
    /// Viewer: the simulcast layer it asked for.
    pub(crate) quality: Quality,
    /// Where this session's events go (its signaling client, if one listens).
    pub(crate) events: mpsc::Sender<SessionEvent>,
    /// Viewer, once connected: the receive SRTP context its RTCP is unprotected with in the
    /// engine itself (`engine/viewer_rtcp.rs`), past `rtc`'s read pipeline.
    pub(crate) rtcp_in: Option<rtc::srtp::context::Context>,
    /// Viewer: whether one of its SRTCP packets was authenticated (it has its keys: its DTLS
    /// handshake is over). Only a connected viewer's RTCP is read (`viewer_rtcp.rs`).
    pub(crate) rtcp_read: bool,
    /// Viewer: whether its offer had a data channel section (it may open chat).
    pub(crate) data_offered: bool,
    /// A released viewer's DTLS close_notify, made while its connection was dropped and sent
    /// when the server ends the session.
    pub(crate) farewell: Vec<TaggedBytesMut>,
}

impl Peer {
    /// Tell the session's client `event`. Returns `false` when its listener left the queue
    /// full: the last slot then says the session is closed, and the caller ends it. Nobody
    /// listening (WHIP and WHEP have no channel back) is not an error.
    pub(crate) fn notify(&self, event: SessionEvent) -> bool {
        match self.events.capacity() {
            0 => false,
            1 => {
                let _ = self.events.try_send(SessionEvent::Closed {
                    reason: "this session's signaling events went untaken; it was closed"
                        .to_owned(),
                });
                false
            }
            _ => {
                let _ = self.events.try_send(event);
                true
            }
        }
    }

    /// The viewer's down-track configuration, read from what its answer negotiated.
    pub(crate) fn down_tracks(&mut self) -> Vec<DownTrackConfig> {
        let Some(pc) = self.pc.as_deref_mut() else {
            return Vec::new();
        };
        self.senders
            .iter()
            .filter_map(|sender| down_track(pc, sender, self.quality))
            .collect()
    }

    /// A random SSRC that none of this peer's senders uses, nor `taken`: two streams sharing
    /// an SSRC under one SRTP key would share its nonces.
    pub(crate) fn unused_ssrc(&self, taken: &[u32]) -> u32 {
        loop {
            let ssrc = rand::rng().random::<u32>();
            let used = taken.contains(&ssrc)
                || self
                    .senders
                    .iter()
                    .any(|sender| sender.ssrc == ssrc || sender.rtx_ssrc == Some(ssrc));
            // SSRC 0 is what libwebrtc probes with before media flows.
            if ssrc != 0 && !used {
                return ssrc;
            }
        }
    }
}

/// One sender's down-track configuration, from what the viewer negotiated.
fn down_track(
    pc: &mut RTCPeerConnection,
    sender: &Sender,
    quality: Quality,
) -> Option<DownTrackConfig> {
    let mut rtp_sender = pc.rtp_sender(sender.id)?;
    let params = rtp_sender.get_parameters();
    let payload_types = params
        .rtp_parameters
        .codecs
        .iter()
        .filter_map(|c| Codec::from_mime(&c.rtp_codec.mime_type).map(|k| (k, c.payload_type)))
        .collect();
    let extensions = params
        .rtp_parameters
        .header_extensions
        .iter()
        .filter_map(|e| u8::try_from(e.id).ok().map(|id| (id, e.uri.clone())))
        .collect();
    Some(DownTrackConfig {
        kind: sender.kind,
        ssrc: sender.ssrc,
        payload_types,
        extensions,
        quality,
        rtx: negotiated_rtx(params),
    })
}

/// The RTX stream a sender may use: its RTX SSRC, which `rtc` keeps only when the viewer
/// negotiated RTX, and the viewer's RTX payload type for each media payload type.
fn negotiated_rtx(params: &RTCRtpSendParameters) -> Option<RtxConfig> {
    let ssrc = params
        .encodings
        .first()?
        .rtp_coding_parameters
        .rtx
        .as_ref()?
        .ssrc;
    let payload_types: Vec<(u8, u8)> = params
        .rtp_parameters
        .codecs
        .iter()
        .filter(|c| c.rtp_codec.mime_type.eq_ignore_ascii_case(MIME_TYPE_RTX))
        .filter_map(|c| rtx_apt(&c.rtp_codec.sdp_fmtp_line).map(|apt| (apt, c.payload_type)))
        .collect();
    (!payload_types.is_empty()).then_some(RtxConfig {
        ssrc,
        payload_types,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::setup::{PeerSetup, build_peer_connection};
    use rtc::media_stream::MediaStreamTrack;
    use rtc::peer_connection::RTCPeerConnectionBuilder;
    use rtc::peer_connection::configuration::media_engine::{
        MIME_TYPE_OPUS, MIME_TYPE_VP8, MediaEngine,
    };
    use rtc::rtp_transceiver::rtp_sender::{
        RTCRtpCodec, RTCRtpCodecParameters, RTCRtpCodingParameters, RTCRtpEncodingParameters,
        RTCRtpRtxParameters, RtpCodecKind,
    };
    use rtc::rtp_transceiver::{RTCRtpTransceiverDirection, RTCRtpTransceiverInit};

    const VIDEO_SSRC: u32 = 0x1234;
    const RTX_SSRC: u32 = 0x5678;

    fn codec(mime_type: &str, clock_rate: u32, channels: u16, fmtp: &str) -> RTCRtpCodec {
        RTCRtpCodec {
            mime_type: mime_type.to_owned(),
            clock_rate,
            channels,
            sdp_fmtp_line: fmtp.to_owned(),
            rtcp_feedback: vec![],
        }
    }

    /// A receiving client with Opus, VP8 on `vp8` and, with `rtx`, VP8's RTX format there:
    /// payload types other than Directo's, as aiortc's are.
    fn client(vp8: u8, rtx: Option<u8>, now: Instant) -> RTCPeerConnection {
        let mut media_engine = MediaEngine::default();
        let mut formats = vec![
            (
                codec(MIME_TYPE_OPUS, 48_000, 2, ""),
                111,
                RtpCodecKind::Audio,
            ),
            (
                codec(MIME_TYPE_VP8, 90_000, 0, ""),
                vp8,
                RtpCodecKind::Video,
            ),
        ];
        if let Some(rtx) = rtx {
            let fmtp = format!("apt={vp8}");
            formats.push((
                codec(MIME_TYPE_RTX, 90_000, 0, &fmtp),
                rtx,
                RtpCodecKind::Video,
            ));
        }
        for (rtp_codec, payload_type, kind) in formats {
            let parameters = RTCRtpCodecParameters {
                rtp_codec,
                payload_type,
            };
            media_engine.register_codec(parameters, kind).unwrap();
        }
        RTCPeerConnectionBuilder::new()
            .with_media_engine(media_engine)
            .build(now)
            .unwrap()
    }

    fn recvonly(client: &mut RTCPeerConnection, kind: RtpCodecKind) {
        let init = RTCRtpTransceiverInit {
            direction: RTCRtpTransceiverDirection::Recvonly,
            streams: vec![],
            send_encodings: vec![],
        };
        client.add_transceiver_from_kind(kind, Some(init)).unwrap();
    }

    /// Directo's side of a viewer, as the engine builds it.
    fn directo(now: Instant) -> RTCPeerConnection {
        let setup = PeerSetup {
            ufrag: "directoufrag".to_owned(),
            pwd: "directopasswordthatislongenough".to_owned(),
        };
        build_peer_connection(PeerRole::Viewer, &setup, now).unwrap()
    }

    /// A VP8 sender with an RTX SSRC, as the engine's `add_sender` adds one.
    fn add_video_sender(pc: &mut RTCPeerConnection) -> Sender {
        let track = MediaStreamTrack::new(
            "directo-test".to_owned(),
            "video-test".to_owned(),
            "video".to_owned(),
            RtpCodecKind::Video,
            vec![RTCRtpEncodingParameters {
                rtp_coding_parameters: RTCRtpCodingParameters {
                    ssrc: Some(VIDEO_SSRC),
                    rtx: Some(RTCRtpRtxParameters { ssrc: RTX_SSRC }),
                    ..Default::default()
                },
                codec: codec(MIME_TYPE_VP8, 90_000, 0, ""),
                active: true,
                ..Default::default()
            }],
        );
        Sender {
            kind: MediaKind::Video,
            id: pc.add_track(track).unwrap(),
            ssrc: VIDEO_SSRC,
            rtx_ssrc: Some(RTX_SSRC),
        }
    }

    /// The client offers, Directo answers; Directo's video down track and its answer.
    fn client_offers(vp8: u8, rtx: Option<u8>) -> (Option<RtxConfig>, Vec<(Codec, u8)>, String) {
        let now = Instant::now();
        let mut client = client(vp8, rtx, now);
        recvonly(&mut client, RtpCodecKind::Audio);
        recvonly(&mut client, RtpCodecKind::Video);
        let offer = client.create_offer(None).unwrap();
        client.set_local_description(now, offer.clone()).unwrap();
        let mut pc = directo(now);
        let sender = add_video_sender(&mut pc);
        pc.set_remote_description(now, offer).unwrap();
        let answer = pc.create_answer(None).unwrap();
        pc.set_local_description(now, answer.clone()).unwrap();
        let config = down_track(&mut pc, &sender, Quality::Auto).unwrap();
        (config.rtx, config.payload_types, answer.sdp)
    }

    #[test]
    fn a_client_that_offers_rtx_gets_its_rtx_stream_on_its_payload_types() {
        let (rtx, payload_types, answer) = client_offers(100, Some(101));
        assert!(
            payload_types.contains(&(Codec::Vp8, 100)),
            "{payload_types:?}"
        );
        assert_eq!(
            rtx,
            Some(RtxConfig {
                ssrc: RTX_SSRC,
                payload_types: vec![(100, 101)]
            })
        );
        assert!(answer.contains(&format!("a=ssrc-group:FID {VIDEO_SSRC} {RTX_SSRC}")));
        assert!(answer.contains("a=rtpmap:101 rtx/90000"), "{answer}");
        assert!(answer.contains("a=fmtp:101 apt=100"), "{answer}");
    }

    #[test]
    fn a_client_without_rtx_gets_no_rtx_stream() {
        let (rtx, payload_types, answer) = client_offers(96, None);
        assert!(payload_types.contains(&(Codec::Vp8, 96)));
        assert_eq!(rtx, None);
        assert!(!answer.contains("FID"), "{answer}");
        assert!(!answer.contains(&RTX_SSRC.to_string()), "{answer}");
    }

    #[test]
    fn a_client_answering_our_offer_without_rtx_gets_no_rtx_stream() {
        // Renegotiation: the client first took audio only; Directo then offers it video.
        let now = Instant::now();
        let mut client = client(96, None, now);
        recvonly(&mut client, RtpCodecKind::Audio);
        let offer = client.create_offer(None).unwrap();
        client.set_local_description(now, offer.clone()).unwrap();
        let mut pc = directo(now);
        pc.set_remote_description(now, offer).unwrap();
        let answer = pc.create_answer(None).unwrap();
        pc.set_local_description(now, answer.clone()).unwrap();
        client.set_remote_description(now, answer).unwrap();

        let sender = add_video_sender(&mut pc);
        let offer = pc.create_offer(None).unwrap();
        pc.set_local_description(now, offer.clone()).unwrap();
        assert!(offer.sdp.contains("rtx/90000"), "video is offered with RTX");
        client.set_remote_description(now, offer).unwrap();
        let answer = client.create_answer(None).unwrap();
        client.set_local_description(now, answer.clone()).unwrap();
        assert!(!answer.sdp.contains("rtx"), "{}", answer.sdp);
        pc.set_remote_description(now, answer).unwrap();
        let config = down_track(&mut pc, &sender, Quality::Auto).unwrap();
        assert_eq!(config.rtx, None);
    }
}
