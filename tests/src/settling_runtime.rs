//! A `webrtc` runtime that hands the peer's driver one datagram per loop turn until the peer
//! is connected, so no media is lost to a race inside `webrtc` itself.
//!
//! `webrtc` (0.21) drains a burst of queued datagrams into its core before it processes the
//! core's events, and the SRTP keys derived from a finished DTLS handshake arrive as such an
//! event. When the server is the DTLS server (as Directo is), its last handshake flight and
//! the first SRTP packets it sends right after land in one burst at our client, and the SRTP
//! packets are dropped as "remote_srtp_context is not set yet" — the first keyframe a viewer
//! gets is lost on our side, not the server's. A browser applies the keys before reading on,
//! so this runtime makes our clients do the same: until the connection is up, each receive
//! yields one datagram and the readiness probe after it reports nothing, so the driver runs a
//! full turn (events included) between any two datagrams. Once connected, reads are untouched.

use std::fmt;
use std::future::Future;
use std::io::{self, IoSliceMut};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use webrtc::runtime::{
    AsyncInterval, AsyncTcpListener, AsyncTcpStream, AsyncUdpSocket, JoinHandle, RecvMeta, Runtime,
    Transmit,
};

/// The default runtime, with UDP sockets that read one datagram per turn until `connected`.
pub(crate) struct SettlingRuntime {
    inner: Arc<dyn Runtime>,
    connected: Arc<AtomicBool>,
}

impl SettlingRuntime {
    /// Wraps `inner`; the caller sets `connected` once the peer connection is connected.
    pub(crate) fn new(inner: Arc<dyn Runtime>, connected: Arc<AtomicBool>) -> Self {
        SettlingRuntime { inner, connected }
    }
}

impl fmt::Debug for SettlingRuntime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SettlingRuntime")
            .field("inner", &self.inner)
            .finish()
    }
}

impl Runtime for SettlingRuntime {
    fn spawn(&self, future: Pin<Box<dyn Future<Output = ()> + Send>>) -> Box<dyn JoinHandle> {
        self.inner.spawn(future)
    }

    fn spawn_reactor(
        &self,
        reactor_pool_size: usize,
        future: Pin<Box<dyn Future<Output = ()> + Send>>,
    ) -> Box<dyn JoinHandle> {
        self.inner.spawn_reactor(reactor_pool_size, future)
    }

    fn wrap_udp_socket(&self, socket: std::net::UdpSocket) -> io::Result<Arc<dyn AsyncUdpSocket>> {
        Ok(Arc::new(SettlingSocket {
            inner: self.inner.wrap_udp_socket(socket)?,
            connected: Arc::clone(&self.connected),
            just_read: AtomicBool::new(false),
        }))
    }

    fn wrap_tcp_listener(
        &self,
        listener: std::net::TcpListener,
    ) -> io::Result<Arc<dyn AsyncTcpListener>> {
        self.inner.wrap_tcp_listener(listener)
    }

    fn connect_tcp<'a>(
        &'a self,
        remote_addr: SocketAddr,
    ) -> Pin<Box<dyn Future<Output = io::Result<Arc<dyn AsyncTcpStream>>> + Send + 'a>> {
        self.inner.connect_tcp(remote_addr)
    }

    fn resolve_host<'a>(
        &'a self,
        host: &'a str,
    ) -> Pin<Box<dyn Future<Output = io::Result<Vec<SocketAddr>>> + Send + 'a>> {
        self.inner.resolve_host(host)
    }

    fn now(&self) -> Instant {
        self.inner.now()
    }

    fn sleep(&self, duration: Duration) -> Pin<Box<dyn Future<Output = ()> + Send + 'static>> {
        self.inner.sleep(duration)
    }

    fn interval(&self, period: Duration) -> Box<dyn AsyncInterval> {
        self.inner.interval(period)
    }

    fn block_on(&self, future: Pin<Box<dyn Future<Output = ()> + '_>>) {
        self.inner.block_on(future)
    }

    fn yield_now(&self) -> Pin<Box<dyn Future<Output = ()> + Send + 'static>> {
        self.inner.yield_now()
    }

    fn name(&self) -> &'static str {
        "directo-tests-settling"
    }
}

/// A UDP socket that, until connected, yields one datagram and then one "nothing ready".
#[derive(Debug)]
struct SettlingSocket {
    inner: Arc<dyn AsyncUdpSocket>,
    connected: Arc<AtomicBool>,
    just_read: AtomicBool,
}

impl AsyncUdpSocket for SettlingSocket {
    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
    }

    fn poll_send(&self, cx: &mut Context<'_>, transmit: &Transmit<'_>) -> Poll<io::Result<usize>> {
        self.inner.poll_send(cx, transmit)
    }

    fn poll_recv(
        &self,
        cx: &mut Context<'_>,
        bufs: &mut [IoSliceMut<'_>],
        meta: &mut [RecvMeta],
    ) -> Poll<io::Result<usize>> {
        if self.connected.load(Ordering::Acquire) || bufs.is_empty() || meta.is_empty() {
            return self.inner.poll_recv(cx, bufs, meta);
        }
        if self.just_read.swap(false, Ordering::AcqRel) {
            // The driver's burst probe after a datagram: report nothing, but make sure a real
            // receive that lands here is polled again.
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        let polled = self.inner.poll_recv(cx, &mut bufs[..1], &mut meta[..1]);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.just_read.store(true, Ordering::Release);
        }
        polled
    }

    fn max_gso_segments(&self) -> usize {
        self.inner.max_gso_segments()
    }

    fn max_gro_segments(&self) -> usize {
        self.inner.max_gro_segments()
    }
}
