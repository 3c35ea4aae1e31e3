//! Chat as the engine carries it: each peer's `chat` data channel opened and closed, its
//! messages offered to the chat service (never waited on), and the service's messages sent
//! on the members' channels — a bounded number per wake-up, so chat never starves media.

use rtc::data_channel::RTCDataChannelId;
use std::time::Instant;
use tokio::sync::mpsc;

use super::Engine;
use crate::chat_port::{CHAT_LABEL, ChatIn, ChatOut, ChatRole, MAX_CHAT_BUFFERED};
use crate::peer::PeerId;
use crate::setup::PeerRole;

/// Chat messages delivered per wake-up before the loop goes back to media.
const MAX_CHAT_PER_WAKE: usize = 1024;

impl Engine {
    /// Apply `first` and what else the chat service queued, up to [`MAX_CHAT_PER_WAKE`].
    pub(super) fn on_chat_out(
        &mut self,
        first: ChatOut,
        rx: &mut mpsc::Receiver<ChatOut>,
        now: Instant,
    ) {
        self.apply_chat_out(first, now);
        for _ in 0..MAX_CHAT_PER_WAKE {
            match rx.try_recv() {
                Ok(out) => self.apply_chat_out(out, now),
                Err(_) => break,
            }
        }
    }

    fn apply_chat_out(&mut self, out: ChatOut, now: Instant) {
        match out {
            ChatOut::Send { session, text } => {
                let Some(id) = self.peers.id_of(&session) else {
                    return;
                };
                let Some(peer) = self.peers.get_mut(id) else {
                    return;
                };
                let Some(mut dc) = peer
                    .chat_channel
                    .zip(peer.pc.as_deref_mut())
                    .and_then(|(c, pc)| pc.data_channel(c))
                else {
                    return;
                };
                // One slow member never holds up the others: over its buffer, it loses chat.
                if dc.outstanding_bytes() > MAX_CHAT_BUFFERED {
                    self.metrics.chat_dropped.increment(1);
                    return;
                }
                if dc.send_text(now, text.as_ref()).is_ok() {
                    self.peers.mark_dirty(id);
                }
            }
            ChatOut::Disconnect { session } => {
                if let Some(id) = self.peers.id_of(&session) {
                    tracing::info!(%session, "ending a session on the chat service's request");
                    self.remove_peer(id, now);
                }
            }
        }
    }

    /// Offer a message to the chat service without ever waiting for it.
    pub(super) fn offer_to_chat(&mut self, msg: ChatIn) {
        if let Some(tx) = &self.chat_tx
            && tx.try_send(msg).is_err()
        {
            self.metrics.chat_dropped.increment(1);
        }
    }

    /// A data channel opened: if it is the peer's first `chat` channel, it joins the chat.
    pub(super) fn on_chat_open(&mut self, id: PeerId, channel: RTCDataChannelId) {
        let Some(peer) = self.peers.get_mut(id) else {
            return;
        };
        let is_chat = peer
            .pc
            .as_deref_mut()
            .and_then(|pc| pc.data_channel(channel))
            .is_some_and(|dc| dc.label() == CHAT_LABEL);
        if !is_chat || peer.chat_channel.is_some() {
            return;
        }
        peer.chat_channel = Some(channel);
        let role = match (peer.role, peer.identity.moderator) {
            (PeerRole::Publisher, _) => ChatRole::Presenter,
            (PeerRole::Viewer, true) => ChatRole::Moderator,
            (PeerRole::Viewer, false) => ChatRole::Viewer,
        };
        let msg = ChatIn::Open {
            session: peer.session.clone(),
            stream: peer.stream.clone(),
            name: peer.identity.name.clone().unwrap_or_else(|| match role {
                ChatRole::Presenter => "Presenter".to_owned(),
                _ => format!("Viewer {}", &peer.session[..6]),
            }),
            role,
            origin: peer.identity.origin.clone(),
        };
        self.offer_to_chat(msg);
    }

    /// A data channel closed: if it was the peer's chat channel, it leaves the chat.
    pub(super) fn on_chat_close(&mut self, id: PeerId, channel: RTCDataChannelId) {
        let Some(peer) = self.peers.get_mut(id) else {
            return;
        };
        if peer.chat_channel == Some(channel) {
            peer.chat_channel = None;
            let session = peer.session.clone();
            self.offer_to_chat(ChatIn::Closed { session });
        }
    }
}
