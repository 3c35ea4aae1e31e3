//! What comes in from peers: datagrams (UDP and ICE-TCP frames) routed to their peer
//! connection, and what a connection then reports — RTP and RTCP for the stream, chat, state
//! changes, opened tracks — up to a publisher going live and the viewers it renegotiates.

use directo_sfu::PublishedTrack;
use rtc::peer_connection::event::{RTCDataChannelEvent, RTCPeerConnectionEvent, RTCTrackEvent};
use rtc::peer_connection::message::{RTCMessage, TaggedRTCMessage};
use rtc::peer_connection::state::RTCPeerConnectionState;
use rtc::sansio::Protocol;
use rtc::shared::{TaggedBytesMut, TransportContext};
use std::time::{Duration, Instant};

use super::Engine;
use super::bridge::{self, TrackRefused};
use super::viewer_rtcp::{is_rtcp, read_rtcp};
use crate::chat_port::ChatIn;
use crate::handle::{EngineEvent, SessionEvent};
use crate::peer::PeerId;
use crate::setup::PeerRole;
use crate::socket::Datagram;
use crate::tcp::TcpEvent;

/// How long a publisher's first track waits for its other tracks before the stream goes live.
const TRACK_OPEN_GRACE: Duration = Duration::from_millis(500);

impl Engine {
    pub(super) fn on_datagram(&mut self, d: Datagram, now: Instant) {
        let Some(id) = self.peers.route(d.from, &d.data) else {
            return;
        };
        let transport = self.transport.udp_context(&d);
        self.deliver(id, transport, d.data, now);
    }

    pub(super) fn on_tcp(&mut self, event: TcpEvent, now: Instant) {
        let Some((transport, data)) = self.transport.on_tcp(event) else {
            return;
        };
        let Some(id) = self.peers.route(transport.peer_addr, &data) else {
            return;
        };
        self.deliver(id, transport, data, now);
    }

    /// Hand a datagram to its peer's connection (it decrypts once) and queue the peer.
    fn deliver(
        &mut self,
        id: PeerId,
        transport: TransportContext,
        message: bytes::BytesMut,
        now: Instant,
    ) {
        let Some(peer) = self.peers.get_mut(id) else {
            return;
        };
        peer.last_rx = now;
        if let Some(context) = peer.rtcp_in.as_mut()
            && is_rtcp(&message)
        {
            // A connected viewer's RTCP: read here, past its connection.
            let read = read_rtcp(context, &message);
            self.on_viewer_rtcp(id, read, now);
            return;
        }
        let Some(pc) = peer.pc.as_deref_mut() else {
            self.on_released_datagram(id, transport, &message, now);
            return;
        };
        let msg = TaggedBytesMut {
            now,
            transport,
            message,
        };
        if let Err(e) = pc.handle_read(msg) {
            tracing::debug!(session = %peer.session, error = %e, "peer rejected a datagram");
        }
        self.peers.mark_dirty(id);
    }

    /// Drain a peer's events and inbound messages into its stream.
    pub(super) fn process_peer(&mut self, id: PeerId, now: Instant) {
        let Some(pc) = self.peers.get_mut(id).and_then(|p| p.pc.as_deref_mut()) else {
            return;
        };
        let mut events = Vec::new();
        while let Some(ev) = pc.poll_event() {
            events.push(ev);
        }
        // Whether this pass gave the stream's forwarding core anything (which may have
        // produced outputs). Most passes of a viewer only flush what was written to it.
        let mut fed = !events.is_empty();
        for ev in events {
            self.on_peer_event(id, ev, now);
        }

        let Some(peer) = self.peers.get_mut(id) else {
            return;
        };
        let Some(entry) = self.streams.get_mut(&peer.stream) else {
            return;
        };
        let role = peer.role;
        let mut chat_in = Vec::new();
        let Some(pc) = peer.pc.as_deref_mut() else {
            return;
        };
        while let Some(TaggedRTCMessage { message, .. }) = pc.poll_read() {
            match message {
                RTCMessage::DataChannelMessage(channel, msg)
                    if peer.chat_channel == Some(channel) =>
                {
                    chat_in.push(ChatIn::Message {
                        session: peer.session.clone(),
                        text: String::from_utf8_lossy(&msg.data).into_owned(),
                    });
                }
                RTCMessage::RtpPacket(_, packet) if role == PeerRole::Publisher => {
                    fed = true;
                    entry.source_rtp(&self.metrics, id, packet, now);
                }
                RTCMessage::RtcpPacket(_, packets) => {
                    fed = true;
                    bridge::on_rtcp(entry, &self.metrics, id, role, &packets, now);
                }
                _ => {}
            }
        }
        let stream = fed.then(|| peer.stream.clone());
        for msg in chat_in {
            self.offer_to_chat(msg);
        }
        if let Some(stream) = stream {
            self.drain_stream(&stream, now);
        }
    }

    fn on_peer_event(&mut self, id: PeerId, ev: RTCPeerConnectionEvent, now: Instant) {
        match ev {
            RTCPeerConnectionEvent::OnConnectionStateChangeEvent(state) => {
                if let Some(peer) = self.peers.get(id) {
                    tracing::debug!(session = %peer.session, %state, "peer connection state");
                }
                match state {
                    RTCPeerConnectionState::Connected => self.on_connected(id, now),
                    RTCPeerConnectionState::Failed | RTCPeerConnectionState::Closed => {
                        self.remove_peer(id, now);
                    }
                    _ => {}
                }
            }
            RTCPeerConnectionEvent::OnTrack(RTCTrackEvent::OnOpen(init)) => {
                self.on_track_open(id, init.receiver_id, init.ssrc, init.rid, now);
            }
            RTCPeerConnectionEvent::OnDataChannel(RTCDataChannelEvent::OnOpen(channel)) => {
                self.on_chat_open(id, channel);
            }
            RTCPeerConnectionEvent::OnDataChannel(RTCDataChannelEvent::OnClose(channel)) => {
                self.on_chat_close(id, channel);
            }
            _ => {}
        }
    }

    /// ICE and DTLS are up: a viewer gets its send leg and joins its stream's fan-out.
    fn on_connected(&mut self, id: PeerId, now: Instant) {
        let Some(peer) = self.peers.get_mut(id) else {
            return;
        };
        if peer.connected {
            return;
        }
        let Some(pc) = peer.pc.as_deref_mut() else {
            return;
        };
        peer.connected = true;
        // A viewer's send context goes to its leg and its receive context reads its RTCP
        // here (`viewer_rtcp.rs`); a publisher's media goes through its connection: free the
        // key schedules it does not use.
        let recv = pc.take_recv_srtp_context();
        if peer.role == PeerRole::Publisher {
            let _ = pc.take_send_srtp_context();
        } else {
            peer.rtcp_in = recv;
        }
        self.metrics
            .connect_seconds
            .record(now.duration_since(peer.created).as_secs_f64());
        tracing::info!(session = %peer.session, stream = %peer.stream, role = ?peer.role, "peer connected");
        if peer.role != PeerRole::Viewer {
            return;
        }
        let tracks = peer.down_tracks();
        let stream = peer.stream.clone();
        let who = match (&peer.identity.name, &peer.identity.origin) {
            (None, None) => peer.session.clone(),
            (name, origin) => format!(
                "{}@{}",
                name.as_deref().unwrap_or(""),
                origin.as_deref().unwrap_or("")
            ),
        };
        if !self.open_leg(id) {
            // Its forwarded SSRCs may only ever be protected by a leg: without one it cannot
            // watch, so it is told so rather than served through another context.
            tracing::warn!(session = %self.peers.get(id).map_or("", |p| &p.session), "connected viewer has no send context; closing it");
            self.remove_peer(id, now);
            return;
        }
        let relay = self.peers.get(id).is_some_and(|p| p.identity.relay);
        if !relay {
            self.analytics.viewer_connected(&stream, id, who, now);
        }
        if let Some(entry) = self.streams.get_mut(&stream) {
            entry.sfu.add_subscriber(id, tracks, now);
        }
    }

    fn on_track_open(
        &mut self,
        id: PeerId,
        receiver_id: rtc::rtp_transceiver::RTCRtpReceiverId,
        ssrc: u32,
        rid: Option<String>,
        now: Instant,
    ) {
        let Some(peer) = self.peers.get_mut(id) else {
            return;
        };
        if peer.role != PeerRole::Publisher {
            return;
        }
        let Some(pc) = peer.pc.as_deref_mut() else {
            return;
        };
        let track = match bridge::published_track(pc, receiver_id, ssrc, rid) {
            Ok(track) => track,
            Err(TrackRefused::Codec(mime)) => {
                tracing::warn!(session = %peer.session, %mime, "publisher track with a codec we do not forward");
                return;
            }
            Err(TrackRefused::NotMedia) => return,
        };
        let kind = track.kind;
        // A simulcast layer replaces only the layer of the same RID.
        peer.published.retain(|t| {
            t.kind != kind || (track.rid.is_some() && t.rid.is_some() && t.rid != track.rid)
        });
        peer.published.push(track.clone());
        tracing::info!(session = %peer.session, stream = %peer.stream, ?kind, codec = track.codec.mime_type(), ssrc, rid = ?track.rid, "publisher track open");
        let stream = peer.stream.clone();
        let all_open = peer.published.len() >= peer.expected_tracks;
        if let Some(entry) = self.streams.get_mut(&stream)
            && entry.publisher == Some(id)
            && entry.live_announced
            && track.rid.is_some()
        {
            // A layer that started after the stream went live joins without disturbing anyone.
            entry.sfu.add_track(id, track, now);
            self.board.changed();
            self.drain_stream(&stream, now);
            return;
        }
        if all_open {
            self.go_live(id, now);
        } else if let Some(peer) = self.peers.get_mut(id) {
            // Tracks open on their first packet; give the others a moment so the stream starts
            // once with all of them rather than once per track.
            peer.live_deadline.get_or_insert(now + TRACK_OPEN_GRACE);
        }
    }

    /// Hand the publisher's tracks to the stream's forwarding core and announce it live.
    pub(super) fn go_live(&mut self, id: PeerId, now: Instant) {
        let Some(peer) = self.peers.get_mut(id) else {
            return;
        };
        peer.live_deadline = None;
        let tracks = peer.published.clone();
        let stream = peer.stream.clone();
        self.start_stream(&stream, id, tracks, now);
    }

    /// The stream's source `id` (a local publisher or a relay) goes live with `tracks`:
    /// the forwarding core gets them, recording starts if the policy says so, and waiting
    /// viewers are offered what they lack.
    pub(super) fn start_stream(
        &mut self,
        stream: &str,
        id: PeerId,
        tracks: Vec<PublishedTrack>,
        now: Instant,
    ) {
        let Some(entry) = self.streams.get_mut(stream) else {
            return;
        };
        if entry.publisher != Some(id) {
            return;
        }
        entry.sfu.set_publisher(id, tracks.clone(), now);
        entry.live_announced = true;
        let info = entry.info(stream, now);
        let viewers = entry.viewers.clone();
        self.streams.record_live(stream, &tracks, now);
        self.board.changed();
        let _ = self.events.send(EngineEvent::Live(info));
        for viewer in viewers {
            self.renegotiate(viewer, &tracks, now);
        }
    }

    /// Offer a viewer the published kinds its session lacks (server-initiated renegotiation).
    fn renegotiate(&mut self, id: PeerId, tracks: &[PublishedTrack], now: Instant) {
        let Some(peer) = self.peers.get_mut(id) else {
            return;
        };
        let mut missing: Vec<&PublishedTrack> = tracks
            .iter()
            .filter(|t| !peer.senders.iter().any(|s| s.kind == t.kind))
            .collect();
        // One sender per kind, whatever the number of simulcast layers.
        missing.dedup_by_key(|t| t.kind);
        // A released viewer has nobody to offer to (only sessions without signaling are).
        if missing.is_empty() || peer.closing || peer.pc.is_none() {
            return;
        }
        for track in missing {
            if let Err(e) = bridge::add_sender(peer, track.kind, track.codec) {
                tracing::warn!(session = %peer.session, error = %e, "cannot add a track for renegotiation");
                return;
            }
        }
        let Some(pc) = peer.pc.as_deref_mut() else {
            return;
        };
        let offer = match pc.create_offer(None) {
            Ok(offer) => offer,
            Err(e) => {
                tracing::warn!(session = %peer.session, error = %e, "cannot create a renegotiation offer");
                return;
            }
        };
        if let Err(e) = pc.set_local_description(now, offer) {
            tracing::warn!(session = %peer.session, error = %e, "cannot apply a renegotiation offer");
            return;
        }
        let Some(sdp) = pc.local_description().map(|d| d.sdp) else {
            return;
        };
        tracing::info!(session = %peer.session, "renegotiating: offering the new tracks");
        if !peer.notify(SessionEvent::Offer { sdp }) {
            self.remove_peer(id, now);
        }
    }
}
