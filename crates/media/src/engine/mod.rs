//! The media engine: one thread that owns the shared UDP socket, every peer connection and
//! every stream's forwarding state, split by the state each part owns:
//!
//! - [`transport`]: the sockets, announced addresses and ICE-TCP connections;
//! - [`peers`]: the peer table (peers, session index, demultiplexer, dirty set, timers);
//! - [`streams`]: each stream's forwarding core, publisher, viewers and recording;
//! - [`board`]: the stream snapshot the server reads without asking;
//! - [`crate::fanout`]: each viewer's send leg, sharded over cores;
//! - [`bridge`]: free functions between `rtc` and `directo-sfu`;
//! - [`viewer_rtcp`]: connected viewers' RTCP, unprotected and read past `rtc`;
//! - [`release`]: a set-up viewer's `rtc` connection dropped, its consent answered here.
//!
//! The [`Engine`] holds those parts and runs the flows that cross them, one file a trigger:
//! datagrams in and what peers then report ([`ingress`]), the stream's outputs out
//! ([`egress`]), what the HTTP side asks ([`commands`], [`sessions`]), chat ([`chat`]), and
//! timers (here). No task per peer: one loop reads datagrams in batches, routes each to its
//! peer connection (decrypt once), feeds the publisher's packets to the stream, and hands each
//! forwarded packet to the viewer's leg (encrypt once per viewer, batched sends, sharded).

mod board;
mod bridge;
mod chat;
mod commands;
mod egress;
mod ingress;
mod peers;
mod relays;
mod release;
mod sessions;
mod streams;
mod transport;
mod viewer_rtcp;

use rtc::crypto::RTCCryptoProvider;
use rtc::sansio::Protocol;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{broadcast, mpsc};

use crate::analytics::Analytics;
use crate::chat_port::{ChatIn, ChatOut, ChatPort};
use crate::fanout::Fanout;
use crate::handle::{Command, EngineEvent, EngineHandle, MediaConfig};
use crate::metrics::EngineMetrics;
use crate::peer::{Peer, PeerId};
use crate::relay::{RELAY_QUEUE, RelayIn};
use crate::setup::PeerRole;
use crate::socket::{Datagram, MediaSocket};
use crate::srtp_audit::SrtpAudit;
use crate::tcp::TcpEvent;
use board::Board;
use peers::PeerTable;
use relays::Relays;
use streams::{RecordingSetup, Streams};
use transport::Transport;

/// How often liveness (handshake and idle timeouts, dead publishers) is checked.
const SWEEP_INTERVAL: Duration = Duration::from_millis(500);
/// Datagram batches read per wake-up before the loop services timers and commands.
const MAX_BATCHES_PER_WAKE: usize = 16;
/// Relay messages handled per wake-up before the loop services the socket again.
const MAX_RELAY_BATCH: usize = 256;

/// Start the engine on its own thread. Returns once the socket is bound.
pub fn start(config: MediaConfig, chat: Option<ChatPort>) -> std::io::Result<EngineHandle> {
    let (commands_tx, commands_rx) = mpsc::channel(1024);
    let (events_tx, _) = broadcast::channel(4096);
    let (board, streams_rx) = Board::new();
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let events = events_tx.clone();
    std::thread::Builder::new()
        .name("directo-media".into())
        .spawn(move || {
            let runtime = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    let _ = ready_tx.send(Err(e));
                    return;
                }
            };
            runtime.block_on(async move {
                let (relay_tx, relay_rx) = mpsc::channel(RELAY_QUEUE);
                let (engine, tcp_rx, chat_rx) =
                    match Engine::bind(config, chat, events, board, relay_tx).await {
                        Ok(parts) => parts,
                        Err(e) => {
                            let _ = ready_tx.send(Err(e));
                            return;
                        }
                    };
                let _ = ready_tx.send(Ok(engine.local_addr));
                engine.run(commands_rx, chat_rx, tcp_rx, relay_rx).await;
            });
        })?;
    let local_addr = ready_rx
        .recv()
        .map_err(|_| std::io::Error::other("media thread exited during start"))??;
    Ok(EngineHandle {
        commands: commands_tx,
        events: events_tx,
        streams: streams_rx,
        local_addr,
    })
}

/// The engine: its parts, and the flows between them.
pub(crate) struct Engine {
    config: MediaConfig,
    local_addr: SocketAddr,
    transport: Transport,
    peers: PeerTable,
    streams: Streams,
    /// Streams fed by relays from other nodes.
    relays: Relays,
    /// Connected viewers' send legs: forwarded RTP is protected and sent there, sharded.
    fanout: Fanout,
    board: Board,
    events: broadcast::Sender<EngineEvent>,
    metrics: EngineMetrics,
    analytics: Analytics,
    chat_tx: Option<mpsc::Sender<ChatIn>>,
    srtp_audit: Option<SrtpAudit>,
    /// Signs and checks released viewers' ICE consent (`release.rs`).
    crypto: Arc<dyn RTCCryptoProvider>,
    /// Streams fed without a peer pass (viewer RTCP read in `viewer_rtcp.rs`, relayed RTP)
    /// since the last flush, which drains each once.
    fed: Vec<String>,
    next_sweep: Instant,
    shutting_down: bool,
}

impl Engine {
    /// Bind the UDP socket and the ICE-TCP listener and build the engine's parts.
    async fn bind(
        config: MediaConfig,
        chat: Option<ChatPort>,
        events: broadcast::Sender<EngineEvent>,
        board: Board,
        relay_tx: mpsc::Sender<(PeerId, RelayIn)>,
    ) -> std::io::Result<(
        Self,
        mpsc::Receiver<TcpEvent>,
        Option<mpsc::Receiver<ChatOut>>,
    )> {
        let socket = MediaSocket::bind(config.bind)?;
        let local_addr = socket.local_addr()?;
        let (chat_tx, chat_rx) = match chat {
            Some(port) => (Some(port.to_chat), Some(port.from_chat)),
            None => (None, None),
        };
        let metrics = EngineMetrics::new();
        let crypto = rtc::crypto::default_provider().map_err(std::io::Error::other)?;
        let srtp_audit = config
            .srtp_audit
            .then(|| SrtpAudit::new(metrics.srtp_reuse.clone()));
        let shards = match config.fanout_threads {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        };
        let fanout = Fanout::new(shards, &socket, srtp_audit.clone())?;
        let mut transport = Transport::new(&config, socket, local_addr);
        // ICE-TCP on the same port number, for viewers whose firewall blocks UDP.
        let (tcp_tx, tcp_rx) = mpsc::channel(4096);
        match tokio::net::TcpListener::bind(SocketAddr::new(config.bind.ip(), local_addr.port()))
            .await
        {
            Ok(listener) => {
                tokio::spawn(crate::tcp::accept_loop(listener, tcp_tx));
                transport.tcp_enabled = true;
            }
            Err(e) => {
                tracing::warn!(error = %e, "ICE-TCP disabled: cannot bind the TCP media port")
            }
        }
        tracing::info!(port = local_addr.port(), candidates = ?transport.ips(), fanout_threads = fanout.shards(), "media engine listening");
        let streams = Streams::new(RecordingSetup {
            dir: config.recordings.clone(),
            policy: config.recording_policy.clone(),
            restream: config.restream.clone(),
        });
        let engine = Engine {
            config,
            local_addr,
            transport,
            peers: PeerTable::default(),
            streams,
            relays: Relays::new(relay_tx),
            fanout,
            board,
            events,
            metrics,
            analytics: Analytics::default(),
            chat_tx,
            srtp_audit,
            crypto,
            fed: Vec::new(),
            next_sweep: Instant::now() + SWEEP_INTERVAL,
            shutting_down: false,
        };
        Ok((engine, tcp_rx, chat_rx))
    }

    async fn run(
        mut self,
        mut commands: mpsc::Receiver<Command>,
        mut chat_rx: Option<mpsc::Receiver<ChatOut>>,
        mut tcp_rx: mpsc::Receiver<TcpEvent>,
        mut relay_rx: mpsc::Receiver<(PeerId, RelayIn)>,
    ) {
        let mut datagrams: Vec<Datagram> = Vec::with_capacity(quinn_udp::BATCH_SIZE * 4);
        loop {
            let deadline = self.next_deadline();
            enum Wake {
                Readable,
                Command(Option<Command>),
                Chat(Option<ChatOut>),
                Tcp(Option<TcpEvent>),
                Relay(Option<(PeerId, RelayIn)>),
                Timer,
            }
            let chat_next = async {
                match chat_rx.as_mut() {
                    Some(rx) => rx.recv().await,
                    None => std::future::pending().await,
                }
            };
            let wake = tokio::select! {
                r = self.transport.socket.readable() => match r {
                    Ok(()) => Wake::Readable,
                    Err(e) => {
                        tracing::error!(error = %e, "media socket failed");
                        Wake::Command(None)
                    }
                },
                c = commands.recv() => Wake::Command(c),
                c = chat_next => Wake::Chat(c),
                t = tcp_rx.recv(), if self.transport.tcp_enabled => Wake::Tcp(t),
                r = relay_rx.recv() => Wake::Relay(r),
                _ = tokio::time::sleep_until(deadline.into()) => Wake::Timer,
            };
            match wake {
                Wake::Readable => self.read_datagrams(&mut datagrams),
                Wake::Command(Some(cmd)) => {
                    if self.on_command(cmd) {
                        self.flush().await;
                        return;
                    }
                }
                Wake::Command(None) => {
                    self.close_all();
                    self.flush().await;
                    return;
                }
                Wake::Chat(Some(out)) => {
                    if let Some(rx) = chat_rx.as_mut() {
                        self.on_chat_out(out, rx, Instant::now());
                    }
                }
                Wake::Chat(None) => chat_rx = None,
                Wake::Tcp(Some(event)) => self.on_tcp(event, Instant::now()),
                Wake::Tcp(None) => self.transport.tcp_enabled = false,
                Wake::Relay(Some((id, message))) => {
                    let now = Instant::now();
                    self.on_relay(id, message, now);
                    // What else the relays queued, a bounded batch.
                    for _ in 0..MAX_RELAY_BATCH {
                        match relay_rx.try_recv() {
                            Ok((id, message)) => self.on_relay(id, message, now),
                            Err(_) => break,
                        }
                    }
                }
                Wake::Relay(None) => {}
                Wake::Timer => {}
            }
            let now = Instant::now();
            self.on_timers(now);
            self.board.publish_if_due(&self.streams, now);
            self.flush().await;
        }
    }

    /// Read what the socket has, a bounded number of batches so timers and commands get
    /// their turn.
    fn read_datagrams(&mut self, datagrams: &mut Vec<Datagram>) {
        for _ in 0..MAX_BATCHES_PER_WAKE {
            datagrams.clear();
            match self.transport.socket.try_recv(datagrams) {
                Ok(_) => {
                    let now = Instant::now();
                    for d in datagrams.drain(..) {
                        self.on_datagram(d, now);
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) => {
                    tracing::debug!(error = %e, "udp recv error");
                    break;
                }
            }
        }
    }

    fn next_deadline(&self) -> Instant {
        let any_live = self.streams.iter().any(|(_, e)| e.live_announced);
        [
            self.peers.next_timeout(),
            self.streams.next_timeout(),
            self.board.next_timeout(any_live),
        ]
        .into_iter()
        .flatten()
        .fold(self.next_sweep, Instant::min)
    }

    fn on_timers(&mut self, now: Instant) {
        while let Some(id) = self.peers.pop_due(now) {
            if let Some(peer) = self.peers.get_mut(id)
                && let Some(pc) = peer.pc.as_deref_mut()
                && let Err(e) = pc.handle_timeout(now)
            {
                tracing::debug!(session = %peer.session, error = %e, "peer timeout error");
            }
            self.peers.mark_dirty(id);
        }
        for name in self.streams.due(now) {
            if let Some(entry) = self.streams.get_mut(&name) {
                entry.sfu.handle_timeout(now);
            }
            self.drain_stream(&name, now);
        }
        if now >= self.next_sweep {
            self.next_sweep = now + SWEEP_INTERVAL;
            self.sweep(now);
            self.retarget_legs();
        }
    }

    /// Drop peers that never connected, went silent, or failed; recording upkeep; gauges.
    fn sweep(&mut self, now: Instant) {
        let handshake = self.config.handshake_timeout;
        let idle = self.config.idle_timeout;
        let dead = self.peers.select(|p| {
            (!p.connected && now.duration_since(p.created) > handshake)
                || (p.connected && now.duration_since(p.last_rx) > idle)
        });
        self.metrics
            .fanout_dropped
            .increment(std::mem::take(&mut self.fanout.dropped));
        self.metrics
            .fanout_unowned
            .increment(std::mem::take(&mut self.fanout.unowned));
        self.sweep_relays(now);
        let before = self.streams.len();
        self.metrics
            .recorder_dropped
            .increment(self.streams.sweep(now));
        if self.streams.len() != before {
            self.board.changed();
        }
        let publishers = self
            .peers
            .iter()
            .filter(|(_, p)| p.role == PeerRole::Publisher)
            .count();
        self.metrics.streams.set(self.streams.len() as f64);
        self.metrics.publishers.set(publishers as f64);
        let relay_pulls = self.peers.iter().filter(|(_, p)| p.identity.relay).count();
        self.metrics
            .viewers
            .set((self.peers.len() - publishers - relay_pulls) as f64);
        self.metrics.relay_pulls.set(relay_pulls as f64);
        self.metrics.relayed_streams.set(self.relays.len() as f64);
        let late = self
            .peers
            .select(|p| p.live_deadline.is_some_and(|t| t <= now));
        for id in late {
            self.go_live(id, now);
        }
        for id in dead {
            if let Some(p) = self.peers.get(id) {
                tracing::info!(session = %p.session, stream = %p.stream, connected = p.connected, "dropping unresponsive peer");
                self.metrics.sessions_dropped.increment(1);
            }
            self.remove_peer(id, now);
        }
    }

    /// Drain the streams fed without a peer pass, process every dirty peer, and send what
    /// they all queued (the fan-out's own shard too, even when no peer was dirty: a stream
    /// fed by a relay or by viewer RTCP has outputs without one). Returns when nothing is
    /// dirty.
    async fn flush(&mut self) {
        let now = Instant::now();
        self.drain_fed(now);
        loop {
            let batch = self.peers.take_dirty();
            for id in &batch {
                self.process_peer(*id, now);
            }
            if !self.fanout.outgoing.is_empty() {
                self.transport.socket.send_many(&self.fanout.outgoing).await;
                self.fanout.outgoing.clear();
            }
            for id in batch {
                self.send_peer(id).await;
            }
            if !self.peers.has_dirty() {
                return;
            }
        }
    }

    /// Drain the streams noted as fed since the last time, each once.
    fn drain_fed(&mut self, now: Instant) {
        let mut fed = std::mem::take(&mut self.fed);
        for stream in fed.drain(..) {
            self.drain_stream(&stream, now);
        }
        // Keep the allocation for the next batch.
        self.fed = fed;
    }

    /// Send everything a peer's connection queued, re-arm its timer, and forget it if it is
    /// closing.
    async fn send_peer(&mut self, id: PeerId) {
        let Some(peer) = self.peers.get_mut(id) else {
            return;
        };
        while let Some(out) = peer.pc.as_deref_mut().and_then(|pc| pc.poll_write()) {
            if let Some(audit) = &self.srtp_audit
                && let Some(ssrc) = forwarded_rtp_ssrc(peer, &out.message)
            {
                audit.second_context(ssrc);
            }
            self.transport.send(out).await;
        }
        let closing = peer.closing;
        if closing {
            // A released viewer's DTLS close_notify, made when it was released, to where its
            // media goes now.
            for mut out in std::mem::take(&mut peer.farewell) {
                if let Some(transport) = peer.sending_to {
                    out.transport = transport;
                }
                self.transport.send(out).await;
            }
        } else if self.release_due(id) {
            self.release(id);
        }
        self.peers.sent(id);
        if closing {
            self.forget_peer(id);
        }
    }
}

/// Notes that `stream`'s forwarding core was fed outside a peer pass (once per flush).
fn note_fed(fed: &mut Vec<String>, stream: &str) {
    if !fed.iter().any(|s| s == stream) {
        fed.push(stream.to_owned());
    }
}

/// The SSRC of an RTP datagram a viewer's `rtc` connection is about to send, if it is one of
/// the SSRCs the viewer's leg owns (which only the leg may protect). SRTP leaves the header
/// in the clear; RTCP is told apart by its packet type (RFC 5761).
fn forwarded_rtp_ssrc(peer: &Peer, datagram: &[u8]) -> Option<u32> {
    if datagram.len() < 12 || datagram[0] >> 6 != 2 || (192..=223).contains(&datagram[1]) {
        return None;
    }
    let ssrc = u32::from_be_bytes([datagram[8], datagram[9], datagram[10], datagram[11]]);
    peer.senders
        .iter()
        .any(|s| s.ssrc == ssrc || s.rtx_ssrc == Some(ssrc))
        .then_some(ssrc)
}
