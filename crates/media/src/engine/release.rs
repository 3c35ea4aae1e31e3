//! A viewer's `rtc` connection released once it is set up.
//!
//! After ICE, DTLS and its first RTCP, a viewer that nobody signals to any more (WHEP: the
//! answer was its last word) and that has no data channel needs from its connection only what
//! the engine already holds elsewhere: its send SRTP context (its leg, `fanout.rs`), its
//! receive context (`viewer_rtcp.rs`) and its address. The connection itself — SDP kept
//! parsed, transceivers, the media engine's tables, statistics, the ICE agent, DTLS state and
//! buffers, the interceptor chain and its timers — is most of what a viewer costs, and is
//! dropped. What it still did is done here or by the leg:
//!
//! - **ICE consent**: the viewer's binding requests are answered with our ICE password
//!   (`consent.rs`), over UDP or the ICE-TCP connection they came on; one that nominates a new
//!   address (or moves to ICE-TCP) moves the leg there.
//! - **RTCP to the viewer** (sender reports): protected by the leg with the connection's own
//!   SRTCP context, taken before the connection is dropped, so its SRTCP indices carry on.
//! - **Goodbye**: the DTLS close_notify is made when the connection is dropped and kept; it is
//!   sent if the server ends the session. A DTLS alert from the viewer ends it.
//!
//! A viewer is released only after the engine authenticated an SRTCP packet from it: it has
//! its keys, so its DTLS handshake is over and it will not retransmit a flight we would have
//! to answer. Sessions that may still renegotiate or chat keep their connection, as does a
//! viewer that set up on ICE-TCP.

use bytes::BytesMut;
use rtc::sansio::Protocol;
use rtc::shared::{TransportContext, TransportProtocol};
use std::time::Instant;

use super::Engine;
use crate::consent::{self, Refused};
use crate::fanout::Destination;
use crate::peer::PeerId;
use crate::socket::Outgoing;

/// The DTLS record content type of an alert (RFC 6347): a close_notify or a fatal error.
const DTLS_ALERT: u8 = 21;

impl Engine {
    /// Whether viewer `id` is set up and may lose its connection now: its RTCP was read (only
    /// a connected viewer's is), it offered no data channel (so it can open no chat), nobody
    /// signals to it, and it sends over UDP.
    pub(super) fn release_due(&self, id: PeerId) -> bool {
        self.config.release_viewer_connections
            && self.peers.get(id).is_some_and(|p| {
                p.rtcp_read
                    && p.pc.is_some()
                    && !p.closing
                    && !p.data_offered
                    && p.events.is_closed()
                    && p.sending_to
                        .is_some_and(|t| t.transport_protocol == TransportProtocol::UDP)
            })
    }

    /// Drop viewer `id`'s connection, keeping its RTCP context (to its leg) and its goodbye.
    /// Its pending writes were sent just before.
    pub(super) fn release(&mut self, id: PeerId) {
        let Some(peer) = self.peers.get_mut(id) else {
            return;
        };
        let Some(mut pc) = peer.pc.take() else {
            return;
        };
        let rtcp = pc.take_rtcp_send_context();
        let _ = pc.close();
        // Only the DTLS close_notify is kept (first byte 20–63, RFC 7983).
        while let Some(out) = pc.poll_write() {
            if out.message.first().is_some_and(|b| (20..=63).contains(b)) {
                peer.farewell.push(out);
            }
        }
        drop(pc);
        tracing::debug!(session = %peer.session, "viewer connection released");
        if let Some(context) = rtcp {
            self.fanout.set_rtcp_context(id, context);
        }
        self.metrics.viewers_released.increment(1);
    }

    /// A datagram for released viewer `id`: a consent check is answered, a DTLS alert ends
    /// the session; anything else (a late retransmission, stray RTP) is dropped.
    pub(super) fn on_released_datagram(
        &mut self,
        id: PeerId,
        transport: TransportContext,
        message: &[u8],
        now: Instant,
    ) {
        match message.first() {
            Some(0..=3) => self.answer_consent(id, transport, message),
            Some(&DTLS_ALERT) => {
                if let Some(peer) = self.peers.get(id) {
                    tracing::info!(session = %peer.session, "released viewer said goodbye");
                }
                self.remove_peer(id, now);
            }
            _ => {}
        }
    }

    fn answer_consent(&mut self, id: PeerId, transport: TransportContext, message: &[u8]) {
        let Some(peer) = self.peers.get_mut(id) else {
            return;
        };
        let crypto = self.crypto.crypto();
        let answered = match consent::answer(
            message,
            transport.peer_addr,
            &peer.ufrag,
            &peer.ice_pwd,
            crypto,
        ) {
            Ok(answered) => answered,
            Err(Refused::NotARequest) => return,
            Err(Refused::Unauthenticated) => {
                tracing::debug!(session = %peer.session, from = %transport.peer_addr, "unauthenticated consent check");
                return;
            }
        };
        self.metrics.released_consent.increment(1);
        // Back the way it came: UDP, or the ICE-TCP connection it arrived on (a browser whose
        // UDP is cut checks and nominates its TCP pair this way).
        match self.transport.destination(&transport) {
            Destination::Udp { to, from } => self.fanout.outgoing.push(Outgoing {
                to,
                from,
                data: BytesMut::from(&answered.response[..]),
            }),
            // A full queue means a slow TCP path: dropped, as UDP would be.
            Destination::Tcp(writer) => {
                let _ = writer.try_send(answered.response);
            }
            Destination::Unreachable => return,
        }
        if answered.nominated && peer.sending_to != Some(transport) {
            tracing::debug!(session = %peer.session, to = %transport.peer_addr, "released viewer nominated a new address");
            peer.sending_to = Some(transport);
            self.fanout
                .retarget(id, self.transport.destination(&transport));
        }
    }
}
