//! The peer table: every peer connection the engine drives, how to find one (by id, by
//! session, by the datagram's address), which of them have work queued (the dirty set) and
//! when each wants its next timeout (one heap for all).
//!
//! It owns the bookkeeping that must stay consistent across those indexes: a peer is in the
//! demultiplexer and the session index exactly while it is in the table, and it is queued
//! for a processing pass at most once however many times it is marked.

use rtc::peer_connection::message::{RTCMessage, TaggedRTCMessage};
use rtc::sansio::Protocol;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::net::SocketAddr;
use std::time::Instant;

use crate::demux::Demuxer;
use crate::peer::{Peer, PeerId};

/// Every peer, its indexes, the dirty set and the timer heap.
#[derive(Default)]
pub(crate) struct PeerTable {
    /// Boxed: a peer connection is several KiB, and a table of them inline would carry that
    /// for every empty slot and copy it all on each growth.
    peers: HashMap<PeerId, Box<Peer>>,
    sessions: HashMap<String, PeerId>,
    demux: Demuxer,
    timers: BinaryHeap<Reverse<(Instant, PeerId)>>,
    dirty: Vec<PeerId>,
    last_id: PeerId,
}

impl PeerTable {
    /// A fresh id for a peer about to be built.
    pub(crate) fn next_id(&mut self) -> PeerId {
        self.last_id += 1;
        self.last_id
    }

    /// Add a peer under `id`: its ICE ufrag routes datagrams to it and its session id finds
    /// it. It is queued for a first pass (its answer may have queued writes).
    pub(crate) fn insert(&mut self, id: PeerId, peer: Peer) {
        self.demux.add_peer(&peer.ufrag, id);
        self.sessions.insert(peer.session.clone(), id);
        self.peers.insert(id, Box::new(peer));
        self.mark_dirty(id);
    }

    /// Forget a peer (its last datagrams are out): its indexes go with it.
    pub(crate) fn forget(&mut self, id: PeerId) -> Option<Box<Peer>> {
        let peer = self.peers.remove(&id)?;
        self.demux.remove_peer(&peer.ufrag, id);
        self.sessions.remove(&peer.session);
        Some(peer)
    }

    pub(crate) fn get(&self, id: PeerId) -> Option<&Peer> {
        self.peers.get(&id).map(Box::as_ref)
    }

    pub(crate) fn get_mut(&mut self, id: PeerId) -> Option<&mut Peer> {
        self.peers.get_mut(&id).map(Box::as_mut)
    }

    /// The peer of a session id.
    pub(crate) fn id_of(&self, session: &str) -> Option<PeerId> {
        self.sessions.get(session).copied()
    }

    /// Every peer.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (PeerId, &Peer)> {
        self.peers.iter().map(|(id, p)| (*id, p.as_ref()))
    }

    /// The ids of the peers `keep` selects.
    pub(crate) fn select(&self, keep: impl Fn(&Peer) -> bool) -> Vec<PeerId> {
        self.peers
            .iter()
            .filter(|(_, p)| keep(p))
            .map(|(id, _)| *id)
            .collect()
    }

    pub(crate) fn len(&self) -> usize {
        self.peers.len()
    }

    /// The peer a datagram from `from` belongs to (see [`Demuxer`]).
    pub(crate) fn route(&mut self, from: SocketAddr, datagram: &[u8]) -> Option<PeerId> {
        self.demux.route(from, datagram)
    }

    /// Queue a peer for a processing pass (once, however often it is marked).
    pub(crate) fn mark_dirty(&mut self, id: PeerId) {
        if let Some(peer) = self.peers.get_mut(&id)
            && !peer.dirty
        {
            peer.dirty = true;
            self.dirty.push(id);
        }
    }

    /// The peers queued since the last call; their flags clear as each is sent
    /// ([`PeerTable::sent`]).
    pub(crate) fn take_dirty(&mut self) -> Vec<PeerId> {
        std::mem::take(&mut self.dirty)
    }

    pub(crate) fn has_dirty(&self) -> bool {
        !self.dirty.is_empty()
    }

    /// Hand `message` to a peer's connection to send, and queue the peer so it goes out.
    pub(crate) fn write(&mut self, id: PeerId, now: Instant, message: RTCMessage) {
        let Some(peer) = self.peers.get_mut(&id) else {
            return;
        };
        let Some(pc) = peer.pc.as_deref_mut() else {
            return;
        };
        match pc.handle_write(TaggedRTCMessage { now, message }) {
            Ok(()) => self.mark_dirty(id),
            Err(e) => tracing::debug!(session = %peer.session, error = %e, "peer refused a write"),
        }
    }

    /// A peer's pass is over: clear its flag and re-arm its timer from what its connection
    /// wants next.
    pub(crate) fn sent(&mut self, id: PeerId) {
        let Some(peer) = self.peers.get_mut(&id) else {
            return;
        };
        peer.dirty = false;
        let next = peer.pc.as_deref_mut().and_then(|pc| pc.poll_timeout());
        if next != peer.timeout {
            peer.timeout = next;
            if let Some(t) = next {
                self.timers.push(Reverse((t, id)));
            }
        }
    }

    /// The earliest peer timeout.
    pub(crate) fn next_timeout(&self) -> Option<Instant> {
        self.timers.peek().map(|Reverse((t, _))| *t)
    }

    /// The next peer whose timeout is due at `now` (stale heap entries are skipped).
    pub(crate) fn pop_due(&mut self, now: Instant) -> Option<PeerId> {
        while let Some(Reverse((t, id))) = self.timers.peek().copied() {
            if t > now {
                return None;
            }
            self.timers.pop();
            match self.peers.get_mut(&id) {
                // The deadline moved since this entry was pushed: not due.
                Some(peer) if peer.timeout == Some(t) => {
                    peer.timeout = None;
                    return Some(id);
                }
                _ => continue,
            }
        }
        None
    }
}
