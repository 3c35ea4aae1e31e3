//! The one UDP socket every peer shares, read and written in batches through `quinn-udp`.
//!
//! Reads take up to `quinn_udp::BATCH_SIZE` datagrams per system call (`recvmmsg`, GRO where
//! the kernel offers it) and learn each datagram's destination address, so a server bound to
//! `0.0.0.0` still knows which of its addresses a peer used.

use bytes::BytesMut;
use quinn_udp::{RecvMeta, Transmit, UdpSocketState};
use std::io::{self, IoSliceMut};
use std::net::{IpAddr, SocketAddr};
use std::os::fd::AsRawFd;
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
    batch: SendBatch,
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
            batch: SendBatch::default(),
        })
    }

    /// A second, blocking-capable handle on the same socket (same port and options), for a
    /// thread that sends without the engine's runtime.
    pub(crate) fn try_clone_fd(&self) -> io::Result<std::os::fd::OwnedFd> {
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
            ..
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

    /// Send every datagram of `items`, many per system call; waits for the socket only while
    /// the kernel buffer is full. A datagram the kernel refuses (an unreachable viewer) is
    /// skipped.
    pub(crate) async fn send_many(&mut self, items: &[Outgoing]) {
        let mut done = 0;
        while done < items.len() {
            let fd = self.io.as_raw_fd();
            match self.batch.send(fd, &items[done..]) {
                Ok(n) => done += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    if self.io.writable().await.is_err() {
                        return;
                    }
                }
                Err(e) => {
                    tracing::trace!(to = %items[done].to, error = %e, "udp send failed");
                    done += 1;
                }
            }
        }
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

/// Up to this many datagrams per `sendmmsg` call.
const SEND_BATCH: usize = 64;
/// A thread without a runtime waits at most this long, this many times, for send-buffer room.
const SEND_WAIT_MS: i32 = 20;
const MAX_SEND_WAITS: usize = 5;
/// Room for one `IP_PKTINFO` or `IPV6_PKTINFO` control message.
const CONTROL_LEN: usize = 64;

/// One datagram to send: where, from which of our addresses (pinned only where it must be),
/// and the bytes.
pub(crate) struct Outgoing {
    pub(crate) to: SocketAddr,
    pub(crate) from: Option<IpAddr>,
    pub(crate) data: bytes::BytesMut,
}

/// Sends many datagrams per system call (`sendmmsg`), each to its own destination — a fan-out
/// goes to as many addresses as it has viewers, so GSO (one destination) does not apply. The
/// buffers are kept between calls.
pub(crate) struct SendBatch {
    addrs: Vec<socket2::SockAddr>,
    iovecs: Vec<libc::iovec>,
    controls: Vec<[u8; CONTROL_LEN]>,
    headers: Vec<libc::mmsghdr>,
}

// SAFETY: the raw pointers in `iovecs`/`headers` are rebuilt on every call and never outlive it.
unsafe impl Send for SendBatch {}

impl Default for SendBatch {
    fn default() -> Self {
        SendBatch {
            addrs: Vec::with_capacity(SEND_BATCH),
            iovecs: Vec::with_capacity(SEND_BATCH),
            controls: vec![[0; CONTROL_LEN]; SEND_BATCH],
            headers: Vec::with_capacity(SEND_BATCH),
        }
    }
}

impl SendBatch {
    /// Send the first datagrams of `items` (up to [`SEND_BATCH`]) on `fd`. Returns how many
    /// the kernel took (at least one), `WouldBlock` when the send buffer is full, or the error
    /// of the first datagram (the caller skips it).
    pub(crate) fn send(&mut self, fd: std::os::fd::RawFd, items: &[Outgoing]) -> io::Result<usize> {
        let n = items.len().min(SEND_BATCH);
        if n == 0 {
            return Ok(0);
        }
        self.addrs.clear();
        self.iovecs.clear();
        self.headers.clear();
        for item in &items[..n] {
            self.addrs.push(socket2::SockAddr::from(item.to));
            self.iovecs.push(libc::iovec {
                iov_base: item.data.as_ptr() as *mut libc::c_void,
                iov_len: item.data.len(),
            });
        }
        for (i, item) in items[..n].iter().enumerate() {
            // SAFETY: an all-zero msghdr is a valid empty header.
            let mut hdr: libc::msghdr = unsafe { std::mem::zeroed() };
            hdr.msg_name = self.addrs[i].as_ptr() as *mut libc::c_void;
            hdr.msg_namelen = self.addrs[i].len();
            hdr.msg_iov = &mut self.iovecs[i];
            hdr.msg_iovlen = 1;
            if let Some(from) = item.from.filter(|ip| !ip.is_unspecified()) {
                let control = &mut self.controls[i];
                hdr.msg_control = control.as_mut_ptr() as *mut libc::c_void;
                hdr.msg_controllen = CONTROL_LEN as _;
                // SAFETY: the control buffer is CONTROL_LEN bytes, enough for one pktinfo; the
                // CMSG_* macros stay within msg_controllen.
                unsafe {
                    let cmsg = libc::CMSG_FIRSTHDR(&hdr);
                    match from {
                        IpAddr::V4(v4) => {
                            let info = libc::in_pktinfo {
                                ipi_ifindex: 0,
                                ipi_spec_dst: libc::in_addr {
                                    s_addr: u32::from_ne_bytes(v4.octets()),
                                },
                                ipi_addr: libc::in_addr { s_addr: 0 },
                            };
                            (*cmsg).cmsg_level = libc::IPPROTO_IP;
                            (*cmsg).cmsg_type = libc::IP_PKTINFO;
                            (*cmsg).cmsg_len = libc::CMSG_LEN(size_of_val(&info) as u32) as _;
                            std::ptr::write_unaligned(libc::CMSG_DATA(cmsg).cast(), info);
                            hdr.msg_controllen = libc::CMSG_SPACE(size_of_val(&info) as u32) as _;
                        }
                        IpAddr::V6(v6) => {
                            let info = libc::in6_pktinfo {
                                ipi6_ifindex: 0,
                                ipi6_addr: libc::in6_addr {
                                    s6_addr: v6.octets(),
                                },
                            };
                            (*cmsg).cmsg_level = libc::IPPROTO_IPV6;
                            (*cmsg).cmsg_type = libc::IPV6_PKTINFO;
                            (*cmsg).cmsg_len = libc::CMSG_LEN(size_of_val(&info) as u32) as _;
                            std::ptr::write_unaligned(libc::CMSG_DATA(cmsg).cast(), info);
                            hdr.msg_controllen = libc::CMSG_SPACE(size_of_val(&info) as u32) as _;
                        }
                    }
                }
            }
            self.headers.push(libc::mmsghdr {
                msg_hdr: hdr,
                msg_len: 0,
            });
        }
        // SAFETY: `headers` holds n valid headers whose pointers (addresses, iovecs, controls,
        // the items' bytes) stay alive and unmoved for the duration of the call.
        let sent = unsafe { libc::sendmmsg(fd, self.headers.as_mut_ptr(), n as u32, 0) };
        if sent < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(sent as usize)
    }

    /// Send every datagram of `items` from a thread without a runtime: waits (briefly, with
    /// `poll`) while the send buffer is full, then gives up on what is left.
    pub(crate) fn send_all_waiting(&mut self, fd: std::os::fd::RawFd, items: &[Outgoing]) {
        let mut done = 0;
        let mut waits = 0;
        while done < items.len() {
            match self.send(fd, &items[done..]) {
                Ok(n) => done += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock && waits < MAX_SEND_WAITS => {
                    waits += 1;
                    let mut pfd = libc::pollfd {
                        fd,
                        events: libc::POLLOUT,
                        revents: 0,
                    };
                    // SAFETY: one valid pollfd for the duration of the call.
                    unsafe { libc::poll(&mut pfd, 1, SEND_WAIT_MS) };
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) => {
                    tracing::trace!(to = %items[done].to, error = %e, "udp send failed");
                    done += 1;
                }
            }
        }
    }
}
