//! A churn viewer: joins a stream over WHEP with a `chat` data channel, as the browser SDK
//! does, says one thing when the channel opens, counts what the chat brings (messages, and
//! the stream status the server pushes), watches for a while and leaves with a WHEP
//! `DELETE`. Its media is received and dropped: the soak measures the server, not delivery.

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use reqwest::{Client, Url};
use rtc::data_channel::RTCDataChannelId;
use rtc::peer_connection::RTCPeerConnection;
use rtc::peer_connection::event::{RTCDataChannelEvent, RTCPeerConnectionEvent};
use rtc::peer_connection::message::{RTCMessage, TaggedRTCMessage};
use rtc::peer_connection::sdp::RTCSessionDescription;
use rtc::peer_connection::state::RTCPeerConnectionState;
use rtc::rtp_transceiver::rtp_sender::RtpCodecKind;
use rtc::rtp_transceiver::{RTCRtpTransceiverDirection, RTCRtpTransceiverInit};

use crate::error::Result;
use crate::peer::{Peer, PeerApp, Role, drive};
use crate::whip::{delete_session, post_offer};

/// What every churn viewer of a run did, together.
#[derive(Debug, Default)]
pub struct ChurnViewerCounters {
    /// Viewers whose connection came up.
    pub connected: AtomicU64,
    /// Viewers that could not join or whose connection failed.
    pub failed: AtomicU64,
    /// Chat messages sent (one per viewer whose chat opened).
    pub chat_sent: AtomicU64,
    /// `chat.message`s received.
    pub chat_received: AtomicU64,
    /// `stream.status` messages received.
    pub statuses_received: AtomicU64,
}

struct ChurnViewerApp {
    counters: Arc<ChurnViewerCounters>,
    text: String,
    chat: Option<RTCDataChannelId>,
    connected: bool,
    failed: bool,
}

impl PeerApp for ChurnViewerApp {
    fn on_event(&mut self, pc: &mut RTCPeerConnection, event: RTCPeerConnectionEvent) {
        match event {
            RTCPeerConnectionEvent::OnConnectionStateChangeEvent(state) => match state {
                RTCPeerConnectionState::Connected if !self.connected => {
                    self.connected = true;
                    self.counters.connected.fetch_add(1, Ordering::Relaxed);
                }
                RTCPeerConnectionState::Failed | RTCPeerConnectionState::Closed => {
                    self.failed = true;
                }
                _ => {}
            },
            RTCPeerConnectionEvent::OnDataChannel(RTCDataChannelEvent::OnOpen(id))
                if Some(id) == self.chat =>
            {
                let message = serde_json::json!({"type": "chat.send", "text": self.text});
                if let Some(mut channel) = pc.data_channel(id)
                    && channel
                        .send_text(Instant::now(), message.to_string())
                        .is_ok()
                {
                    self.counters.chat_sent.fetch_add(1, Ordering::Relaxed);
                }
            }
            _ => {}
        }
    }

    fn on_message(&mut self, _pc: &mut RTCPeerConnection, message: TaggedRTCMessage) {
        let RTCMessage::DataChannelMessage(_, message) = message.message else {
            return;
        };
        // Only the type matters here; the shapes are checked by the tests.
        let kind = serde_json::from_slice::<serde_json::Value>(&message.data)
            .ok()
            .and_then(|v| v.get("type")?.as_str().map(str::to_owned));
        match kind.as_deref() {
            Some("chat.message") => {
                self.counters.chat_received.fetch_add(1, Ordering::Relaxed);
            }
            Some("stream.status") => {
                self.counters
                    .statuses_received
                    .fetch_add(1, Ordering::Relaxed);
            }
            _ => {}
        }
    }

    fn deadline(&self) -> Option<Instant> {
        None
    }

    fn on_deadline(&mut self, _pc: &mut RTCPeerConnection, _now: Instant) -> Result<()> {
        Ok(())
    }

    fn finished(&self) -> bool {
        self.failed
    }
}

/// Watches `endpoint` (a WHEP URL) until `until` with a chat channel, saying `text` once.
pub async fn run_churn_viewer(
    http: Client,
    endpoint: Url,
    bind_ip: IpAddr,
    text: String,
    until: Instant,
    counters: Arc<ChurnViewerCounters>,
) {
    if watch(&http, &endpoint, bind_ip, text, until, &counters)
        .await
        .is_err()
    {
        counters.failed.fetch_add(1, Ordering::Relaxed);
    }
}

async fn watch(
    http: &Client,
    endpoint: &Url,
    bind_ip: IpAddr,
    text: String,
    until: Instant,
    counters: &Arc<ChurnViewerCounters>,
) -> Result<()> {
    let mut peer = Peer::bind(
        Role::Viewer {
            transport_cc: false,
        },
        bind_ip,
    )
    .await?;
    for kind in [RtpCodecKind::Audio, RtpCodecKind::Video] {
        peer.pc.add_transceiver_from_kind(
            kind,
            Some(RTCRtpTransceiverInit {
                direction: RTCRtpTransceiverDirection::Recvonly,
                streams: vec![],
                send_encodings: vec![],
            }),
        )?;
    }
    let chat = peer.pc.create_data_channel("chat", None)?.id();
    let offer = peer.pc.create_offer(None)?;
    peer.pc.set_local_description(Instant::now(), offer)?;
    peer.add_local_candidate()?;
    let session = post_offer(http, endpoint, peer.local_sdp()?, None).await?;
    peer.pc.set_remote_description(
        Instant::now(),
        RTCSessionDescription::answer(session.answer.clone())?,
    )?;
    let mut app = ChurnViewerApp {
        counters: Arc::clone(counters),
        text,
        chat: Some(chat),
        connected: false,
        failed: false,
    };
    let result = drive(&mut peer, &mut app, until).await;
    peer.close().await;
    delete_session(http, &session).await;
    result?;
    if app.connected && !app.failed {
        Ok(())
    } else {
        Err(crate::error::LoadError::Protocol(
            "the viewer's connection did not come up, or failed".into(),
        ))
    }
}
