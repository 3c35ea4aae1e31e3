//! Sessions come and go: a publisher or viewer created from an SDP offer (limits checked, the
//! offer applied, our candidates added, the answer made), a client's answer to a server offer,
//! and a session closed — taken out of its stream, its DTLS close sent, then forgotten.

use directo_sfu::{MediaKind, PublishedTrack, Quality};
use rand::Rng;
use rand::distr::Alphanumeric;
use rtc::peer_connection::sdp::RTCSessionDescription;
use rtc::sansio::Protocol;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

use super::Engine;
use super::bridge;
use super::streams::kind_name;
use crate::chat_port::{ChatIn, Identity};
use crate::error::MediaError;
use crate::handle::{EngineEvent, SESSION_EVENT_QUEUE, SessionAnswer};
use crate::offer::{OfferSummary, check_offer};
use crate::peer::{Peer, PeerId};
use crate::setup::{PeerRole, PeerSetup, build_peer_connection};

/// A publisher from which nothing arrived for this long may be replaced by a new one.
const PUBLISHER_DEAD_AFTER: Duration = Duration::from_secs(3);

fn random_string(len: usize) -> String {
    rand::rng()
        .sample_iter(&Alphanumeric)
        .take(len)
        .map(char::from)
        .collect()
}

impl Engine {
    pub(super) fn publish(
        &mut self,
        stream: String,
        offer: &str,
        identity: Identity,
        now: Instant,
    ) -> Result<SessionAnswer, MediaError> {
        if self.shutting_down {
            return Err(MediaError::Unavailable);
        }
        let summary = check_offer(offer)?;
        self.check_limits(PeerRole::Publisher, &stream, &identity)?;
        if let Some(old) = self.streams.get(&stream).and_then(|e| e.publisher)
            && self.relays.get(old).is_some()
        {
            // A presenter publishing here takes the stream over from a relay of it.
            self.end_relay(old, now);
        }
        if let Some(old) = self.streams.get(&stream).and_then(|e| e.publisher) {
            let alive = self.peers.get(old).is_some_and(|p| {
                if p.connected {
                    now.duration_since(p.last_rx) < PUBLISHER_DEAD_AFTER
                } else {
                    now.duration_since(p.created) < PUBLISHER_DEAD_AFTER * 2
                }
            });
            if alive {
                return Err(MediaError::StreamBusy(stream));
            }
            tracing::info!(%stream, "replacing a dead publisher");
            self.remove_peer_keep_stream(old, now);
        }
        let (id, mut peer, events) = self.new_peer(PeerRole::Publisher, &stream, now)?;
        peer.identity = identity;
        peer.expected_tracks = usize::from(summary.audio.is_some())
            + if summary.video.is_some() {
                summary.video_layers.max(1)
            } else {
                0
            };
        let sdp = self.negotiate(&mut peer, offer, now)?;
        tracing::info!(session = %peer.session, %stream, "publisher session created");
        let session = peer.session.clone();
        self.peers.insert(id, peer);
        let entry = self.streams.entry(&stream);
        entry.publisher = Some(id);
        entry.relayed = false;
        self.board.changed();
        Ok(SessionAnswer {
            session,
            sdp,
            events,
        })
    }

    pub(super) fn watch(
        &mut self,
        stream: String,
        offer: &str,
        identity: Identity,
        quality: Quality,
        now: Instant,
    ) -> Result<SessionAnswer, MediaError> {
        if self.shutting_down {
            return Err(MediaError::Unavailable);
        }
        let summary = check_offer(offer)?;
        self.check_limits(PeerRole::Viewer, &stream, &identity)?;
        let published = self.published_tracks(&stream);
        let (id, mut peer, events) = self.new_peer(PeerRole::Viewer, &stream, now)?;
        let relay = identity.relay;
        peer.identity = identity;
        peer.quality = quality;
        peer.data_offered = summary.data;
        add_viewer_tracks(&mut peer, &summary, &published)?;
        let sdp = self.negotiate(&mut peer, offer, now)?;
        tracing::info!(session = %peer.session, %stream, "viewer session created");
        let session = peer.session.clone();
        self.peers.insert(id, peer);
        let entry = self.streams.entry(&stream);
        entry.viewers.push(id);
        entry.relay_pulls += usize::from(relay);
        self.announce_viewers(&stream);
        Ok(SessionAnswer {
            session,
            sdp,
            events,
        })
    }

    /// The tracks the source of `stream` publishes: a local publisher's, or a relay's.
    fn published_tracks(&self, stream: &str) -> Vec<PublishedTrack> {
        let Some(source) = self.streams.get(stream).and_then(|e| e.publisher) else {
            return Vec::new();
        };
        match (self.peers.get(source), self.relays.get(source)) {
            (Some(peer), _) => peer.published.clone(),
            (None, Some(relay)) => relay.tracks.clone(),
            (None, None) => Vec::new(),
        }
    }

    /// Refuse a new session over a capacity limit.
    fn check_limits(
        &self,
        role: PeerRole,
        stream: &str,
        identity: &Identity,
    ) -> Result<(), MediaError> {
        let limits = &self.config.limits;
        if !self.streams.contains(stream) && self.streams.len() >= limits.max_streams {
            return Err(MediaError::AtCapacity(format!(
                "the server is at its limit of {} streams",
                limits.max_streams
            )));
        }
        if role == PeerRole::Viewer
            && self
                .streams
                .get(stream)
                .is_some_and(|e| e.viewers.len() >= limits.max_viewers_per_stream)
        {
            return Err(MediaError::AtCapacity(format!(
                "stream {stream} is at its limit of {} viewers",
                limits.max_viewers_per_stream
            )));
        }
        // Viewers are not counted per address: a whole office may watch from one.
        if role == PeerRole::Publisher
            && let Some(origin) = &identity.origin
        {
            let open = self
                .peers
                .iter()
                .filter(|(_, p)| {
                    !p.closing
                        && p.role == PeerRole::Publisher
                        && p.identity.origin.as_ref() == Some(origin)
                })
                .count();
            if open >= limits.max_sessions_per_ip {
                return Err(MediaError::TooManySessions(format!(
                    "your address has {open} publisher sessions open, the limit is {}",
                    limits.max_sessions_per_ip
                )));
            }
        }
        Ok(())
    }

    fn new_peer(
        &mut self,
        role: PeerRole,
        stream: &str,
        now: Instant,
    ) -> Result<(PeerId, Peer, mpsc::Receiver<crate::handle::SessionEvent>), MediaError> {
        let setup = PeerSetup {
            ufrag: random_string(16),
            pwd: random_string(32),
        };
        let pc = build_peer_connection(role, &setup, now)?;
        let (events_tx, events_rx) = mpsc::channel(SESSION_EVENT_QUEUE);
        let id = self.peers.next_id();
        let peer = Peer {
            session: uuid::Uuid::new_v4().simple().to_string(),
            stream: stream.to_owned(),
            role,
            ufrag: setup.ufrag,
            ice_pwd: setup.pwd,
            pc: Some(Box::new(pc)),
            created: now,
            last_rx: now,
            connected: false,
            closing: false,
            timeout: None,
            dirty: false,
            published: Vec::new(),
            expected_tracks: 0,
            identity: Identity::default(),
            joined: false,
            chat_channel: None,
            live_deadline: None,
            senders: Vec::new(),
            sending_to: None,
            quality: Quality::Auto,
            events: events_tx,
            rtcp_in: None,
            rtcp_read: false,
            data_offered: false,
            farewell: Vec::new(),
        };
        Ok((id, peer, events_rx))
    }

    /// Apply the offer, add our candidates and produce the answer.
    fn negotiate(&self, peer: &mut Peer, offer: &str, now: Instant) -> Result<String, MediaError> {
        let description = RTCSessionDescription::offer(offer.to_owned())
            .map_err(|e| MediaError::InvalidSdp(e.to_string()))?;
        let Some(pc) = peer.pc.as_deref_mut() else {
            return Err(MediaError::Internal(
                "a new session without a connection".into(),
            ));
        };
        pc.set_remote_description(now, description)
            .map_err(|e| MediaError::InvalidSdp(e.to_string()))?;
        for candidate in self.transport.candidates()? {
            pc.add_local_candidate(candidate)?;
        }
        let answer = pc.create_answer(None)?;
        pc.set_local_description(now, answer)?;
        tracing::debug!(session = %peer.session, offer, "offer");
        let sdp = pc
            .local_description()
            .map(|d| d.sdp)
            .ok_or_else(|| MediaError::Internal("no local description after answering".into()))?;
        tracing::debug!(session = %peer.session, answer = %sdp, "answer");
        Ok(sdp)
    }

    /// Apply a client's answer to a server offer; a connected viewer is re-subscribed with
    /// its new tracks.
    pub(super) fn apply_answer(
        &mut self,
        session: &str,
        sdp: String,
        now: Instant,
    ) -> Result<(), MediaError> {
        let not_found = || MediaError::SessionNotFound(session.to_owned());
        let id = self.peers.id_of(session).ok_or_else(not_found)?;
        let peer = self.peers.get_mut(id).ok_or_else(not_found)?;
        let answer = RTCSessionDescription::answer(sdp)
            .map_err(|e| MediaError::InvalidSdp(e.to_string()))?;
        // A released viewer made no offer to answer (only sessions nobody signals to are).
        let pc = peer.pc.as_deref_mut().ok_or_else(|| {
            MediaError::InvalidSdp("this session has no offer waiting for an answer".into())
        })?;
        pc.set_remote_description(now, answer)
            .map_err(|e| MediaError::InvalidSdp(e.to_string()))?;
        if peer.connected && peer.role == PeerRole::Viewer {
            let tracks = peer.down_tracks();
            if let Some(entry) = self.streams.get_mut(&peer.stream) {
                entry.sfu.add_subscriber(id, tracks, now);
            }
        }
        self.peers.mark_dirty(id);
        Ok(())
    }

    pub(super) fn close_all(&mut self) {
        let now = Instant::now();
        for id in self.peers.select(|_| true) {
            self.remove_peer(id, now);
        }
    }

    /// Close a peer and take it out of its stream; the stream entry goes when it is empty.
    pub(super) fn remove_peer(&mut self, id: PeerId, now: Instant) {
        let stream = self.peers.get(id).map(|p| p.stream.clone());
        self.remove_peer_keep_stream(id, now);
        if let Some(stream) = stream {
            self.streams.remove_if_idle(&stream);
            self.board.changed();
        }
    }

    fn remove_peer_keep_stream(&mut self, id: PeerId, now: Instant) {
        let Some(peer) = self.peers.get_mut(id) else {
            return;
        };
        if peer.closing {
            return;
        }
        peer.closing = true;
        self.fanout.remove(id);
        // Queues the DTLS close_notify (a released viewer's was made when it was released); the
        // next flush sends it and then forgets the peer.
        if let Some(pc) = peer.pc.as_deref_mut() {
            let _ = pc.close();
        }
        let stream = peer.stream.clone();
        let role = peer.role;
        let relay = peer.identity.relay;
        let chat_session = peer.chat_channel.take().map(|_| peer.session.clone());
        self.peers.mark_dirty(id);
        if let Some(session) = chat_session {
            self.offer_to_chat(ChatIn::Closed { session });
        }
        let Some(entry) = self.streams.get_mut(&stream) else {
            return;
        };
        match role {
            PeerRole::Publisher => {
                if entry.publisher == Some(id) {
                    entry.publisher = None;
                    entry.sfu.remove_publisher(id, now);
                    if let Some(recording) = &mut entry.recording {
                        recording.idle_since = Some(now);
                    }
                    if let Some(tap) = &mut entry.restream {
                        tap.idle_since = Some(now);
                    }
                    if entry.live_announced {
                        entry.live_announced = false;
                        let _ = self.events.send(EngineEvent::Offline {
                            stream: stream.clone(),
                        });
                    }
                    self.board.changed();
                }
            }
            PeerRole::Viewer => {
                self.analytics.viewer_left(&stream, id, now);
                entry.viewers.retain(|v| *v != id);
                if relay {
                    entry.relay_pulls = entry.relay_pulls.saturating_sub(1);
                }
                entry.sfu.remove_subscriber(id);
                self.announce_viewers(&stream);
            }
        }
    }

    /// Drop a closed peer's bookkeeping once its last datagrams went out.
    pub(super) fn forget_peer(&mut self, id: PeerId) {
        if let Some(peer) = self.peers.forget(id) {
            tracing::debug!(session = %peer.session, "peer forgotten");
        }
    }

    fn announce_viewers(&mut self, stream: &str) {
        if let Some(entry) = self.streams.get(stream) {
            let _ = self.events.send(EngineEvent::Viewers {
                stream: stream.to_owned(),
                count: entry.viewers.len().saturating_sub(entry.relay_pulls),
            });
        }
        self.board.changed();
    }
}

/// One send-only track per kind the viewer offered, in the publisher's codec when live.
fn add_viewer_tracks(
    peer: &mut Peer,
    summary: &OfferSummary,
    published: &[PublishedTrack],
) -> Result<(), MediaError> {
    for kind in [MediaKind::Audio, MediaKind::Video] {
        let Some(offered) = summary.codecs(kind) else {
            continue;
        };
        let codec = match published.iter().find(|t| t.kind == kind) {
            Some(track) if !offered.contains(&track.codec) => {
                return Err(MediaError::UnsupportedCodec(format!(
                    "this stream's {} is {}, which the offer does not include",
                    kind_name(kind),
                    track.codec.mime_type()
                )));
            }
            Some(track) => track.codec,
            None => offered[0],
        };
        bridge::add_sender(peer, kind, codec)?;
    }
    Ok(())
}
