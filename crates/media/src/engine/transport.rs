//! The engine's network side: the shared UDP socket, the ICE-TCP connections on the same port
//! number, the addresses announced as candidates, and how a peer's transport (as `rtc` sees
//! it) maps to a place to send.
//!
//! It does not know peers: it turns datagrams into `rtc` transport contexts and back.

use bytes::BytesMut;
use rtc::peer_connection::transport::{
    CandidateConfig, CandidateHostConfig, RTCIceCandidate, RTCIceCandidateInit,
};
use rtc::shared::{TaggedBytesMut, TransportContext, TransportProtocol};
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use tokio::sync::mpsc;

use crate::fanout::Destination;
use crate::handle::MediaConfig;
use crate::socket::{Datagram, MediaSocket};
use crate::tcp::TcpEvent;

/// Sockets, announced addresses and ICE-TCP connections.
pub(crate) struct Transport {
    pub(crate) socket: MediaSocket,
    port: u16,
    /// The addresses announced as host candidates.
    ips: Vec<IpAddr>,
    /// This machine's own addresses (a source address may only be pinned to one of these).
    interface_ips: Vec<IpAddr>,
    /// Whether the socket is bound to every address (then the source address is pinned).
    bound_to_any: bool,
    /// Whether the TCP media port is open (ICE-TCP candidates are offered).
    pub(crate) tcp_enabled: bool,
    /// ICE-TCP connections by remote address: their local address and their writer.
    tcp: HashMap<SocketAddr, (SocketAddr, mpsc::Sender<Vec<u8>>)>,
}

impl Transport {
    pub(crate) fn new(config: &MediaConfig, socket: MediaSocket, local_addr: SocketAddr) -> Self {
        Transport {
            socket,
            port: local_addr.port(),
            ips: candidate_ips(config),
            interface_ips: if_addrs::get_if_addrs()
                .map(|ifs| ifs.into_iter().map(|i| i.ip()).collect())
                .unwrap_or_default(),
            bound_to_any: config.bind.ip().is_unspecified(),
            tcp_enabled: false,
            tcp: HashMap::new(),
        }
    }

    /// The addresses announced as host candidates.
    pub(crate) fn ips(&self) -> &[IpAddr] {
        &self.ips
    }

    /// The announced address a peer reached us on (behind NAT 1:1 the packet's destination
    /// is a private address the peer never saw: then the first announced one).
    fn announced(&self, to: Option<IpAddr>) -> IpAddr {
        to.filter(|ip| self.ips.contains(ip)).unwrap_or(self.ips[0])
    }

    /// The transport of a datagram that arrived on the UDP socket.
    pub(crate) fn udp_context(&self, d: &Datagram) -> TransportContext {
        TransportContext {
            local_addr: SocketAddr::new(self.announced(d.to_ip), self.port),
            peer_addr: d.from,
            ecn: None,
            transport_protocol: TransportProtocol::UDP,
        }
    }

    /// Track ICE-TCP connections; a frame comes back with its transport for routing.
    pub(crate) fn on_tcp(&mut self, event: TcpEvent) -> Option<(TransportContext, BytesMut)> {
        match event {
            TcpEvent::Opened {
                peer,
                local,
                writer,
            } => {
                self.tcp.insert(peer, (local, writer));
                None
            }
            TcpEvent::Closed { peer } => {
                self.tcp.remove(&peer);
                None
            }
            TcpEvent::Frame { peer, data } => {
                let (local, _) = self.tcp.get(&peer)?;
                let context = TransportContext {
                    local_addr: SocketAddr::new(self.announced(Some(local.ip())), self.port),
                    peer_addr: peer,
                    ecn: None,
                    transport_protocol: TransportProtocol::TCP,
                };
                Some((context, data))
            }
        }
    }

    /// Where a viewer's forwarded packets go, given its connection's selected transport:
    /// `Unreachable` while an ICE-TCP connection it selected is not (or no longer) open.
    pub(crate) fn destination(&self, transport: &TransportContext) -> Destination {
        match transport.transport_protocol {
            TransportProtocol::UDP => Destination::Udp {
                to: transport.peer_addr,
                from: self.pinned_source(transport.local_addr.ip()),
            },
            TransportProtocol::TCP => self
                .tcp
                .get(&transport.peer_addr)
                .map_or(Destination::Unreachable, |(_, writer)| {
                    Destination::Tcp(writer.clone())
                }),
            _ => Destination::Unreachable,
        }
    }

    /// The source address to pin a UDP send to: only on a socket bound to every address, and
    /// only where it is one of ours (not a NAT 1:1 public address).
    fn pinned_source(&self, local: IpAddr) -> Option<IpAddr> {
        (self.bound_to_any && self.interface_ips.contains(&local)).then_some(local)
    }

    /// Send one datagram a peer's connection produced (DTLS, ICE, SCTP, RTCP).
    pub(crate) async fn send(&self, out: TaggedBytesMut) {
        if out.transport.transport_protocol == TransportProtocol::TCP {
            if let Some((_, writer)) = self.tcp.get(&out.transport.peer_addr) {
                // A full queue means a slow TCP path: drop, as UDP would.
                let _ = writer.try_send(out.message.to_vec());
            }
            return;
        }
        let local = out.transport.local_addr.ip();
        let from = self.interface_ips.contains(&local).then_some(local);
        self.socket
            .send(out.transport.peer_addr, from, &out.message)
            .await;
    }

    /// Our host candidates for an answer: UDP on every announced address, and passive
    /// ICE-TCP on the same port where the TCP listener is open; then end-of-candidates.
    pub(crate) fn candidates(&self) -> Result<Vec<RTCIceCandidateInit>, rtc::shared::error::Error> {
        let mut out = Vec::new();
        for ip in &self.ips {
            let base = |network: &str| CandidateConfig {
                network: network.to_owned(),
                address: ip.to_string(),
                port: self.port,
                component: 1,
                ..Default::default()
            };
            let udp = CandidateHostConfig {
                base_config: base("udp"),
                ..Default::default()
            }
            .new_candidate_host()?;
            out.push(RTCIceCandidate::from(&udp).to_json()?);
            if self.tcp_enabled {
                let tcp = CandidateHostConfig {
                    base_config: base("tcp"),
                    tcp_type: rtc::ice::tcp_type::TcpType::Passive,
                }
                .new_candidate_host()?;
                out.push(RTCIceCandidate::from(&tcp).to_json()?);
            }
        }
        out.push(RTCIceCandidateInit::default());
        Ok(out)
    }
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
