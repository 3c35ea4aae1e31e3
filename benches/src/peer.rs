//! One `rtc` peer connection on its own UDP socket, and the loop that drives it.
//!
//! Every synthetic peer (the publisher, each viewer) is a sans-IO `RTCPeerConnection` plus a
//! UDP socket bound to a loopback address; [`drive`] runs one such pair as a single future, so a
//! current-thread runtime can carry hundreds of them with no task or thread per peer beyond
//! that one future. What a peer does with its media is a [`PeerApp`]: the loop hands it
//! events and inbound messages and calls it at the deadlines it asks for.
//!
//! Peers register just Opus (111) and VP8 (96), with the feedback a browser offers on video
//! (NACK, PLI, FIR; viewers also transport-wide congestion control and VP8's RTX format on 97,
//! which carries the server's probes), and prefer SRTP
//! AEAD_AES_128_GCM. The publisher carries the NACK responder, sender reports and a tap that
//! surfaces PLI/FIR. Viewers, which must stay cheap by the thousand, read RTP off their socket
//! themselves once DTLS is done: the connection hands over a receive SRTP context (the one
//! addition in `vendor/rtc`) and each packet is authenticated, replay-checked and decrypted
//! there, without the connection's handler pipeline; RTCP and everything else still go through
//! it. So viewers send no NACKs (and receiver reports only behind a narrowed link), and the
//! loss they count is raw loss; they do send transport-wide feedback, as browsers do.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use directo_sfu::{RtcpTap, is_keyframe_request};
use rtc::dtls::extension::extension_use_srtp::SrtpProtectionProfile;
use rtc::interceptor::{NackResponderBuilder, Registry, SenderReportBuilder, Slot};
use rtc::peer_connection::configuration::media_engine::{
    MIME_TYPE_OPUS, MIME_TYPE_RTX, MIME_TYPE_VP8, MediaEngine,
};
use rtc::peer_connection::configuration::setting_engine::SettingEngineBuilder;
use rtc::peer_connection::event::RTCPeerConnectionEvent;
use rtc::peer_connection::message::{RTCMessage, TaggedRTCMessage};
use rtc::peer_connection::transport::{
    CandidateConfig, CandidateHostConfig, RTCDtlsRole, RTCIceCandidate, RTCIceCandidateInit,
};
use rtc::peer_connection::{RTCPeerConnection, RTCPeerConnectionBuilder};
use rtc::rtp_transceiver::rtp_sender::{
    RTCPFeedback, RTCRtpCodec, RTCRtpCodecParameters, RTCRtpHeaderExtensionCapability, RtpCodecKind,
};
use rtc::sansio::Protocol;
use rtc::shared::marshal::Unmarshal;
use rtc::shared::{TaggedBytesMut, TransportContext, TransportProtocol};
use tokio::net::UdpSocket;

use crate::error::{LoadError, Result};
use crate::rx_stamp;
use crate::synth::{OPUS_PAYLOAD_TYPE, RTX_PAYLOAD_TYPE, VP8_PAYLOAD_TYPE};

/// Largest datagram we expect (media is well under an Ethernet MTU).
const RECEIVE_BUFFER: usize = 2048;

/// Header extensions a simulcast publisher stamps its video with (RFC 8852): the publisher's
/// connection negotiates them, and the publisher looks up their ids to write them.
pub(crate) const MID_URI: &str = "urn:ietf:params:rtp-hdrext:sdes:mid";
/// See [`MID_URI`].
pub(crate) const RID_URI: &str = "urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id";

/// What a peer is for; decides its interceptors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Sends synthetic media; answers NACKs and keyframe requests.
    Publisher,
    /// Receives media; sends transport-wide feedback if `transport_cc` (as browsers do).
    Viewer {
        /// Negotiate transport-wide congestion control.
        transport_cc: bool,
    },
}

/// VP8 at 90 kHz with the feedback a browser offers.
pub fn vp8_codec() -> RTCRtpCodec {
    RTCRtpCodec {
        mime_type: MIME_TYPE_VP8.to_owned(),
        clock_rate: 90_000,
        channels: 0,
        sdp_fmtp_line: String::new(),
        rtcp_feedback: [("nack", ""), ("nack", "pli"), ("ccm", "fir")]
            .into_iter()
            .map(|(typ, parameter)| RTCPFeedback {
                typ: typ.to_owned(),
                parameter: parameter.to_owned(),
            })
            .collect(),
    }
}

/// Opus, stereo at 48 kHz, as browsers offer it.
pub fn opus_codec() -> RTCRtpCodec {
    RTCRtpCodec {
        mime_type: MIME_TYPE_OPUS.to_owned(),
        clock_rate: 48_000,
        channels: 2,
        sdp_fmtp_line: "minptime=10;useinbandfec=1".to_owned(),
        rtcp_feedback: Vec::new(),
    }
}

/// Builds a peer connection for `role`.
pub fn build_peer_connection(role: Role, now: Instant) -> Result<RTCPeerConnection> {
    let settings = SettingEngineBuilder::new()
        .with_answering_dtls_role(RTCDtlsRole::Client)
        // Check every 50 ms as browsers pace it (RFC 8445 Ta), not rtc's 200 ms default,
        // which would add up to 200 ms to every join; same 1.4 s of attempts overall.
        .with_ice_connection_attempts(Some(Duration::from_millis(50)), Some(28))
        // GCM first: what browsers negotiate with Directo, and the cheaper one for both sides.
        .with_srtp_protection_profiles(vec![
            SrtpProtectionProfile::Srtp_Aead_Aes_128_Gcm,
            SrtpProtectionProfile::Srtp_Aes128_Cm_Hmac_Sha1_80,
        ])
        .build();
    let mut media_engine = MediaEngine::default();
    media_engine.register_codec(
        RTCRtpCodecParameters {
            rtp_codec: opus_codec(),
            payload_type: OPUS_PAYLOAD_TYPE,
        },
        RtpCodecKind::Audio,
    )?;
    media_engine.register_codec(
        RTCRtpCodecParameters {
            rtp_codec: vp8_codec(),
            payload_type: VP8_PAYLOAD_TYPE,
        },
        RtpCodecKind::Video,
    )?;
    if let Role::Viewer { transport_cc } = role {
        // RTX as browsers offer it: the server probes a viewer's link with RTX packets only.
        media_engine.register_codec(
            RTCRtpCodecParameters {
                rtp_codec: RTCRtpCodec {
                    mime_type: MIME_TYPE_RTX.to_owned(),
                    clock_rate: 90_000,
                    channels: 0,
                    sdp_fmtp_line: format!("apt={VP8_PAYLOAD_TYPE}"),
                    rtcp_feedback: Vec::new(),
                },
                payload_type: RTX_PAYLOAD_TYPE,
            },
            RtpCodecKind::Video,
        )?;
        if transport_cc {
            // Viewers ask for transport-wide congestion control as browsers do, so the server
            // numbers every packet and reads their feedback (`twcc_feedback`).
            directo_sfu::negotiate_transport_cc(&mut media_engine)?;
        }
    }
    if role == Role::Publisher {
        // A simulcast publisher tags its layers with MID and RID (RFC 8852).
        for uri in [MID_URI, RID_URI] {
            media_engine.register_header_extension(
                RTCRtpHeaderExtensionCapability {
                    uri: uri.to_owned(),
                },
                RtpCodecKind::Video,
                None,
            )?;
        }
    }
    let registry = match role {
        Role::Publisher => Registry::new()
            .with(Slot::NackResponder, NackResponderBuilder::new().build())
            .with(Slot::SenderReport, SenderReportBuilder::new().build())
            .with(
                Slot::from(directo_sfu::RTCP_TAP_SLOT),
                RtcpTap::delivering(is_keyframe_request),
            ),
        Role::Viewer { .. } => Registry::new(),
    };
    Ok(RTCPeerConnectionBuilder::new()
        .with_setting_engine(settings)
        .with_media_engine(media_engine)
        .with_interceptor_registry(registry)
        .build(now)?)
}

/// A peer connection and the UDP socket it owns.
pub struct Peer {
    /// The sans-IO peer connection.
    pub pc: RTCPeerConnection,
    socket: UdpSocket,
    local_addr: SocketAddr,
    buf: Vec<u8>,
    /// Viewers read RTP off the socket themselves once DTLS is done (see [`drive`]).
    direct_rtp: bool,
    /// The receive SRTP context for that, taken from the connection after the handshake.
    srtp_in: Option<rtc::srtp::context::Context>,
}

impl Peer {
    /// Binds a socket on `ip` (a loopback address) and builds a peer connection for `role`.
    pub async fn bind(role: Role, ip: IpAddr) -> Result<Peer> {
        let socket = UdpSocket::bind(SocketAddr::new(ip, 0)).await?;
        if matches!(role, Role::Viewer { .. }) {
            rx_stamp::enable(&socket)?;
        }
        let local_addr = socket.local_addr()?;
        Ok(Peer {
            pc: build_peer_connection(role, Instant::now())?,
            socket,
            local_addr,
            buf: vec![0; RECEIVE_BUFFER],
            direct_rtp: matches!(role, Role::Viewer { .. }),
            srtp_in: None,
        })
    }

    /// Announces the socket as the only host candidate and ends gathering, so the local
    /// description carries every candidate (WHIP/WHEP without trickle).
    pub fn add_local_candidate(&mut self) -> Result<()> {
        let candidate = CandidateHostConfig {
            base_config: CandidateConfig {
                network: "udp".to_owned(),
                address: self.local_addr.ip().to_string(),
                port: self.local_addr.port(),
                component: 1,
                ..Default::default()
            },
            ..Default::default()
        }
        .new_candidate_host()?;
        self.pc
            .add_local_candidate(RTCIceCandidate::from(&candidate).to_json()?)?;
        self.pc
            .add_local_candidate(RTCIceCandidateInit::default())?;
        Ok(())
    }

    /// The local description's SDP, candidates included.
    pub fn local_sdp(&self) -> Result<String> {
        self.pc
            .local_description()
            .map(|description| description.sdp)
            .ok_or_else(|| LoadError::Protocol("no local description".into()))
    }

    /// Sends everything the peer connection has queued.
    async fn flush(&mut self) -> Result<()> {
        while let Some(out) = self.pc.poll_write() {
            // A full socket buffer on loopback means this process is the bottleneck: count it
            // as the loss it is rather than stall every other peer on this thread.
            match self
                .socket
                .try_send_to(&out.message, out.transport.peer_addr)
            {
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    /// The datagram in `buf` as a decrypted RTP packet, when this peer reads RTP directly and
    /// it is one (RTP, not RTCP: RFC 5761 payload types 64–95 are RTCP). `None`: feed it to
    /// the connection. A packet that fails authentication or replay checks is dropped.
    fn direct_rtp(&mut self, len: usize) -> Option<Option<rtc::rtp::Packet>> {
        let context = self.srtp_in.as_mut()?;
        let data = &self.buf[..len];
        let is_rtp =
            len >= 12 && (128..192).contains(&data[0]) && !(64..96).contains(&(data[1] & 0x7f));
        if !is_rtp {
            return None;
        }
        let packet = context.decrypt_rtp(data).ok().and_then(|plain| {
            let mut plain = plain.freeze();
            rtc::rtp::Packet::unmarshal(&mut plain).ok()
        });
        Some(packet)
    }

    fn feed(&mut self, len: usize, peer_addr: SocketAddr) -> Result<()> {
        self.pc.handle_read(TaggedBytesMut {
            now: Instant::now(),
            transport: TransportContext {
                local_addr: self.local_addr,
                peer_addr,
                ecn: None,
                transport_protocol: TransportProtocol::UDP,
            },
            message: BytesMut::from(&self.buf[..len]),
        })?;
        Ok(())
    }

    /// Closes the peer connection and sends what closing queued (DTLS close_notify).
    pub async fn close(&mut self) {
        if self.pc.close().is_ok() {
            let _ = self.flush().await;
        }
    }
}

/// What a peer does with its connection: reacts to events and messages, and runs timers.
pub trait PeerApp {
    /// A state change or notification.
    fn on_event(&mut self, pc: &mut RTCPeerConnection, event: RTCPeerConnectionEvent);
    /// An inbound RTP or RTCP message (tagged with its arrival instant).
    fn on_message(&mut self, pc: &mut RTCPeerConnection, message: TaggedRTCMessage);
    /// The next instant [`PeerApp::on_deadline`] should run, if any.
    fn deadline(&self) -> Option<Instant>;
    /// Runs the app's timers due at `now`.
    fn on_deadline(&mut self, pc: &mut RTCPeerConnection, now: Instant) -> Result<()>;
    /// Whether the app is finished (the loop then returns).
    fn finished(&self) -> bool;
}

/// Drives `peer` for `app` until `until` or until the app is finished.
///
/// Between two datagrams the loop always drains events first: the SRTP keys of a finished
/// DTLS handshake reach the SRTP layer as an event, and media right behind the last handshake
/// flight would otherwise be dropped as undecryptable.
pub async fn drive(peer: &mut Peer, app: &mut impl PeerApp, until: Instant) -> Result<()> {
    let far = Instant::now() + Duration::from_secs(3600);
    let sleep = tokio::time::sleep_until(far.into());
    tokio::pin!(sleep);
    // The instant `sleep` is set to, while it has not fired.
    let mut armed = Some(far);
    loop {
        while let Some(event) = peer.pc.poll_event() {
            app.on_event(&mut peer.pc, event);
        }
        if peer.direct_rtp && peer.srtp_in.is_none() {
            peer.srtp_in = peer.pc.take_recv_srtp_context();
        }
        while let Some(message) = peer.pc.poll_read() {
            app.on_message(&mut peer.pc, message);
        }
        peer.flush().await?;
        let now = Instant::now();
        if app.finished() || now >= until {
            return Ok(());
        }
        let pc_deadline = peer.pc.poll_timeout();
        let app_deadline = app.deadline();
        let deadline = [pc_deadline, app_deadline, Some(until)]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or(until);
        if deadline > now {
            if armed != Some(deadline) {
                sleep.as_mut().reset(deadline.into());
                armed = Some(deadline);
            }
            tokio::select! {
                biased;
                received = rx_stamp::recv(&peer.socket, &mut peer.buf) => {
                    let (len, from, at) = received?;
                    match peer.direct_rtp(len) {
                        Some(Some(packet)) => app.on_message(&mut peer.pc, TaggedRTCMessage {
                            now: at,
                            message: RTCMessage::RtpPacket(String::new(), packet),
                        }),
                        Some(None) => {}
                        None => peer.feed(len, from)?,
                    }
                    continue;
                }
                () = &mut sleep => armed = None,
            }
        }
        let now = Instant::now();
        if pc_deadline.is_some_and(|at| at <= now) {
            peer.pc.handle_timeout(now)?;
        }
        if app_deadline.is_some_and(|at| at <= now) {
            app.on_deadline(&mut peer.pc, now)?;
        }
    }
}
