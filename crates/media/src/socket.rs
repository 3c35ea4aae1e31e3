//! The one UDP socket every peer shares, read and written in batches through `quinn-udp`.
//!
//! Reads take up to `quinn_udp::BATCH_SIZE` datagrams per system call (`recvmmsg`, GRO where
//! the kernel offers it) and learn each datagram's destination address, so a server bound to
//! `0.0.0.0` still knows which of its addresses a peer used.

use bytes::BytesMut;
use quinn_udp::{RecvMeta, Transmit, UdpSocketState};
use std::io::{self, IoSliceMut};
use std::net::{IpAddr, SocketAddr};
use tokio::io::Interest;
use tokio::net::UdpSocket;

/// Room for one datagram (a GRO batch may hold several segments of `stride` bytes).
const BUF_SIZE: usize = 64 * 1024;

/// One received datagram.
pub(crate) struct Datagram {
    pub(crate) from: SocketAddr,
    pub(crate) to_ip: Option<IpAddr>,
    pub(crate) data: BytesMut,
}

/// The shared media socket.
pub(crate) struct MediaSocket {
    io: UdpSocket,
    state: UdpSocketState,
    bufs: Vec<Vec<u8>>,
    metas: Vec<RecvMeta>,
}

impl MediaSocket {
    /// Bind `addr` for batched I/O.
    pub(crate) fn bind(addr: SocketAddr) -> io::Result<Self> {
        let std_socket = std::net::UdpSocket::bind(addr)?;
        std_socket.set_nonblocking(true)?;
        let state = UdpSocketState::new((&std_socket).into())?;
        // Large buffers absorb the burst of a keyframe fanned out to many viewers.
        let _ = state.set_send_buffer_size((&std_socket).into(), 8 * 1024 * 1024);
        let _ = state.set_recv_buffer_size((&std_socket).into(), 8 * 1024 * 1024);
        let io = UdpSocket::from_std(std_socket)?;
        let batch = quinn_udp::BATCH_SIZE.max(1);
        Ok(MediaSocket {
            io,
            state,
            bufs: (0..batch).map(|_| vec![0u8; BUF_SIZE]).collect(),
            metas: vec![RecvMeta::default(); batch],
        })
    }

    /// A second, blocking-capable handle on the same socket (same port and options), for a
    /// thread that sends without the engine's runtime.
    pub(crate) fn try_clone_std(&self) -> io::Result<std::net::UdpSocket> {
        Ok(socket2::SockRef::from(&self.io).try_clone()?.into())
    }

    /// The bound address.
    pub(crate) fn local_addr(&self) -> io::Result<SocketAddr> {
        self.io.local_addr()
    }

    /// Wait until datagrams can be read.
    pub(crate) async fn readable(&self) -> io::Result<()> {
        self.io.readable().await
    }

    /// Read every datagram waiting now (one batch), appending to `out`. Returns how many.
    pub(crate) fn try_recv(&mut self, out: &mut Vec<Datagram>) -> io::Result<usize> {
        let MediaSocket {
            io,
            state,
            bufs,
            metas,
        } = self;
        let mut slices: Vec<IoSliceMut<'_>> = bufs.iter_mut().map(|b| IoSliceMut::new(b)).collect();
        let sock: &UdpSocket = io;
        let n = sock.try_io(Interest::READABLE, || {
            state.recv(sock.into(), &mut slices, metas)
        })?;
        let mut count = 0;
        for (meta, buf) in metas.iter().zip(slices.iter()).take(n) {
            let stride = meta.stride.max(1);
            for segment in buf[..meta.len].chunks(stride) {
                out.push(Datagram {
                    from: meta.addr,
                    to_ip: meta.dst_ip,
                    data: BytesMut::from(segment),
                });
                count += 1;
            }
        }
        Ok(count)
    }

    /// Send one datagram; waits for the socket only if the kernel buffer is full.
    pub(crate) async fn send(&self, to: SocketAddr, from_ip: Option<IpAddr>, data: &[u8]) {
        let transmit = Transmit {
            destination: to,
            ecn: None,
            contents: data,
            segment_size: None,
            src_ip: from_ip.filter(|ip| !ip.is_unspecified()),
        };
        loop {
            match self.io.try_io(Interest::WRITABLE, || {
                self.state.try_send((&self.io).into(), &transmit)
            }) {
                Ok(()) => return,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    if self.io.writable().await.is_err() {
                        return;
                    }
                }
                Err(e) => {
                    // A peer that went away (ICMP unreachable) must not stop the others.
                    tracing::trace!(%to, error = %e, "udp send failed");
                    return;
                }
            }
        }
    }
}
