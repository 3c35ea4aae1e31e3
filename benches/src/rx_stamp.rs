//! Kernel receive timestamps (`SO_TIMESTAMPNS`) for the viewers' sockets.
//!
//! Forwarding delay is publisher send → viewer *socket* receive: the instant the kernel queued
//! the datagram, not the instant this process got round to reading it. Hundreds of viewers
//! share a few generator threads, so a packet may wait in its socket while others are read; with
//! the kernel's stamp that wait is not charged to the server.

use std::io;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::sync::OnceLock;
use std::time::{Duration, Instant, SystemTime};

use tokio::io::Interest;
use tokio::net::UdpSocket;

/// Room for one `SCM_TIMESTAMPNS` control message.
const CONTROL_LEN: usize = 64;

/// Ask the kernel to stamp every datagram `socket` receives.
pub fn enable(socket: &UdpSocket) -> io::Result<()> {
    let on: libc::c_int = 1;
    // SAFETY: a valid socket and a c_int option value of the right size.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_TIMESTAMPNS,
            (&on as *const libc::c_int).cast(),
            size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Receive one datagram: its length, sender, and when the kernel received it (`now` when the
/// kernel gave no stamp).
pub async fn recv(socket: &UdpSocket, buf: &mut [u8]) -> io::Result<(usize, SocketAddr, Instant)> {
    loop {
        socket.readable().await?;
        match socket.try_io(Interest::READABLE, || recv_now(socket, buf)) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            other => return other,
        }
    }
}

fn recv_now(socket: &UdpSocket, buf: &mut [u8]) -> io::Result<(usize, SocketAddr, Instant)> {
    // SAFETY: zeroed sockaddr_storage, msghdr and control buffer are valid initial values; the
    // pointers set below stay valid for the call; CMSG_* walk only within msg_controllen.
    unsafe {
        let mut addr: libc::sockaddr_storage = std::mem::zeroed();
        let mut control = [0u8; CONTROL_LEN];
        let mut iov = libc::iovec {
            iov_base: buf.as_mut_ptr().cast(),
            iov_len: buf.len(),
        };
        let mut hdr: libc::msghdr = std::mem::zeroed();
        hdr.msg_name = (&mut addr as *mut libc::sockaddr_storage).cast();
        hdr.msg_namelen = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
        hdr.msg_iov = &mut iov;
        hdr.msg_iovlen = 1;
        hdr.msg_control = control.as_mut_ptr().cast();
        hdr.msg_controllen = CONTROL_LEN as _;
        let n = libc::recvmsg(socket.as_raw_fd(), &mut hdr, 0);
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        let mut at = None;
        let mut cmsg = libc::CMSG_FIRSTHDR(&hdr);
        while !cmsg.is_null() {
            if (*cmsg).cmsg_level == libc::SOL_SOCKET && (*cmsg).cmsg_type == libc::SCM_TIMESTAMPNS
            {
                let ts: libc::timespec = std::ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast());
                at = Some(to_instant(ts));
            }
            cmsg = libc::CMSG_NXTHDR(&hdr, cmsg);
        }
        let from = match i32::from(addr.ss_family) {
            libc::AF_INET => {
                let v4: libc::sockaddr_in =
                    std::ptr::read_unaligned((&addr as *const libc::sockaddr_storage).cast());
                SocketAddr::from((
                    std::net::Ipv4Addr::from(u32::from_be(v4.sin_addr.s_addr)),
                    u16::from_be(v4.sin_port),
                ))
            }
            libc::AF_INET6 => {
                let v6: libc::sockaddr_in6 =
                    std::ptr::read_unaligned((&addr as *const libc::sockaddr_storage).cast());
                SocketAddr::from((
                    std::net::Ipv6Addr::from(v6.sin6_addr.s6_addr),
                    u16::from_be(v6.sin6_port),
                ))
            }
            _ => return Err(io::Error::other("datagram from a non-IP address")),
        };
        Ok((n as usize, from, at.unwrap_or_else(Instant::now)))
    }
}

/// A wall-clock stamp on the monotonic clock the publisher stamps with (one anchor pair per
/// process; a run is far too short for the two clocks to drift apart measurably).
fn to_instant(ts: libc::timespec) -> Instant {
    static ANCHOR: OnceLock<(Instant, SystemTime)> = OnceLock::new();
    let (instant, wall) = *ANCHOR.get_or_init(|| (Instant::now(), SystemTime::now()));
    let at = SystemTime::UNIX_EPOCH + Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32);
    match at.duration_since(wall) {
        Ok(after) => instant + after,
        Err(before) => instant.checked_sub(before.duration()).unwrap_or(instant),
    }
}
