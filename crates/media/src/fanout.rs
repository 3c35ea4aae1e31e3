//! The forwarding fast path: every forwarded RTP packet is SRTP-protected once per viewer and
//! sent straight to the viewer's ICE-selected address, outside the viewer's `rtc` handler
//! pipeline, and a stream's viewers are sharded over every core.
//!
//! After a viewer's DTLS handshake, its connection hands over a send-only SRTP context
//! (`take_send_srtp_context`, the one addition in `vendor/rtc`). The viewer's *leg* (that
//! context, where to send) lives in one *shard*: shard 0 on the engine thread itself, one more
//! per extra core on its own thread. The engine rewrites each packet per viewer in
//! `directo-sfu` (header only; the payload is shared `Bytes`) and hands a shard's share of a
//! fan-out over in one batch, once per incoming packet. Each shard marshals into an arena,
//! encrypts there in place (AES-GCM, `vendor/rtc-srtp`'s patch), splits the datagram off (it
//! shares the arena's allocation until sent) and sends from the shared socket, or into the
//! viewer's ICE-TCP connection.
//!
//! One owner per SSRC's context: the leg is the only thing that ever protects a viewer's
//! forwarded SSRCs, from its first packet to its last. A viewer without a leg, or whose leg
//! has nowhere to send right now (an ICE-TCP connection not open yet), gets nothing — its
//! packets are never handed to `rtc`, whose own context (same key, its own rollover counter)
//! protects only RTCP. When the viewer's connection is released (`engine/release.rs`), that
//! RTCP context moves to the leg, which then protects the sender reports sent to the viewer.
//! With [`SrtpAudit`] on, every shard records the (SSRC, index) pairs it protects and counts
//! any it sees twice.

use bytes::{Bytes, BytesMut};
use rtc::rtp::packet::Packet;
use rtc::shared::marshal::{Marshal, MarshalSize};
use rtc::srtp::context::Context;
use std::collections::{HashMap, VecDeque};
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::mpsc as std_mpsc;
use std::thread::JoinHandle;
use tokio::sync::mpsc;

use crate::peer::PeerId;
use crate::socket::{MediaSocket, Outgoing, SendBatch};
use crate::srtp_audit::{LegAudit, SrtpAudit};

/// Batches a worker may have queued before new ones are dropped (never waited on).
const WORKER_QUEUE: usize = 4096;

/// Where a viewer's forwarded packets go.
#[derive(Clone, Debug)]
pub(crate) enum Destination {
    /// UDP to `to`, from `from` where the source address must be pinned.
    Udp {
        to: SocketAddr,
        from: Option<IpAddr>,
    },
    /// The viewer's ICE-TCP connection (framing is done by its writer).
    Tcp(mpsc::Sender<Vec<u8>>),
    /// Nowhere right now (the ICE-TCP connection the viewer selected is not open): packets
    /// are dropped, as a dead link would.
    Unreachable,
}

/// One viewer's send state.
pub(crate) struct Leg {
    srtp: Context,
    /// A released viewer's RTCP context: its `rtc` connection's own, which protected every
    /// SRTCP packet sent to it so far (`engine/release.rs`).
    rtcp: Option<Box<Context>>,
    destination: Destination,
    audit: Option<Box<LegAudit>>,
}

impl Leg {
    pub(crate) fn new(srtp: Context, destination: Destination) -> Self {
        Leg {
            srtp,
            rtcp: None,
            destination,
            audit: None,
        }
    }
}

/// Bytes a shard's arena is refilled with: some fifty datagrams share one allocation.
const ARENA: usize = 64 * 1024;
/// Room the SRTP tag needs after a packet (AES-GCM's 16 bytes; HMAC-SHA1-80 needs 10).
const TAG_ROOM: usize = 16;

/// The legs of one shard and the arena their datagrams are marshalled into.
#[derive(Default)]
struct Shard {
    legs: HashMap<PeerId, Leg>,
    /// Datagrams are marshalled and protected in place here, then split off: they share
    /// the arena's allocation until sent, so protecting a packet allocates nothing.
    arena: BytesMut,
}

impl Shard {
    /// Protect `packet` for viewer `id`: the datagram and where it goes.
    fn protect(&mut self, id: PeerId, packet: &Packet) -> Option<(&Destination, BytesMut)> {
        let leg = self.legs.get_mut(&id)?;
        if matches!(leg.destination, Destination::Unreachable) {
            return None;
        }
        if let Some(audit) = &mut leg.audit {
            audit.record(packet.header.ssrc, packet.header.sequence_number);
        }
        let len = packet.marshal_size();
        if self.arena.capacity() < len + TAG_ROOM {
            self.arena = BytesMut::with_capacity(ARENA.max(len + TAG_ROOM));
        }
        self.arena.resize(len, 0);
        let protected = match packet.marshal_to(&mut self.arena[..]) {
            Ok(n) => {
                self.arena.truncate(n);
                leg.srtp
                    .encrypt_rtp_in_place(&mut self.arena, &packet.header)
                    .map_err(|e| e.to_string())
            }
            Err(e) => Err(e.to_string()),
        };
        match protected {
            Ok(()) => Some((&leg.destination, self.arena.split())),
            Err(error) => {
                self.arena.clear();
                tracing::debug!(viewer = id, %error, "srtp protect failed");
                None
            }
        }
    }

    /// Protect a plain RTCP compound `packet` for released viewer `id`, with its RTCP context.
    fn protect_rtcp(&mut self, id: PeerId, packet: &[u8]) -> Option<(&Destination, BytesMut)> {
        let leg = self.legs.get_mut(&id)?;
        let context = leg.rtcp.as_mut()?;
        match context.encrypt_rtcp(packet) {
            Ok(data) => Some((&leg.destination, data)),
            Err(error) => {
                tracing::debug!(viewer = id, %error, "srtcp protect failed");
                None
            }
        }
    }

    /// Protect and queue viewer `id`'s RTCP `packet` in `out`.
    fn send_rtcp(&mut self, id: PeerId, packet: &[u8], out: &mut Vec<Outgoing>) {
        if let Some((destination, data)) = self.protect_rtcp(id, packet) {
            send_protected(destination, data, out);
        }
    }

    fn set_rtcp_context(&mut self, id: PeerId, context: Box<Context>) {
        if let Some(leg) = self.legs.get_mut(&id) {
            leg.rtcp = Some(context);
        }
    }
}

/// What a worker thread is told.
enum Job {
    Add(PeerId, Box<Leg>),
    Remove(PeerId),
    Retarget(PeerId, Destination),
    RtcpContext(PeerId, Box<Context>),
    Rtcp(PeerId, Bytes),
    Packets(Vec<(PeerId, Packet)>),
}

struct Worker {
    jobs: std_mpsc::SyncSender<Job>,
    thread: Option<JoinHandle<()>>,
    legs: usize,
    /// Leg changes its full queue could not take yet: sent, in order, before anything else.
    deferred: VecDeque<Job>,
}

impl Worker {
    /// Queue a leg change without ever waiting: behind earlier deferred ones, or now.
    fn control(&mut self, job: Job) {
        if !self.flush_deferred() {
            self.deferred.push_back(job);
            return;
        }
        if let Err(std_mpsc::TrySendError::Full(job)) = self.jobs.try_send(job) {
            self.deferred.push_back(job);
        }
    }

    /// Send deferred leg changes; whether none is left.
    fn flush_deferred(&mut self) -> bool {
        while let Some(job) = self.deferred.pop_front() {
            match self.jobs.try_send(job) {
                Ok(()) => {}
                Err(std_mpsc::TrySendError::Full(job)) => {
                    self.deferred.push_front(job);
                    return false;
                }
                // The worker is gone (shutting down): nothing to keep.
                Err(std_mpsc::TrySendError::Disconnected(_)) => {
                    self.deferred.clear();
                }
            }
        }
        true
    }
}

/// Every viewer's leg, sharded over the engine thread and the worker threads.
pub(crate) struct Fanout {
    local: Shard,
    /// Datagrams protected on the engine thread, sent by the engine's next flush.
    pub(crate) outgoing: Vec<Outgoing>,
    workers: Vec<Worker>,
    /// Which shard holds each leg: 0 is the engine thread, `i` is `workers[i - 1]`.
    placement: HashMap<PeerId, usize>,
    /// Each worker's share of the fan-out being built.
    pending: Vec<Vec<(PeerId, Packet)>>,
    /// Packets a full worker queue made us drop (reported to `/metrics` by the engine).
    pub(crate) dropped: u64,
    /// Packets for viewers without a leg, dropped rather than protected by another context.
    pub(crate) unowned: u64,
    /// Whether new legs record what they protect.
    audit: Option<SrtpAudit>,
}

impl Fanout {
    /// A fan-out over `shards` shards (the engine thread plus `shards - 1` workers), each
    /// worker sending from its own handle on `socket`.
    pub(crate) fn new(
        shards: usize,
        socket: &MediaSocket,
        audit: Option<SrtpAudit>,
    ) -> io::Result<Self> {
        let mut workers = Vec::new();
        for index in 1..shards.max(1) {
            let fd = socket.try_clone_fd()?;
            let (jobs, rx) = std_mpsc::sync_channel(WORKER_QUEUE);
            let thread = std::thread::Builder::new()
                .name(format!("directo-fanout-{index}"))
                .spawn(move || run_worker(rx, fd))?;
            workers.push(Worker {
                jobs,
                thread: Some(thread),
                legs: 0,
                deferred: VecDeque::new(),
            });
        }
        let pending = workers.iter().map(|_| Vec::new()).collect();
        Ok(Fanout {
            local: Shard::default(),
            outgoing: Vec::new(),
            workers,
            placement: HashMap::new(),
            pending,
            dropped: 0,
            unowned: 0,
            audit,
        })
    }

    /// How many shards forward (the engine thread included).
    pub(crate) fn shards(&self) -> usize {
        self.workers.len() + 1
    }

    /// Give viewer `id` a leg, on the least loaded shard.
    pub(crate) fn add(&mut self, id: PeerId, mut leg: Leg) {
        self.remove(id);
        leg.audit = self.audit.clone().map(|a| Box::new(LegAudit::new(a)));
        let local_legs = self.local.legs.len();
        let shard = self
            .workers
            .iter()
            .enumerate()
            .filter(|(_, w)| w.legs < local_legs)
            .min_by_key(|(_, w)| w.legs)
            .map_or(0, |(i, _)| i + 1);
        if shard == 0 {
            self.local.legs.insert(id, leg);
        } else {
            let worker = &mut self.workers[shard - 1];
            worker.control(Job::Add(id, Box::new(leg)));
            worker.legs += 1;
        }
        self.placement.insert(id, shard);
    }

    /// Forget viewer `id`'s leg.
    pub(crate) fn remove(&mut self, id: PeerId) {
        match self.placement.remove(&id) {
            Some(0) => {
                self.local.legs.remove(&id);
            }
            Some(shard) => {
                let worker = &mut self.workers[shard - 1];
                worker.legs -= 1;
                worker.control(Job::Remove(id));
            }
            None => {}
        }
    }

    /// Viewer `id`'s ICE-selected transport changed (a new address, UDP to ICE-TCP or back):
    /// the same leg, and so the same SRTP context, sends there from now on.
    pub(crate) fn retarget(&mut self, id: PeerId, destination: Destination) {
        match self.placement.get(&id) {
            Some(0) => {
                if let Some(leg) = self.local.legs.get_mut(&id) {
                    leg.destination = destination;
                }
            }
            Some(&shard) => self.workers[shard - 1].control(Job::Retarget(id, destination)),
            None => {}
        }
    }

    /// Viewer `id`'s connection was released: from now on its leg also protects the RTCP
    /// sent to it, with `context` (the connection's own, so SRTCP indices carry on).
    pub(crate) fn set_rtcp_context(&mut self, id: PeerId, context: Context) {
        match self.placement.get(&id) {
            Some(0) => self.local.set_rtcp_context(id, Box::new(context)),
            Some(&shard) => {
                self.workers[shard - 1].control(Job::RtcpContext(id, Box::new(context)))
            }
            None => {}
        }
    }

    /// Send a plain RTCP compound `packet` to released viewer `id` through its leg.
    pub(crate) fn push_rtcp(&mut self, id: PeerId, packet: Bytes) {
        match self.placement.get(&id) {
            Some(0) => self.local.send_rtcp(id, &packet, &mut self.outgoing),
            Some(&shard) => self.workers[shard - 1].control(Job::Rtcp(id, packet)),
            None => {}
        }
    }

    /// Forward `packet` (already rewritten for viewer `id`). On the engine thread's shard it is
    /// protected now and queued in `outgoing` (or handed to the TCP writer); on a worker's
    /// shard it joins that worker's batch, handed over by [`Fanout::dispatch`]. A viewer
    /// without a leg gets nothing: no other context may protect its SSRCs.
    pub(crate) fn push(&mut self, id: PeerId, packet: Packet) {
        match self.placement.get(&id) {
            Some(0) => {
                if let Some((destination, data)) = self.local.protect(id, &packet) {
                    send_protected(destination, data, &mut self.outgoing);
                }
            }
            Some(&shard) => self.pending[shard - 1].push((id, packet)),
            None => self.unowned += 1,
        }
    }

    /// Hand every worker its share of the fan-out built since the last call.
    pub(crate) fn dispatch(&mut self) {
        for (worker, batch) in self.workers.iter_mut().zip(self.pending.iter_mut()) {
            if batch.is_empty() {
                continue;
            }
            let n = batch.len() as u64;
            let batch = std::mem::replace(batch, Vec::with_capacity(worker.legs));
            // Leg changes go first; packets never wait for them, they are dropped instead.
            if !worker.flush_deferred() || worker.jobs.try_send(Job::Packets(batch)).is_err() {
                self.dropped += n;
            }
        }
    }
}

impl Drop for Fanout {
    fn drop(&mut self) {
        for worker in &mut self.workers {
            // Closing the queue ends the thread once it sent what it had.
            let (closed, _) = std_mpsc::sync_channel(1);
            drop(std::mem::replace(&mut worker.jobs, closed));
            if let Some(thread) = worker.thread.take() {
                let _ = thread.join();
            }
        }
    }
}

/// Queue a protected datagram for the next batched UDP send, or hand it to the viewer's
/// ICE-TCP writer (framing is the writer's; a full queue means a slow path: drop, as UDP would).
fn send_protected(destination: &Destination, data: BytesMut, udp: &mut Vec<Outgoing>) {
    match destination {
        Destination::Udp { to, from } => udp.push(Outgoing {
            to: *to,
            from: *from,
            data,
        }),
        Destination::Tcp(writer) => {
            let _ = writer.try_send(data.to_vec());
        }
        Destination::Unreachable => {}
    }
}

fn run_worker(jobs: std_mpsc::Receiver<Job>, socket: OwnedFd) {
    let mut shard = Shard::default();
    let mut sender = SendBatch::default();
    let mut out = Vec::new();
    while let Ok(job) = jobs.recv() {
        match job {
            Job::Add(id, leg) => {
                shard.legs.insert(id, *leg);
            }
            Job::Remove(id) => {
                shard.legs.remove(&id);
            }
            Job::Retarget(id, destination) => {
                if let Some(leg) = shard.legs.get_mut(&id) {
                    leg.destination = destination;
                }
            }
            Job::RtcpContext(id, context) => shard.set_rtcp_context(id, context),
            Job::Rtcp(id, packet) => {
                shard.send_rtcp(id, &packet, &mut out);
                sender.send_all_waiting(socket.as_raw_fd(), &out);
                out.clear();
            }
            Job::Packets(batch) => {
                for (id, packet) in batch {
                    if let Some((destination, data)) = shard.protect(id, &packet) {
                        send_protected(destination, data, &mut out);
                    }
                }
                sender.send_all_waiting(socket.as_raw_fd(), &out);
                out.clear();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn removed(job: Job) -> PeerId {
        match job {
            Job::Remove(id) => id,
            _ => panic!("expected a Remove"),
        }
    }

    #[test]
    fn a_datagram_is_protected_in_place_exactly_as_srtp_protects_a_copy() {
        use rtc::srtp::protection_profile::ProtectionProfile;
        let provider = rtc::crypto::default_provider().expect("a crypto provider");
        for profile in [
            ProtectionProfile::AeadAes128Gcm,
            ProtectionProfile::Aes128CmHmacSha1_80,
        ] {
            let key = vec![7u8; profile.key_len()];
            let salt = vec![9u8; profile.salt_len()];
            let context = || {
                Context::new(&key, &salt, profile, None, None, provider.crypto())
                    .expect("an SRTP context")
            };
            let mut shard = Shard::default();
            let to = SocketAddr::from(([127, 0, 0, 1], 9));
            shard
                .legs
                .insert(1, Leg::new(context(), Destination::Udp { to, from: None }));
            // Across a sequence-number rollover, with payloads of the sizes video has; more
            // than one arena's worth, so the arena is refilled on the way.
            let packets: Vec<Packet> = (65_500u16..=65_535)
                .chain(0..40)
                .enumerate()
                .map(|(i, seq)| Packet {
                    header: rtc::rtp::header::Header {
                        version: 2,
                        payload_type: 96,
                        sequence_number: seq,
                        timestamp: 90 * i as u32,
                        ssrc: 42,
                        ..Default::default()
                    },
                    payload: bytes::Bytes::from(vec![i as u8; 900 + i]),
                })
                .collect();
            let datagrams: Vec<BytesMut> = packets
                .iter()
                .map(|packet| shard.protect(1, packet).expect("protected").1)
                .collect();
            // Each equals what SRTP makes of a copy, and datagrams split off the arena stay
            // intact while later ones are written.
            let mut twin = context();
            for (packet, protected) in packets.iter().zip(&datagrams) {
                let expected = twin
                    .encrypt_rtp(&packet.marshal().expect("marshalled"))
                    .expect("protected by srtp");
                let seq = packet.header.sequence_number;
                assert_eq!(&protected[..], &expected[..], "{profile:?}, seq {seq}");
            }
        }
    }

    #[test]
    fn leg_changes_never_wait_and_keep_their_order() {
        let (jobs, rx) = std_mpsc::sync_channel(1);
        let mut worker = Worker {
            jobs,
            thread: None,
            legs: 0,
            deferred: VecDeque::new(),
        };
        // The queue holds one job: the next two are kept back, in order, without blocking.
        for id in 1..=3 {
            worker.control(Job::Remove(id));
        }
        assert_eq!(worker.deferred.len(), 2);
        assert_eq!(removed(rx.recv().unwrap()), 1);
        assert!(!worker.flush_deferred(), "room for one only");
        assert_eq!(removed(rx.recv().unwrap()), 2);
        assert!(worker.flush_deferred());
        assert_eq!(removed(rx.recv().unwrap()), 3);
        // Once the worker is gone, nothing piles up.
        drop(rx);
        worker.control(Job::Remove(4));
        worker.control(Job::Remove(5));
        assert!(worker.deferred.len() <= 1);
    }
}
