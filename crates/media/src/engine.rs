//! The media engine's event loop: one thread that owns the shared UDP socket, every peer
//! connection and every stream's forwarding state.
//!
//! No task per peer: one loop reads datagrams in batches, routes each to its peer connection
//! (decrypt once), feeds the publisher's packets to the stream in `directo-sfu`, and hands
//! each forwarded packet to the viewer's send leg in [`crate::fanout`] (encrypt once per viewer,
//! batched sends, sharded over cores); everything else a viewer's connection sends (sender
//! reports, DTLS, ICE, SCTP) goes through its `rtc` peer connection. Timers of all peers live in
//! one heap.

use directo_sfu::{Codec, KeyframeRequestKind, MediaKind, Output, PublishedTrack, Quality, Stream};
use rand::Rng;
use rand::distr::Alphanumeric;
use rtc::media_stream::MediaStreamTrack;
use rtc::peer_connection::event::{RTCDataChannelEvent, RTCPeerConnectionEvent, RTCTrackEvent};
use rtc::peer_connection::message::{RTCMessage, TaggedRTCMessage};
use rtc::peer_connection::sdp::RTCSessionDescription;
use rtc::peer_connection::state::RTCPeerConnectionState;
use rtc::peer_connection::transport::{
    CandidateConfig, CandidateHostConfig, RTCIceCandidate, RTCIceCandidateInit,
};
use rtc::rtcp::payload_feedbacks::full_intra_request::{FirEntry, FullIntraRequest};
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::rtcp::payload_feedbacks::receiver_estimated_maximum_bitrate::ReceiverEstimatedMaximumBitrate;
use rtc::rtcp::receiver_report::ReceiverReport;
use rtc::rtcp::sender_report::SenderReport;
use rtc::rtcp::transport_feedbacks::transport_layer_cc::TransportLayerCc;
use rtc::rtcp::transport_feedbacks::transport_layer_nack::TransportLayerNack;
use rtc::rtp_transceiver::rtp_sender::{
    RTCRtpCodec, RTCRtpCodingParameters, RTCRtpEncodingParameters, RtpCodecKind,
};
use rtc::sansio::Protocol;
use rtc::shared::marshal::MarshalSize;
use rtc::shared::{TaggedBytesMut, TransportContext, TransportProtocol};
use signaling_proto::{ErrorCode, StreamInfo, TrackInfo};
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};
use tokio::sync::{broadcast, mpsc};

use crate::analytics::Analytics;
use crate::chat_port::{
    CHAT_LABEL, ChatIn, ChatOut, ChatPort, ChatRole, Identity, MAX_CHAT_BUFFERED,
};
use crate::demux::Demuxer;
use crate::error::MediaError;
use crate::fanout::{Destination, Fanout, Leg};
use crate::handle::{Command, EngineEvent, EngineHandle, MediaConfig, SessionAnswer, SessionInfo};
use crate::metrics::EngineMetrics;
use crate::offer::{OfferSummary, check_offer};
use crate::peer::{Peer, PeerId, Sender};
use crate::recording::StreamRecording;
use crate::setup::{PeerRole, PeerSetup, build_peer_connection};
use crate::socket::{Datagram, MediaSocket};
use crate::tcp::TcpEvent;

/// How often liveness (handshake and idle timeouts, dead publishers) is checked.
const SWEEP_INTERVAL: Duration = Duration::from_millis(500);
/// A publisher from which nothing arrived for this long may be replaced by a new one.
const PUBLISHER_DEAD_AFTER: Duration = Duration::from_secs(3);
/// How long a recording waits for its publisher to come back before the file is finished.
const RECORDING_IDLE_GRACE: Duration = Duration::from_secs(10);
/// Chat messages delivered per wake-up before the loop goes back to media.
const MAX_CHAT_PER_WAKE: usize = 1024;
/// How long a publisher's first track waits for its other tracks before the stream goes live.
const TRACK_OPEN_GRACE: Duration = Duration::from_millis(500);
/// Datagram batches read per wake-up before the loop services timers and commands.
const MAX_BATCHES_PER_WAKE: usize = 16;

/// One stream's forwarding state and its peers.
struct StreamEntry {
    sfu: Stream,
    publisher: Option<PeerId>,
    viewers: Vec<PeerId>,
    live_announced: bool,
    recording: Option<StreamRecording>,
}

impl StreamEntry {
    fn new() -> Self {
        StreamEntry {
            sfu: Stream::new(),
            publisher: None,
            viewers: Vec::new(),
            live_announced: false,
            recording: None,
        }
    }
}

/// Start the engine on its own thread. Returns once the socket is bound.
pub fn start(config: MediaConfig, chat: Option<ChatPort>) -> std::io::Result<EngineHandle> {
    let (commands_tx, commands_rx) = mpsc::channel(1024);
    let (events_tx, _) = broadcast::channel(4096);
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
                let socket = match MediaSocket::bind(config.bind) {
                    Ok(s) => s,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                let local_addr = match socket.local_addr() {
                    Ok(a) => a,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                let (chat_tx, chat_rx) = match chat {
                    Some(port) => (Some(port.to_chat), Some(port.from_chat)),
                    None => (None, None),
                };
                // ICE-TCP on the same port number, for viewers whose firewall blocks UDP.
                let (tcp_tx, tcp_rx) = mpsc::channel(4096);
                let tcp_enabled =
                    match tokio::net::TcpListener::bind(SocketAddr::new(config.bind.ip(), local_addr.port())).await {
                        Ok(listener) => {
                            tokio::spawn(crate::tcp::accept_loop(listener, tcp_tx));
                            true
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "ICE-TCP disabled: cannot bind the TCP media port");
                            false
                        }
                    };
                let shards = match config.fanout_threads {
                    0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
                    n => n,
                };
                let fanout = match Fanout::new(shards, &socket) {
                    Ok(f) => f,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                let mut engine = Engine::new(config, socket, local_addr, events, fanout);
                engine.chat_tx = chat_tx;
                engine.tcp_enabled = tcp_enabled;
                let _ = ready_tx.send(Ok(local_addr));
                engine.run(commands_rx, chat_rx, tcp_rx).await;
            });
        })?;
    let local_addr = ready_rx
        .recv()
        .map_err(|_| std::io::Error::other("media thread exited during start"))??;
    Ok(EngineHandle {
        commands: commands_tx,
        events: events_tx,
        local_addr,
    })
}

/// The addresses announced as host candidates.
fn candidate_ips(config: &MediaConfig) -> Vec<IpAddr> {
    if !config.public_ips.is_empty() {
        return config.public_ips.clone();
    }
    if !config.bind.ip().is_unspecified() {
        return vec![config.bind.ip()];
    }
    let mut ips: Vec<IpAddr> = if_addrs::get_if_addrs()
        .map(|ifs| ifs.into_iter().map(|i| i.ip()).collect())
        .unwrap_or_default();
    // The socket is IPv4 (`0.0.0.0`); loopback last so real interfaces are preferred.
    ips.retain(|ip| ip.is_ipv4());
    ips.sort_by_key(|ip| ip.is_loopback());
    ips.dedup();
    if ips.is_empty() {
        ips.push(IpAddr::from([127, 0, 0, 1]));
    }
    ips
}

fn random_string(len: usize) -> String {
    rand::rng()
        .sample_iter(&Alphanumeric)
        .take(len)
        .map(char::from)
        .collect()
}

fn rtc_kind(kind: MediaKind) -> RtpCodecKind {
    match kind {
        MediaKind::Audio => RtpCodecKind::Audio,
        MediaKind::Video => RtpCodecKind::Video,
    }
}

fn kind_name(kind: MediaKind) -> &'static str {
    match kind {
        MediaKind::Audio => "audio",
        MediaKind::Video => "video",
    }
}

fn rtc_codec(codec: Codec) -> RTCRtpCodec {
    let (clock_rate, channels, fmtp) = match codec {
        Codec::Opus => (48_000, 2, "minptime=10;useinbandfec=1"),
        Codec::Vp8 => (90_000, 0, ""),
        Codec::Vp9 => (90_000, 0, "profile-id=0"),
        Codec::H264 => (
            90_000,
            0,
            "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f",
        ),
    };
    RTCRtpCodec {
        mime_type: codec.mime_type().to_owned(),
        clock_rate,
        channels,
        sdp_fmtp_line: fmtp.to_owned(),
        rtcp_feedback: vec![],
    }
}

struct Engine {
    config: MediaConfig,
    socket: MediaSocket,
    port: u16,
    ips: Vec<IpAddr>,
    /// This machine's own addresses (a source address may only be one of these).
    interface_ips: Vec<IpAddr>,
    demux: Demuxer,
    /// Boxed: a peer connection is several KiB, and a table of them inline would carry that
    /// for every empty slot and copy it all on each growth.
    peers: HashMap<PeerId, Box<Peer>>,
    sessions: HashMap<String, PeerId>,
    streams: HashMap<String, StreamEntry>,
    timers: BinaryHeap<Reverse<(Instant, PeerId)>>,
    dirty: Vec<PeerId>,
    next_id: PeerId,
    next_sweep: Instant,
    events: broadcast::Sender<EngineEvent>,
    shutting_down: bool,
    metrics: EngineMetrics,
    analytics: Analytics,
    chat_tx: Option<mpsc::Sender<ChatIn>>,
    /// Whether the TCP media port is open (ICE-TCP candidates are offered).
    tcp_enabled: bool,
    /// ICE-TCP connections: their local address and their writer.
    tcp_writers: HashMap<SocketAddr, (SocketAddr, mpsc::Sender<Vec<u8>>)>,
    /// Per-stream recording switches set through the admin API.
    record_overrides: HashMap<String, bool>,
    /// Recordings being finished on their own threads.
    finishing: Vec<std::thread::JoinHandle<()>>,
    /// Connected viewers' send legs: forwarded RTP is protected and sent there, sharded.
    fanout: Fanout,
}

impl Engine {
    fn new(
        config: MediaConfig,
        socket: MediaSocket,
        local_addr: SocketAddr,
        events: broadcast::Sender<EngineEvent>,
        fanout: Fanout,
    ) -> Self {
        let ips = candidate_ips(&config);
        tracing::info!(port = local_addr.port(), candidates = ?ips, fanout_threads = fanout.shards(), "media engine listening");
        Engine {
            config,
            socket,
            port: local_addr.port(),
            ips,
            interface_ips: if_addrs::get_if_addrs()
                .map(|ifs| ifs.into_iter().map(|i| i.ip()).collect())
                .unwrap_or_default(),
            demux: Demuxer::default(),
            peers: HashMap::new(),
            sessions: HashMap::new(),
            streams: HashMap::new(),
            timers: BinaryHeap::new(),
            dirty: Vec::new(),
            next_id: 1,
            next_sweep: Instant::now() + SWEEP_INTERVAL,
            events,
            shutting_down: false,
            metrics: EngineMetrics::new(),
            analytics: Analytics::default(),
            chat_tx: None,
            tcp_enabled: false,
            tcp_writers: HashMap::new(),
            record_overrides: HashMap::new(),
            finishing: Vec::new(),
            fanout,
        }
    }

    async fn run(
        mut self,
        mut commands: mpsc::Receiver<Command>,
        mut chat_rx: Option<mpsc::Receiver<ChatOut>>,
        mut tcp_rx: mpsc::Receiver<TcpEvent>,
    ) {
        let mut datagrams: Vec<Datagram> = Vec::with_capacity(quinn_udp::BATCH_SIZE * 4);
        loop {
            let deadline = self.next_deadline();
            enum Wake {
                Readable,
                Command(Option<Command>),
                Chat(Option<ChatOut>),
                Tcp(Option<TcpEvent>),
                Timer,
            }
            let chat_next = async {
                match chat_rx.as_mut() {
                    Some(rx) => rx.recv().await,
                    None => std::future::pending().await,
                }
            };
            let wake = tokio::select! {
                r = self.socket.readable() => match r {
                    Ok(()) => Wake::Readable,
                    Err(e) => {
                        tracing::error!(error = %e, "media socket failed");
                        Wake::Command(None)
                    }
                },
                c = commands.recv() => Wake::Command(c),
                c = chat_next => Wake::Chat(c),
                t = tcp_rx.recv(), if self.tcp_enabled => Wake::Tcp(t),
                _ = tokio::time::sleep_until(deadline.into()) => Wake::Timer,
            };
            match wake {
                Wake::Readable => {
                    for _ in 0..MAX_BATCHES_PER_WAKE {
                        datagrams.clear();
                        match self.socket.try_recv(&mut datagrams) {
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
                    let now = Instant::now();
                    self.on_chat_out(out, now);
                    // Take what else is queued, bounded so media is never starved by chat.
                    if let Some(rx) = chat_rx.as_mut() {
                        for _ in 0..MAX_CHAT_PER_WAKE {
                            match rx.try_recv() {
                                Ok(out) => self.on_chat_out(out, now),
                                Err(_) => break,
                            }
                        }
                    }
                }
                Wake::Chat(None) => chat_rx = None,
                Wake::Tcp(Some(event)) => self.on_tcp(event, Instant::now()),
                Wake::Tcp(None) => self.tcp_enabled = false,
                Wake::Timer => {}
            }
            self.on_timers(Instant::now());
            self.flush().await;
        }
    }

    fn next_deadline(&self) -> Instant {
        let mut deadline = self.next_sweep;
        if let Some(Reverse((t, _))) = self.timers.peek() {
            deadline = deadline.min(*t);
        }
        for entry in self.streams.values() {
            if let Some(t) = entry.sfu.poll_timeout() {
                deadline = deadline.min(t);
            }
        }
        deadline
    }

    fn mark_dirty(&mut self, id: PeerId) {
        if let Some(peer) = self.peers.get_mut(&id)
            && !peer.dirty
        {
            peer.dirty = true;
            self.dirty.push(id);
        }
    }

    fn on_datagram(&mut self, d: Datagram, now: Instant) {
        let Some(id) = self.demux.route(d.from, &d.data) else {
            return;
        };
        // The address the peer reached us on, as one of our announced candidates (behind NAT 1:1
        // the packet's destination is a private address the peer never saw).
        let local_ip = d
            .to_ip
            .filter(|ip| self.ips.contains(ip))
            .unwrap_or(self.ips[0]);
        let Some(peer) = self.peers.get_mut(&id) else {
            return;
        };
        peer.last_rx = now;
        let msg = TaggedBytesMut {
            now,
            transport: TransportContext {
                local_addr: SocketAddr::new(local_ip, self.port),
                peer_addr: d.from,
                ecn: None,
                transport_protocol: TransportProtocol::UDP,
            },
            message: d.data,
        };
        if let Err(e) = peer.pc.handle_read(msg) {
            tracing::debug!(session = %peer.session, error = %e, "peer rejected a datagram");
        }
        self.mark_dirty(id);
    }

    fn on_tcp(&mut self, event: TcpEvent, now: Instant) {
        match event {
            TcpEvent::Opened {
                peer,
                local,
                writer,
            } => {
                self.tcp_writers.insert(peer, (local, writer));
            }
            TcpEvent::Closed { peer } => {
                self.tcp_writers.remove(&peer);
            }
            TcpEvent::Frame { peer, data } => {
                let Some(local) = self.tcp_writers.get(&peer).map(|(l, _)| *l) else {
                    return;
                };
                let Some(id) = self.demux.route(peer, &data) else {
                    return;
                };
                let local_ip = Some(local.ip())
                    .filter(|ip| self.ips.contains(ip))
                    .unwrap_or(self.ips[0]);
                let Some(p) = self.peers.get_mut(&id) else {
                    return;
                };
                p.last_rx = now;
                let msg = TaggedBytesMut {
                    now,
                    transport: TransportContext {
                        local_addr: SocketAddr::new(local_ip, self.port),
                        peer_addr: peer,
                        ecn: None,
                        transport_protocol: TransportProtocol::TCP,
                    },
                    message: data,
                };
                if let Err(e) = p.pc.handle_read(msg) {
                    tracing::debug!(session = %p.session, error = %e, "peer rejected a TCP frame");
                }
                self.mark_dirty(id);
            }
        }
    }

    fn on_chat_out(&mut self, out: ChatOut, now: Instant) {
        match out {
            ChatOut::Send { session, text } => {
                let Some(id) = self.sessions.get(&session).copied() else {
                    return;
                };
                let Some(peer) = self.peers.get_mut(&id) else {
                    return;
                };
                let Some(channel) = peer.chat_channel else {
                    return;
                };
                let Some(mut dc) = peer.pc.data_channel(channel) else {
                    return;
                };
                if dc.outstanding_bytes() > MAX_CHAT_BUFFERED {
                    self.metrics.chat_dropped.increment(1);
                    return;
                }
                if dc.send_text(now, text.as_ref()).is_ok() && !peer.dirty {
                    peer.dirty = true;
                    self.dirty.push(id);
                }
            }
            ChatOut::Disconnect { session } => {
                if let Some(id) = self.sessions.get(&session).copied() {
                    tracing::info!(%session, "ending a session on the chat service's request");
                    self.remove_peer(id, now);
                }
            }
        }
    }

    /// Offer a message to the chat service without ever waiting for it.
    fn offer_to_chat(&mut self, msg: ChatIn) {
        if let Some(tx) = &self.chat_tx
            && tx.try_send(msg).is_err()
        {
            self.metrics.chat_dropped.increment(1);
        }
    }

    fn on_timers(&mut self, now: Instant) {
        while let Some(Reverse((t, id))) = self.timers.peek().copied() {
            if t > now {
                break;
            }
            self.timers.pop();
            let Some(peer) = self.peers.get_mut(&id) else {
                continue;
            };
            if peer.timeout != Some(t) {
                continue; // stale entry: the peer's deadline moved
            }
            peer.timeout = None;
            if let Err(e) = peer.pc.handle_timeout(now) {
                tracing::debug!(session = %peer.session, error = %e, "peer timeout error");
            }
            self.mark_dirty(id);
        }
        let due: Vec<String> = self
            .streams
            .iter()
            .filter(|(_, e)| e.sfu.poll_timeout().is_some_and(|t| t <= now))
            .map(|(name, _)| name.clone())
            .collect();
        for name in due {
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

    /// Drop peers that never connected, went silent, or failed.
    fn sweep(&mut self, now: Instant) {
        let handshake = self.config.handshake_timeout;
        let idle = self.config.idle_timeout;
        let dead: Vec<PeerId> = self
            .peers
            .iter()
            .filter(|(_, p)| {
                (!p.connected && now.duration_since(p.created) > handshake)
                    || (p.connected && now.duration_since(p.last_rx) > idle)
            })
            .map(|(id, _)| *id)
            .collect();
        self.metrics
            .fanout_dropped
            .increment(std::mem::take(&mut self.fanout.dropped));
        for entry in self.streams.values_mut() {
            if let Some(recording) = &mut entry.recording {
                self.metrics
                    .recorder_dropped
                    .increment(recording.new_drops());
            }
            if let Some(recording) = entry.recording.as_ref()
                && recording.take_keyframe_request()
            {
                match recording.video_ssrc() {
                    Some(ssrc) => entry.sfu.request_keyframe_on(ssrc, now),
                    None => entry.sfu.request_keyframe(now),
                }
            }
            if entry
                .recording
                .as_ref()
                .and_then(|r| r.idle_since)
                .is_some_and(|t| now.duration_since(t) > RECORDING_IDLE_GRACE)
                && let Some(recording) = entry.recording.take()
            {
                self.finishing.push(recording.finish());
            }
        }
        let drained: Vec<String> = self
            .streams
            .iter()
            .filter(|(_, e)| e.publisher.is_none() && e.viewers.is_empty() && e.recording.is_none())
            .map(|(name, _)| name.clone())
            .collect();
        for name in drained {
            self.streams.remove(&name);
        }
        self.finishing.retain(|h| !h.is_finished());
        let publishers = self
            .peers
            .values()
            .filter(|p| p.role == PeerRole::Publisher)
            .count();
        self.metrics.streams.set(self.streams.len() as f64);
        self.metrics.publishers.set(publishers as f64);
        self.metrics
            .viewers
            .set((self.peers.len() - publishers) as f64);
        let late: Vec<PeerId> = self
            .peers
            .iter()
            .filter(|(_, p)| p.live_deadline.is_some_and(|t| t <= now))
            .map(|(id, _)| *id)
            .collect();
        for id in late {
            self.go_live(id, now);
        }
        for id in dead {
            if let Some(p) = self.peers.get(&id) {
                tracing::info!(session = %p.session, stream = %p.stream, connected = p.connected, "dropping unresponsive peer");
                self.metrics.sessions_dropped.increment(1);
            }
            self.remove_peer(id, now);
        }
    }

    /// Process every dirty peer, then send what they queued. Returns when nothing is dirty.
    async fn flush(&mut self) {
        let now = Instant::now();
        while !self.dirty.is_empty() {
            let batch = std::mem::take(&mut self.dirty);
            for id in &batch {
                self.process_peer(*id, now);
            }
            if !self.fanout.outgoing.is_empty() {
                self.socket.send_many(&self.fanout.outgoing).await;
                self.fanout.outgoing.clear();
            }
            for id in batch {
                self.send_peer(id).await;
            }
        }
    }

    /// Drain a peer's events and inbound messages into the stream.
    fn process_peer(&mut self, id: PeerId, now: Instant) {
        let Some(peer) = self.peers.get_mut(&id) else {
            return;
        };
        let mut events = Vec::new();
        while let Some(ev) = peer.pc.poll_event() {
            events.push(ev);
        }
        // Whether this pass gave the stream's forwarding core anything (which may have
        // produced outputs). Most passes of a viewer only flush what was written to it.
        let mut fed = !events.is_empty();
        for ev in events {
            self.on_peer_event(id, ev, now);
        }

        let Some(peer) = self.peers.get_mut(&id) else {
            return;
        };
        let Some(entry) = self.streams.get_mut(&peer.stream) else {
            return;
        };
        let role = peer.role;
        let mut chat_in = Vec::new();
        while let Some(TaggedRTCMessage { message, .. }) = peer.pc.poll_read() {
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
                    self.metrics.packets_in.increment(1);
                    self.metrics
                        .bytes_in
                        .increment((packet.header.marshal_size() + packet.payload.len()) as u64);
                    if let Some(recording) = &entry.recording {
                        recording.push(&packet, now);
                    }
                    entry.sfu.on_rtp(id, packet, now);
                }
                RTCMessage::RtcpPacket(_, packets) => {
                    fed = true;
                    on_rtcp(entry, &self.metrics, id, role, &packets, now);
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
                let Some(peer) = self.peers.get_mut(&id) else {
                    return;
                };
                tracing::debug!(session = %peer.session, %state, "peer connection state");
                match state {
                    RTCPeerConnectionState::Connected if !peer.connected => {
                        peer.connected = true;
                        // Of the application's SRTP contexts only a viewer's send one is used
                        // (`open_leg`); free the others' key schedules now.
                        let _ = peer.pc.take_recv_srtp_context();
                        if peer.role == PeerRole::Publisher {
                            let _ = peer.pc.take_send_srtp_context();
                        }
                        self.metrics
                            .connect_seconds
                            .record(now.duration_since(peer.created).as_secs_f64());
                        tracing::info!(session = %peer.session, stream = %peer.stream, role = ?peer.role, "peer connected");
                        if peer.role == PeerRole::Viewer {
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
                            self.analytics.viewer_connected(&stream, id, who, now);
                            self.open_leg(id);
                            if let Some(entry) = self.streams.get_mut(&stream) {
                                entry.sfu.add_subscriber(id, tracks, now);
                            }
                        }
                    }
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
                let Some(peer) = self.peers.get_mut(&id) else {
                    return;
                };
                let is_chat = peer
                    .pc
                    .data_channel(channel)
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
            RTCPeerConnectionEvent::OnDataChannel(RTCDataChannelEvent::OnClose(channel)) => {
                let Some(peer) = self.peers.get_mut(&id) else {
                    return;
                };
                if peer.chat_channel == Some(channel) {
                    peer.chat_channel = None;
                    let session = peer.session.clone();
                    self.offer_to_chat(ChatIn::Closed { session });
                }
            }
            _ => {}
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
        let Some(peer) = self.peers.get_mut(&id) else {
            return;
        };
        if peer.role != PeerRole::Publisher {
            return;
        }
        let Some(mut receiver) = peer.pc.rtp_receiver(receiver_id) else {
            return;
        };
        let track = receiver.track();
        let kind = match track.kind() {
            RtpCodecKind::Audio => MediaKind::Audio,
            RtpCodecKind::Video => MediaKind::Video,
            _ => return,
        };
        let Some(rtc_codec) = track.codec(ssrc).cloned() else {
            return;
        };
        let Some(codec) = Codec::from_mime(&rtc_codec.mime_type) else {
            tracing::warn!(session = %peer.session, mime = %rtc_codec.mime_type, "publisher track with a codec we do not forward");
            return;
        };
        let extensions = receiver
            .get_parameters()
            .rtp_parameters
            .header_extensions
            .iter()
            .filter_map(|e| u8::try_from(e.id).ok().map(|i| (i, e.uri.clone())))
            .collect();
        let has_pli = rtc_codec
            .rtcp_feedback
            .iter()
            .any(|f| f.typ == "nack" && f.parameter == "pli");
        let has_fir = rtc_codec
            .rtcp_feedback
            .iter()
            .any(|f| f.typ == "ccm" && f.parameter == "fir");
        let keyframe_request = if !has_pli && has_fir {
            KeyframeRequestKind::Fir
        } else {
            KeyframeRequestKind::Pli
        };
        // A simulcast layer replaces only the layer of the same RID.
        let rid = rid.filter(|rid| !rid.is_empty() && kind == MediaKind::Video);
        peer.published
            .retain(|t| t.kind != kind || (rid.is_some() && t.rid.is_some() && t.rid != rid));
        let track = PublishedTrack {
            kind,
            codec,
            ssrc,
            keyframe_request,
            extensions,
            rid,
        };
        peer.published.push(track.clone());
        tracing::info!(session = %peer.session, stream = %peer.stream, ?kind, codec = codec.mime_type(), ssrc, rid = ?track.rid, "publisher track open");
        let stream = peer.stream.clone();
        if let Some(entry) = self.streams.get_mut(&stream)
            && entry.publisher == Some(id)
            && entry.live_announced
            && track.rid.is_some()
        {
            // A layer that started after the stream went live joins without disturbing anyone.
            entry.sfu.add_track(id, track, now);
            self.drain_stream(&stream, now);
            return;
        }
        let Some(peer) = self.peers.get_mut(&id) else {
            return;
        };
        if peer.published.len() >= peer.expected_tracks {
            self.go_live(id, now);
        } else {
            // Tracks open on their first packet; give the others a moment so the stream starts
            // once with all of them rather than once per track.
            peer.live_deadline.get_or_insert(now + TRACK_OPEN_GRACE);
        }
    }

    /// Hand the publisher's tracks to the stream's forwarding core and announce it live.
    fn go_live(&mut self, id: PeerId, now: Instant) {
        let Some(peer) = self.peers.get_mut(&id) else {
            return;
        };
        peer.live_deadline = None;
        let tracks = peer.published.clone();
        let stream = peer.stream.clone();
        if let Some(entry) = self.streams.get_mut(&stream)
            && entry.publisher == Some(id)
        {
            entry.sfu.set_publisher(id, tracks.clone(), now);
            entry.live_announced = true;
            let recorded = recorded_tracks(&tracks, entry.sfu.top_video_ssrc());
            let record = self
                .record_overrides
                .get(&stream)
                .copied()
                .unwrap_or(self.config.record_by_default);
            match (&mut entry.recording, &self.config.recordings) {
                (Some(recording), _) => recording.publisher_changed(&recorded, now),
                (None, Some(dir)) if record => {
                    match StreamRecording::start(dir, &stream, &recorded, now) {
                        Ok(recording) => entry.recording = Some(recording),
                        Err(e) => tracing::error!(%stream, error = %e, "cannot start recording"),
                    }
                }
                _ => {}
            }
            let info = stream_info(&stream, entry);
            let _ = self.events.send(EngineEvent::Live(info));
            let viewers = entry.viewers.clone();
            for viewer in viewers {
                self.renegotiate(viewer, &tracks, now);
            }
        }
    }

    /// Offer a viewer the published kinds its session lacks (server-initiated renegotiation).
    fn renegotiate(&mut self, id: PeerId, tracks: &[PublishedTrack], now: Instant) {
        let Some(peer) = self.peers.get_mut(&id) else {
            return;
        };
        let mut missing: Vec<&PublishedTrack> = tracks
            .iter()
            .filter(|t| !peer.senders.iter().any(|s| s.kind == t.kind))
            .collect();
        // One sender per kind, whatever the number of simulcast layers.
        missing.dedup_by_key(|t| t.kind);
        if missing.is_empty() || peer.closing {
            return;
        }
        for track in missing {
            if let Err(e) = add_sender(peer, track.kind, track.codec) {
                tracing::warn!(session = %peer.session, error = %e, "cannot add a track for renegotiation");
                return;
            }
        }
        let offer = match peer.pc.create_offer(None) {
            Ok(offer) => offer,
            Err(e) => {
                tracing::warn!(session = %peer.session, error = %e, "cannot create a renegotiation offer");
                return;
            }
        };
        if let Err(e) = peer.pc.set_local_description(now, offer) {
            tracing::warn!(session = %peer.session, error = %e, "cannot apply a renegotiation offer");
            return;
        }
        if let Some(sdp) = peer.pc.local_description().map(|d| d.sdp) {
            tracing::info!(session = %peer.session, "renegotiating: offering the new tracks");
            let _ = self.events.send(EngineEvent::SessionOffer {
                session: peer.session.clone(),
                sdp,
            });
        }
    }

    /// Apply a client's answer to a server offer; a connected viewer is re-subscribed with
    /// its new tracks.
    fn apply_answer(&mut self, session: &str, sdp: String, now: Instant) -> Result<(), MediaError> {
        let id = *self
            .sessions
            .get(session)
            .ok_or_else(|| MediaError::SessionNotFound(session.to_owned()))?;
        let peer = self
            .peers
            .get_mut(&id)
            .ok_or_else(|| MediaError::SessionNotFound(session.to_owned()))?;
        let answer = RTCSessionDescription::answer(sdp)
            .map_err(|e| MediaError::InvalidSdp(e.to_string()))?;
        peer.pc
            .set_remote_description(now, answer)
            .map_err(|e| MediaError::InvalidSdp(e.to_string()))?;
        if peer.connected && peer.role == PeerRole::Viewer {
            let tracks = peer.down_tracks();
            if let Some(entry) = self.streams.get_mut(&peer.stream) {
                entry.sfu.add_subscriber(id, tracks, now);
            }
        }
        self.mark_dirty(id);
        Ok(())
    }

    /// Apply everything the stream's forwarding core emitted.
    fn drain_stream(&mut self, stream: &str, now: Instant) {
        let Some(entry) = self.streams.get_mut(stream) else {
            return;
        };
        while let Some(output) = entry.sfu.poll_output() {
            match output {
                Output::Rtp {
                    subscriber,
                    packet,
                    kind,
                } => {
                    self.metrics.packets_out.increment(1);
                    if let Some(peer) = self.peers.get_mut(&subscriber) {
                        if kind == MediaKind::Video && !peer.joined {
                            // Join time: WHEP/WS offer to the first video packet (a keyframe).
                            peer.joined = true;
                            self.metrics
                                .join_seconds
                                .record(now.duration_since(peer.created).as_secs_f64());
                        }
                        let Err(packet) = self.fanout.push(subscriber, packet) else {
                            continue;
                        };
                        let msg = TaggedRTCMessage {
                            now,
                            message: RTCMessage::RtpPacket(String::new(), packet),
                        };
                        if peer.pc.handle_write(msg).is_ok() && !peer.dirty {
                            peer.dirty = true;
                            self.dirty.push(subscriber);
                        }
                    }
                }
                Output::SenderReport { subscriber, report } => {
                    if let Some(peer) = self.peers.get_mut(&subscriber) {
                        let msg = TaggedRTCMessage {
                            now,
                            message: RTCMessage::RtcpPacket(String::new(), vec![Box::new(report)]),
                        };
                        if peer.pc.handle_write(msg).is_ok() && !peer.dirty {
                            peer.dirty = true;
                            self.dirty.push(subscriber);
                        }
                    }
                }
                Output::KeyframeRequest {
                    publisher,
                    ssrc,
                    kind,
                    fir_seq,
                } => {
                    if let Some(peer) = self.peers.get_mut(&publisher) {
                        let packet: Box<dyn rtc::rtcp::Packet> = match kind {
                            KeyframeRequestKind::Pli => Box::new(PictureLossIndication {
                                sender_ssrc: 0,
                                media_ssrc: ssrc,
                            }),
                            KeyframeRequestKind::Fir => Box::new(FullIntraRequest {
                                sender_ssrc: 0,
                                media_ssrc: ssrc,
                                fir: vec![FirEntry {
                                    ssrc,
                                    sequence_number: fir_seq,
                                }],
                            }),
                        };
                        tracing::debug!(session = %peer.session, ssrc, ?kind, "keyframe request to publisher");
                        self.metrics.keyframe_requests.increment(1);
                        let msg = TaggedRTCMessage {
                            now,
                            message: RTCMessage::RtcpPacket(String::new(), vec![packet]),
                        };
                        if peer.pc.handle_write(msg).is_ok() && !peer.dirty {
                            peer.dirty = true;
                            self.dirty.push(publisher);
                        }
                    }
                }
                Output::CodecMismatch { subscriber, codec } => {
                    if let Some(peer) = self.peers.get(&subscriber) {
                        let error = format!(
                            "this stream is sent as {}, which your client did not offer to receive",
                            codec.mime_type()
                        );
                        tracing::info!(session = %peer.session, %error, "viewer cannot decode the stream");
                        let _ = self.events.send(EngineEvent::SessionError {
                            session: peer.session.clone(),
                            error,
                            code: ErrorCode::UnsupportedCodec,
                        });
                    }
                }
            }
        }
        self.fanout.dispatch();
    }

    /// Where a viewer's forwarded packets go, given its connection's selected transport.
    fn destination(&self, transport: &TransportContext) -> Option<Destination> {
        match transport.transport_protocol {
            TransportProtocol::UDP => {
                // Pin the source address only on a socket bound to every address, and only where
                // it is one of ours (not a NAT 1:1 address).
                let local_ip = transport.local_addr.ip();
                let pin = self.config.bind.ip().is_unspecified()
                    && self.interface_ips.contains(&local_ip);
                Some(Destination::Udp {
                    to: transport.peer_addr,
                    from: pin.then_some(local_ip),
                })
            }
            TransportProtocol::TCP => self
                .tcp_writers
                .get(&transport.peer_addr)
                .map(|(_, writer)| Destination::Tcp(writer.clone())),
            _ => None,
        }
    }

    /// Give a connected viewer its send leg (forwarded RTP then bypasses its `rtc` pipeline).
    fn open_leg(&mut self, id: PeerId) {
        let Some(peer) = self.peers.get_mut(&id) else {
            return;
        };
        let Some(transport) = peer.pc.selected_transport() else {
            return;
        };
        let Some(srtp) = peer.pc.take_send_srtp_context() else {
            return;
        };
        peer.sending_to = Some(transport);
        if let Some(destination) = self.destination(&transport) {
            self.fanout.add(id, Leg::new(srtp, destination));
        }
    }

    /// Follow viewers whose ICE-selected address changed (a new network, a nominated pair).
    fn retarget_legs(&mut self) {
        let mut moved = Vec::new();
        for (id, peer) in &self.peers {
            if let Some(current) = peer.sending_to
                && let Some(selected) = peer.pc.selected_transport()
                && selected != current
            {
                moved.push((*id, selected));
            }
        }
        for (id, transport) in moved {
            if let Some(peer) = self.peers.get_mut(&id) {
                peer.sending_to = Some(transport);
            }
            match self.destination(&transport) {
                Some(destination) => self.fanout.retarget(id, destination),
                None => self.fanout.remove(id),
            }
        }
    }

    /// Send everything a peer queued, and re-arm its timer.
    async fn send_peer(&mut self, id: PeerId) {
        let Some(peer) = self.peers.get_mut(&id) else {
            return;
        };
        peer.dirty = false;
        while let Some(out) = peer.pc.poll_write() {
            if out.transport.transport_protocol == TransportProtocol::TCP {
                if let Some((_, writer)) = self.tcp_writers.get(&out.transport.peer_addr) {
                    // A full queue means a slow TCP path: drop, as UDP would.
                    let _ = writer.try_send(out.message.to_vec());
                }
                continue;
            }
            // Pin the source address only where it is one of ours (not a NAT 1:1 public address).
            let local_ip = out.transport.local_addr.ip();
            let from = self.interface_ips.contains(&local_ip).then_some(local_ip);
            self.socket
                .send(out.transport.peer_addr, from, &out.message)
                .await;
        }
        let next = peer.pc.poll_timeout();
        if next != peer.timeout {
            peer.timeout = next;
            if let Some(t) = next {
                self.timers.push(Reverse((t, id)));
            }
        }
        if peer.closing {
            self.forget_peer(id);
        }
    }

    fn on_command(&mut self, cmd: Command) -> bool {
        let now = Instant::now();
        match cmd {
            Command::Publish {
                stream,
                offer,
                identity,
                reply,
            } => {
                let result = self.publish(stream, &offer, identity, now);
                let _ = reply.send(result);
            }
            Command::Watch {
                stream,
                offer,
                identity,
                quality,
                reply,
            } => {
                let result = self.watch(stream, &offer, identity, quality, now);
                let _ = reply.send(result);
            }
            Command::SetQuality {
                session,
                quality,
                reply,
            } => {
                let result = match self.sessions.get(&session).copied() {
                    Some(id) => {
                        let stream = self.peers.get_mut(&id).map(|peer| {
                            peer.quality = quality;
                            peer.stream.clone()
                        });
                        if let Some(stream) = stream
                            && let Some(entry) = self.streams.get_mut(&stream)
                        {
                            entry.sfu.set_quality(id, quality, now);
                            self.drain_stream(&stream, now);
                        }
                        Ok(())
                    }
                    None => Err(MediaError::SessionNotFound(session)),
                };
                let _ = reply.send(result);
            }
            Command::Close { session, reply } => {
                let result = match self.sessions.get(&session).copied() {
                    Some(id) => {
                        let stream = self.peers.get(&id).map(|p| p.stream.clone());
                        self.remove_peer(id, now);
                        Ok(stream.unwrap_or_default())
                    }
                    None => Err(MediaError::SessionNotFound(session)),
                };
                let _ = reply.send(result);
            }
            Command::Streams { reply } => {
                let mut list: Vec<StreamInfo> = self
                    .streams
                    .iter()
                    .map(|(name, entry)| stream_info(name, entry))
                    .collect();
                list.sort_by(|a, b| a.name.cmp(&b.name));
                let _ = reply.send(list);
            }
            Command::Audience { stream, reply } => {
                let _ = reply.send(self.analytics.stats(&stream, now));
            }
            Command::Sessions { stream, reply } => {
                let sessions = self
                    .peers
                    .values()
                    .filter(|p| p.stream == stream && !p.closing)
                    .map(|p| SessionInfo {
                        session: p.session.clone(),
                        role: match p.role {
                            PeerRole::Publisher => signaling_proto::Role::Publisher,
                            PeerRole::Viewer => signaling_proto::Role::Viewer,
                        },
                        name: p.identity.name.clone(),
                        moderator: p.identity.moderator,
                        connected: p.connected,
                        seconds: now.duration_since(p.created).as_secs_f64(),
                    })
                    .collect();
                let _ = reply.send(sessions);
            }
            Command::EndStream { stream, reply } => {
                let ids: Vec<PeerId> = self
                    .peers
                    .iter()
                    .filter(|(_, p)| p.stream == stream)
                    .map(|(id, _)| *id)
                    .collect();
                let count = ids.len();
                for id in ids {
                    self.remove_peer(id, now);
                }
                let _ = reply.send(count);
            }
            Command::Answer {
                session,
                sdp,
                reply,
            } => {
                let result = self.apply_answer(&session, sdp, now);
                let _ = reply.send(result);
            }
            Command::SetRecording {
                stream,
                enabled,
                reply,
            } => {
                self.record_overrides.insert(stream.clone(), enabled);
                self.set_recording(&stream, enabled, now);
                let _ = reply.send(());
            }
            Command::Shutdown { reply } => {
                self.close_all();
                self.shutting_down = true;
                // Finish every recording (Cues, Duration) before saying we are done.
                for entry in self.streams.values_mut() {
                    if let Some(recording) = entry.recording.take() {
                        self.finishing.push(recording.finish());
                    }
                }
                for handle in self.finishing.drain(..) {
                    let _ = handle.join();
                }
                let _ = reply.send(());
                return true;
            }
        }
        false
    }

    /// Start or stop recording a stream now (the admin switch).
    fn set_recording(&mut self, stream: &str, enabled: bool, now: Instant) {
        let Some(entry) = self.streams.get_mut(stream) else {
            return;
        };
        if !enabled {
            if let Some(recording) = entry.recording.take() {
                self.finishing.push(recording.finish());
            }
            return;
        }
        let (Some(dir), None, Some(publisher)) =
            (&self.config.recordings, &entry.recording, entry.publisher)
        else {
            return;
        };
        let Some(tracks) = self.peers.get(&publisher).map(|p| p.published.clone()) else {
            return;
        };
        if tracks.is_empty() {
            return;
        }
        let tracks = recorded_tracks(&tracks, entry.sfu.top_video_ssrc());
        match StreamRecording::start(dir, stream, &tracks, now) {
            Ok(recording) => {
                match recording.video_ssrc() {
                    Some(ssrc) => entry.sfu.request_keyframe_on(ssrc, now),
                    None => entry.sfu.request_keyframe(now),
                }
                entry.recording = Some(recording);
            }
            Err(e) => tracing::error!(%stream, error = %e, "cannot start recording"),
        }
    }

    fn close_all(&mut self) {
        let ids: Vec<PeerId> = self.peers.keys().copied().collect();
        let now = Instant::now();
        for id in ids {
            self.remove_peer(id, now);
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
        if !self.streams.contains_key(stream) && self.streams.len() >= limits.max_streams {
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
        if let Some(origin) = &identity.origin {
            let open = self
                .peers
                .values()
                .filter(|p| !p.closing && p.identity.origin.as_ref() == Some(origin))
                .count();
            if open >= limits.max_sessions_per_ip {
                return Err(MediaError::TooManySessions(format!(
                    "your address has {open} sessions open, the limit is {}",
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
    ) -> Result<(PeerId, Peer), MediaError> {
        let setup = PeerSetup {
            ufrag: random_string(16),
            pwd: random_string(32),
        };
        let pc = build_peer_connection(role, &setup, now)?;
        let id = self.next_id;
        self.next_id += 1;
        Ok((
            id,
            Peer {
                session: uuid::Uuid::new_v4().simple().to_string(),
                stream: stream.to_owned(),
                role,
                ufrag: setup.ufrag,
                pc,
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
            },
        ))
    }

    /// Apply the offer, add our candidates and produce the answer.
    fn negotiate(&self, peer: &mut Peer, offer: &str, now: Instant) -> Result<String, MediaError> {
        let description = RTCSessionDescription::offer(offer.to_owned())
            .map_err(|e| MediaError::InvalidSdp(e.to_string()))?;
        peer.pc
            .set_remote_description(now, description)
            .map_err(|e| MediaError::InvalidSdp(e.to_string()))?;
        for ip in &self.ips {
            let candidate = CandidateHostConfig {
                base_config: CandidateConfig {
                    network: "udp".to_owned(),
                    address: ip.to_string(),
                    port: self.port,
                    component: 1,
                    ..Default::default()
                },
                ..Default::default()
            }
            .new_candidate_host()?;
            peer.pc
                .add_local_candidate(RTCIceCandidate::from(&candidate).to_json()?)?;
            if self.tcp_enabled {
                let candidate = CandidateHostConfig {
                    base_config: CandidateConfig {
                        network: "tcp".to_owned(),
                        address: ip.to_string(),
                        port: self.port,
                        component: 1,
                        ..Default::default()
                    },
                    tcp_type: rtc::ice::tcp_type::TcpType::Passive,
                }
                .new_candidate_host()?;
                peer.pc
                    .add_local_candidate(RTCIceCandidate::from(&candidate).to_json()?)?;
            }
        }
        peer.pc
            .add_local_candidate(RTCIceCandidateInit::default())?;
        let answer = peer.pc.create_answer(None)?;
        peer.pc.set_local_description(now, answer)?;
        tracing::debug!(session = %peer.session, offer, "offer");
        peer.pc
            .local_description()
            .map(|d| d.sdp)
            .ok_or_else(|| MediaError::Internal("no local description after answering".into()))
    }

    fn register(&mut self, id: PeerId, peer: Peer, sdp: String) -> SessionAnswer {
        tracing::debug!(session = %peer.session, answer = %sdp, "answer");
        self.demux.add_peer(&peer.ufrag, id);
        self.sessions.insert(peer.session.clone(), id);
        let answer = SessionAnswer {
            session: peer.session.clone(),
            sdp,
        };
        self.peers.insert(id, Box::new(peer));
        self.mark_dirty(id);
        answer
    }

    fn publish(
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
        let current = self.streams.get(&stream).and_then(|e| e.publisher);
        if let Some(old) = current {
            let alive = self.peers.get(&old).is_some_and(|p| {
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
        let (id, mut peer) = self.new_peer(PeerRole::Publisher, &stream, now)?;
        peer.identity = identity;
        peer.expected_tracks = usize::from(summary.audio.is_some())
            + if summary.video.is_some() {
                summary.video_layers.max(1)
            } else {
                0
            };
        let sdp = self.negotiate(&mut peer, offer, now)?;
        tracing::info!(session = %peer.session, %stream, "publisher session created");
        let answer = self.register(id, peer, sdp);
        self.streams
            .entry(stream)
            .or_insert_with(StreamEntry::new)
            .publisher = Some(id);
        Ok(answer)
    }

    fn watch(
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
        let published: Vec<PublishedTrack> = self
            .streams
            .get(&stream)
            .and_then(|e| e.publisher)
            .and_then(|p| self.peers.get(&p))
            .map(|p| p.published.clone())
            .unwrap_or_default();
        let (id, mut peer) = self.new_peer(PeerRole::Viewer, &stream, now)?;
        peer.identity = identity;
        peer.quality = quality;
        self.add_viewer_tracks(&mut peer, &summary, &published)?;
        let sdp = self.negotiate(&mut peer, offer, now)?;
        tracing::info!(session = %peer.session, %stream, "viewer session created");
        let answer = self.register(id, peer, sdp);
        self.streams
            .entry(stream.clone())
            .or_insert_with(StreamEntry::new)
            .viewers
            .push(id);
        self.announce_viewers(&stream);
        Ok(answer)
    }

    /// One send-only track per kind the viewer offered, in the publisher's codec when live.
    fn add_viewer_tracks(
        &self,
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
            add_sender(peer, kind, codec)?;
        }
        Ok(())
    }

    /// Close a peer and take it out of its stream; the stream entry goes when it is empty.
    fn remove_peer(&mut self, id: PeerId, now: Instant) {
        let stream = self.peers.get(&id).map(|p| p.stream.clone());
        self.remove_peer_keep_stream(id, now);
        if let Some(stream) = stream
            && let Some(entry) = self.streams.get(&stream)
            && entry.publisher.is_none()
            && entry.viewers.is_empty()
            && entry.recording.is_none()
        {
            self.streams.remove(&stream);
        }
    }

    fn remove_peer_keep_stream(&mut self, id: PeerId, now: Instant) {
        let Some(peer) = self.peers.get_mut(&id) else {
            return;
        };
        if peer.closing {
            return;
        }
        peer.closing = true;
        self.fanout.remove(id);
        // Queues the DTLS close_notify; send_peer delivers it and then forgets the peer.
        let _ = peer.pc.close();
        if !peer.dirty {
            peer.dirty = true;
            self.dirty.push(id);
        }
        let stream = peer.stream.clone();
        let role = peer.role;
        let session = peer.session.clone();
        if peer.chat_channel.take().is_some() {
            self.offer_to_chat(ChatIn::Closed {
                session: session.clone(),
            });
        }
        let _ = self.events.send(EngineEvent::SessionClosed { session });
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
                    if entry.live_announced {
                        entry.live_announced = false;
                        let _ = self.events.send(EngineEvent::Offline {
                            stream: stream.clone(),
                        });
                    }
                }
            }
            PeerRole::Viewer => {
                self.analytics.viewer_left(&stream, id, now);
                entry.viewers.retain(|v| *v != id);
                entry.sfu.remove_subscriber(id);
                self.announce_viewers(&stream);
            }
        }
    }

    /// Drop a closed peer's bookkeeping once its last datagrams went out.
    fn forget_peer(&mut self, id: PeerId) {
        if let Some(peer) = self.peers.remove(&id) {
            self.demux.remove_peer(&peer.ufrag, id);
            self.sessions.remove(&peer.session);
            tracing::debug!(session = %peer.session, "peer forgotten");
        }
    }

    fn announce_viewers(&self, stream: &str) {
        if let Some(entry) = self.streams.get(stream) {
            let _ = self.events.send(EngineEvent::Viewers {
                stream: stream.to_owned(),
                count: entry.viewers.len(),
            });
        }
    }
}

/// What a recording keeps of the publisher's tracks: audio and the largest video layer.
fn recorded_tracks(published: &[PublishedTrack], top_video: Option<u32>) -> Vec<PublishedTrack> {
    published
        .iter()
        .filter(|t| t.kind == MediaKind::Audio || top_video.is_none_or(|ssrc| t.ssrc == ssrc))
        .cloned()
        .collect()
}

/// Add one send-only track of `kind` in `codec` to a viewer's peer connection.
fn add_sender(peer: &mut Peer, kind: MediaKind, codec: Codec) -> Result<(), MediaError> {
    let ssrc = rand::rng().random::<u32>();
    let track = MediaStreamTrack::new(
        format!("directo-{}", peer.stream),
        format!("{}-{}", kind_name(kind), peer.session),
        kind_name(kind).to_owned(),
        rtc_kind(kind),
        vec![RTCRtpEncodingParameters {
            rtp_coding_parameters: RTCRtpCodingParameters {
                ssrc: Some(ssrc),
                ..Default::default()
            },
            codec: rtc_codec(codec),
            active: true,
            ..Default::default()
        }],
    );
    let sender = peer.pc.add_track(track)?;
    peer.senders.push(Sender {
        kind,
        id: sender,
        ssrc,
    });
    Ok(())
}

fn stream_info(name: &str, entry: &StreamEntry) -> StreamInfo {
    let stats = entry.sfu.stats();
    let mut tracks: Vec<TrackInfo> = Vec::new();
    for track in entry.sfu.tracks() {
        let kind = kind_name(track.kind);
        // Simulcast layers are one track with layers.
        if tracks.iter().any(|t| t.kind == kind) {
            continue;
        }
        let layers = if track.rid.is_some() {
            entry
                .sfu
                .video_layers()
                .into_iter()
                .filter_map(|(rid, _, _)| rid)
                .collect()
        } else {
            Vec::new()
        };
        tracks.push(TrackInfo {
            kind: kind.to_owned(),
            codec: track.codec.mime_type().to_owned(),
            layers,
        });
    }
    StreamInfo {
        name: name.to_owned(),
        live: entry.publisher.is_some() && !tracks.is_empty(),
        tracks,
        viewers: entry.viewers.len(),
        bitrate_bps: stats.incoming_bitrate_bps,
        recording: entry.recording.is_some(),
    }
}

/// RTCP from peer `id` (decrypted, parsed): what the stream acts on.
fn on_rtcp(
    entry: &mut StreamEntry,
    metrics: &EngineMetrics,
    id: PeerId,
    role: PeerRole,
    packets: &[Box<dyn rtc::rtcp::Packet>],
    now: Instant,
) {
    for packet in packets {
        let any = packet.as_any();
        if let Some(sr) = any.downcast_ref::<SenderReport>() {
            if role == PeerRole::Publisher {
                entry
                    .sfu
                    .on_sender_report(id, sr.ssrc, sr.ntp_time, sr.rtp_time, now);
                if let Some(recording) = &entry.recording {
                    recording.sender_report(sr.ssrc, sr.ntp_time, sr.rtp_time, now);
                }
            }
        } else if let Some(nack) = any.downcast_ref::<TransportLayerNack>() {
            if role == PeerRole::Viewer {
                let mut lost = Vec::new();
                for pair in &nack.nacks {
                    lost.extend(pair.packet_list());
                }
                metrics.nacks.increment(lost.len() as u64);
                entry.sfu.on_nack(id, nack.media_ssrc, &lost, now);
            }
        } else if (any.is::<PictureLossIndication>() || any.is::<FullIntraRequest>())
            && role == PeerRole::Viewer
        {
            entry.sfu.on_keyframe_request(id, now);
        } else if let Some(rr) = any.downcast_ref::<ReceiverReport>() {
            if role == PeerRole::Viewer {
                for report in &rr.reports {
                    entry
                        .sfu
                        .on_receiver_report(id, report.ssrc, report.fraction_lost, now);
                }
            }
        } else if let Some(remb) = any.downcast_ref::<ReceiverEstimatedMaximumBitrate>()
            && role == PeerRole::Viewer
        {
            entry.sfu.on_remb(id, remb.bitrate as u64, now);
        } else if let Some(feedback) = any.downcast_ref::<TransportLayerCc>()
            && role == PeerRole::Viewer
        {
            entry.sfu.on_transport_feedback(id, feedback, now);
        }
    }
}
