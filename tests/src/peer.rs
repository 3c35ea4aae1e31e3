//! Builds a `webrtc` peer connection the way every test client needs one, and waits on it.
//!
//! Clients bind UDP on 127.0.0.1 only, register just the codecs they mean to offer (Opus and
//! VP8, with the feedback a browser offers; viewers also VP8's RTX format, as browsers offer
//! it), and do non-trickle ICE: an offer or answer is handed over only once gathering is
//! complete, as WHIP/WHEP without trickle expect.

use crate::chat::{CHAT_LABEL, ChatMember};
use crate::error::{ClientError, Result};
use crate::lossy_link::{LOSSY_LINK_SLOT, LossyLink};
use crate::settling_runtime::SettlingRuntime;
use crate::skewed_reports::{SKEWED_REPORTS_SLOT, SenderReportSkew, SkewedReports};
use directo_sfu::{RTCP_TAP_SLOT, RtcpTap, is_keyframe_request};
use rtc::peer_connection::configuration::media_engine::{
    MIME_TYPE_OPUS, MIME_TYPE_RTX, MIME_TYPE_VP8,
};
use rtc::rtp_transceiver::PayloadType;
use rtc::rtp_transceiver::rtp_sender::{
    RTCPFeedback, RTCRtpCodec, RTCRtpCodecParameters, RtpCodecKind,
};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;
use webrtc::media_stream::track_remote::TrackRemote;
use webrtc::peer_connection::{
    MediaEngine, PeerConnection, PeerConnectionBuilder, PeerConnectionEventHandler,
    RTCIceGatheringState, RTCPeerConnectionState, RTCSessionDescription, Registry,
    register_default_interceptors,
};

/// The payload type clients offer VP8 with (Chrome's choice too).
pub(crate) const VP8_PAYLOAD_TYPE: PayloadType = 96;
/// The payload type clients offer Opus with (Chrome's choice too).
pub(crate) const OPUS_PAYLOAD_TYPE: PayloadType = 111;
/// The payload type viewers offer VP8's RTX format with (Chrome's choice too).
pub(crate) const RTX_PAYLOAD_TYPE: PayloadType = 97;

/// The feedback a browser offers on video: NACK, PLI, FIR, transport-wide CC.
fn video_feedback() -> Vec<RTCPFeedback> {
    [
        ("nack", ""),
        ("nack", "pli"),
        ("ccm", "fir"),
        ("transport-cc", ""),
    ]
    .into_iter()
    .map(|(typ, parameter)| RTCPFeedback {
        typ: typ.to_owned(),
        parameter: parameter.to_owned(),
    })
    .collect()
}

/// VP8 at 90 kHz.
pub(crate) fn vp8_codec() -> RTCRtpCodec {
    RTCRtpCodec {
        mime_type: MIME_TYPE_VP8.to_owned(),
        clock_rate: 90_000,
        channels: 0,
        sdp_fmtp_line: String::new(),
        rtcp_feedback: video_feedback(),
    }
}

/// Opus, stereo at 48 kHz, as browsers offer it.
pub(crate) fn opus_codec() -> RTCRtpCodec {
    RTCRtpCodec {
        mime_type: MIME_TYPE_OPUS.to_owned(),
        clock_rate: 48_000,
        channels: 2,
        sdp_fmtp_line: "minptime=10;useinbandfec=1".to_owned(),
        rtcp_feedback: Vec::new(),
    }
}

/// One codec a peer registers.
pub(crate) struct CodecSpec {
    pub codec: RTCRtpCodec,
    pub payload_type: PayloadType,
    pub kind: RtpCodecKind,
}

/// Opus and VP8: what every Directo client offers.
pub(crate) fn default_codecs() -> Vec<CodecSpec> {
    vec![
        CodecSpec {
            codec: opus_codec(),
            payload_type: OPUS_PAYLOAD_TYPE,
            kind: RtpCodecKind::Audio,
        },
        CodecSpec {
            codec: vp8_codec(),
            payload_type: VP8_PAYLOAD_TYPE,
            kind: RtpCodecKind::Video,
        },
    ]
}

/// VP8's RTX format (RFC 4588): retransmissions on a stream of their own.
pub(crate) fn rtx_codec() -> CodecSpec {
    CodecSpec {
        codec: RTCRtpCodec {
            mime_type: MIME_TYPE_RTX.to_owned(),
            clock_rate: 90_000,
            channels: 0,
            sdp_fmtp_line: format!("apt={VP8_PAYLOAD_TYPE}"),
            rtcp_feedback: Vec::new(),
        },
        payload_type: RTX_PAYLOAD_TYPE,
        kind: RtpCodecKind::Video,
    }
}

/// Called, from the peer's driver task, with every remote track as it opens. Must not block.
pub(crate) type TrackSink = Box<dyn Fn(Arc<dyn TrackRemote>) + Send + Sync>;

/// How to build a peer.
pub(crate) struct PeerSetup {
    pub codecs: Vec<CodecSpec>,
    /// Surface inbound PLI/FIR on `TrackLocal::poll` (publishers).
    pub keyframe_requests: bool,
    pub on_track: Option<TrackSink>,
    /// The link into the peer (see [`LossyLink`]): drop every n-th inbound VP8 packet before
    /// the chain sees it (none if 0), counting the drops in the first counter and the inbound
    /// sender reports in the second.
    pub lossy_link: Option<(u64, Arc<AtomicU64>, Arc<AtomicU64>)>,
    /// Make the sender reports a little off (publishers imitating aiortc).
    pub skewed_reports: Option<SkewedReports>,
}

/// The states a peer went through, as the event handler saw them.
#[derive(Clone)]
pub(crate) struct PeerEvents {
    state: watch::Receiver<RTCPeerConnectionState>,
    gathering: watch::Receiver<RTCIceGatheringState>,
    history: Arc<Mutex<Vec<RTCPeerConnectionState>>>,
}

struct Handler {
    state: watch::Sender<RTCPeerConnectionState>,
    /// Tells the runtime's sockets that SRTP keys are in place (see `settling_runtime`).
    connected: Arc<AtomicBool>,
    gathering: watch::Sender<RTCIceGatheringState>,
    history: Arc<Mutex<Vec<RTCPeerConnectionState>>>,
    on_track: Option<TrackSink>,
}

#[async_trait::async_trait]
impl PeerConnectionEventHandler for Handler {
    async fn on_ice_gathering_state_change(&self, state: RTCIceGatheringState) {
        self.gathering.send_replace(state);
    }

    async fn on_connection_state_change(&self, state: RTCPeerConnectionState) {
        if state == RTCPeerConnectionState::Connected {
            self.connected.store(true, Ordering::Release);
        }
        if let Ok(mut history) = self.history.lock() {
            history.push(state);
        }
        self.state.send_replace(state);
    }

    async fn on_track(&self, track: Arc<dyn TrackRemote>) {
        if let Some(sink) = &self.on_track {
            sink(track);
        }
    }
}

/// Builds a peer connection bound to 127.0.0.1 with the given codecs.
pub(crate) async fn build_peer(setup: PeerSetup) -> Result<(Arc<dyn PeerConnection>, PeerEvents)> {
    let mut media_engine = MediaEngine::default();
    for spec in setup.codecs {
        media_engine.register_codec(
            RTCRtpCodecParameters {
                rtp_codec: spec.codec,
                payload_type: spec.payload_type,
            },
            spec.kind,
        )?;
    }
    let mut registry = register_default_interceptors(Registry::new(), &mut media_engine)?;
    if setup.keyframe_requests {
        registry = registry.with(
            rtc::interceptor::Slot::from(RTCP_TAP_SLOT),
            RtcpTap::delivering(is_keyframe_request),
        );
    }
    if let Some((every, dropped, sender_reports)) = setup.lossy_link {
        registry = registry.with(
            rtc::interceptor::Slot::from(LOSSY_LINK_SLOT),
            LossyLink::new(every, dropped, sender_reports),
        );
    }
    if let Some(skew) = setup.skewed_reports {
        registry = registry.with(
            rtc::interceptor::Slot::from(SKEWED_REPORTS_SLOT),
            SenderReportSkew::new(skew),
        );
    }

    let (state_tx, state_rx) = watch::channel(RTCPeerConnectionState::New);
    let (gathering_tx, gathering_rx) = watch::channel(RTCIceGatheringState::New);
    let history = Arc::new(Mutex::new(Vec::new()));
    let connected = Arc::new(AtomicBool::new(false));
    let runtime = webrtc::runtime::default_runtime()
        .ok_or_else(|| ClientError::Protocol("webrtc has no async runtime".into()))?;
    let handler = Handler {
        state: state_tx,
        connected: Arc::clone(&connected),
        gathering: gathering_tx,
        history: Arc::clone(&history),
        on_track: setup.on_track,
    };
    let pc = PeerConnectionBuilder::new()
        .with_media_engine(media_engine)
        .with_interceptor_registry(registry)
        .with_handler(Arc::new(handler))
        .with_runtime(Arc::new(SettlingRuntime::new(runtime, connected)))
        .with_udp_addrs(vec!["127.0.0.1:0".to_owned()])
        .build()
        .await?;
    let events = PeerEvents {
        state: state_rx,
        gathering: gathering_rx,
        history,
    };
    Ok((Arc::new(pc), events))
}

impl PeerEvents {
    /// The connection state now.
    pub(crate) fn state(&self) -> RTCPeerConnectionState {
        *self.state.borrow()
    }

    /// Every connection state the peer went through, in order.
    pub(crate) fn history(&self) -> Vec<RTCPeerConnectionState> {
        self.history.lock().map(|h| h.clone()).unwrap_or_default()
    }

    /// Waits until the connection is `Connected`; fails early if it fails or closes.
    pub(crate) async fn connected(&self, timeout: Duration) -> Result<()> {
        let mut state = self.state.clone();
        let wait = state.wait_for(|s| {
            matches!(
                s,
                RTCPeerConnectionState::Connected
                    | RTCPeerConnectionState::Failed
                    | RTCPeerConnectionState::Closed
            )
        });
        match tokio::time::timeout(timeout, wait)
            .await
            .map(|r| r.map(|s| *s))
        {
            Ok(Ok(RTCPeerConnectionState::Connected)) => Ok(()),
            Ok(Ok(s)) => Err(ClientError::Protocol(format!(
                "peer connection ended as {s} instead of connecting"
            ))),
            Ok(Err(_)) => Err(ClientError::Protocol("peer connection dropped".into())),
            Err(_) => Err(ClientError::timeout(
                format!("the peer connection to connect (state {})", self.state()),
                timeout,
            )),
        }
    }

    /// Waits until ICE gathering is complete.
    async fn gathered(&self, timeout: Duration) -> Result<()> {
        let mut gathering = self.gathering.clone();
        let wait = gathering.wait_for(|s| *s == RTCIceGatheringState::Complete);
        match tokio::time::timeout(timeout, wait).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(_)) => Err(ClientError::Protocol("peer connection dropped".into())),
            Err(_) => Err(ClientError::timeout("ICE gathering", timeout)),
        }
    }
}

/// Creates the `chat` data channel (ordered, reliable, as browsers create it) and starts
/// reading it. Call before the offer: the channel is what puts `m=application` in it.
pub(crate) async fn open_chat_channel(pc: &Arc<dyn PeerConnection>) -> Result<ChatMember> {
    let channel = pc.create_data_channel(CHAT_LABEL, None).await?;
    Ok(ChatMember::from_data_channel(channel))
}

/// How long ICE gathering on 127.0.0.1 may take (it is near instant; this is for a loaded box).
const GATHER_TIMEOUT: Duration = Duration::from_secs(20);

/// Creates an offer, applies it, and returns it with every candidate in it.
pub(crate) async fn local_offer(
    pc: &Arc<dyn PeerConnection>,
    events: &PeerEvents,
) -> Result<String> {
    let offer = pc.create_offer(None).await?;
    pc.set_local_description(offer).await?;
    complete_local_description(pc, events).await
}

/// Applies a remote offer, answers it, and returns the answer with every candidate in it.
pub(crate) async fn local_answer(
    pc: &Arc<dyn PeerConnection>,
    events: &PeerEvents,
    offer: String,
) -> Result<String> {
    pc.set_remote_description(RTCSessionDescription::offer(offer)?)
        .await?;
    let answer = pc.create_answer(None).await?;
    pc.set_local_description(answer).await?;
    complete_local_description(pc, events).await
}

/// Applies the remote answer to our offer.
pub(crate) async fn remote_answer(pc: &Arc<dyn PeerConnection>, answer: String) -> Result<()> {
    pc.set_remote_description(RTCSessionDescription::answer(answer)?)
        .await?;
    Ok(())
}

async fn complete_local_description(
    pc: &Arc<dyn PeerConnection>,
    events: &PeerEvents,
) -> Result<String> {
    events.gathered(GATHER_TIMEOUT).await?;
    pc.local_description()
        .await
        .map(|d| d.sdp)
        .ok_or_else(|| ClientError::Protocol("no local description after gathering".into()))
}
