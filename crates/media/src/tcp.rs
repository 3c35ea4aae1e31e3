//! ICE over TCP (passive, RFC 6544) on the media port, for viewers behind firewalls that
//! block UDP. Each accepted connection gets a reader task that splits RFC 4571 frames and
//! hands them to the engine, and a writer task fed by a bounded channel; the engine treats a
//! frame like a datagram whose transport is TCP. TCP is the fallback path (browsers prefer
//! UDP), so a task pair per TCP connection is acceptable here.

use bytes::BytesMut;
use rtc::shared::tcp_framing::{TcpFrameDecoder, frame_packet};
use std::net::SocketAddr;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

/// Frames queued for one connection before new ones are dropped.
const WRITE_QUEUE: usize = 1024;
/// The largest frame accepted from a client (an RTP/DTLS/STUN packet fits easily).
const MAX_FRAME: usize = 64 * 1024;
/// Bytes buffered from a client that never completes a frame before it is disconnected.
const MAX_BUFFERED: usize = 4 * MAX_FRAME;

/// What the TCP side tells the engine.
pub(crate) enum TcpEvent {
    /// A connection was accepted; frames for it go to `writer`.
    Opened {
        peer: SocketAddr,
        local: SocketAddr,
        writer: mpsc::Sender<Vec<u8>>,
    },
    /// One framed packet arrived.
    Frame { peer: SocketAddr, data: BytesMut },
    /// The connection closed.
    Closed { peer: SocketAddr },
}

/// Accept ICE-TCP connections on `listener` forever, reporting to `events`.
pub(crate) async fn accept_loop(listener: TcpListener, events: mpsc::Sender<TcpEvent>) {
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(pair) => pair,
            Err(e) => {
                tracing::debug!(error = %e, "ICE-TCP accept failed");
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let Ok(local) = stream.local_addr() else {
            continue;
        };
        tokio::spawn(connection(stream, peer, local, events.clone()));
    }
}

async fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    local: SocketAddr,
    events: mpsc::Sender<TcpEvent>,
) {
    let (mut reader, mut writer) = stream.into_split();
    let (tx, mut rx) = mpsc::channel::<Vec<u8>>(WRITE_QUEUE);
    if events
        .send(TcpEvent::Opened {
            peer,
            local,
            writer: tx,
        })
        .await
        .is_err()
    {
        return;
    }
    let write = tokio::spawn(async move {
        while let Some(packet) = rx.recv().await {
            if writer.write_all(&frame_packet(&packet)).await.is_err() {
                break;
            }
        }
    });
    let mut decoder = TcpFrameDecoder::new();
    let mut buf = vec![0u8; MAX_FRAME];
    loop {
        match reader.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                decoder.extend_from_slice(&buf[..n]);
                while let Some(packet) = decoder.next_packet() {
                    let frame = TcpEvent::Frame {
                        peer,
                        data: BytesMut::from(&packet[..]),
                    };
                    if events.send(frame).await.is_err() {
                        write.abort();
                        return;
                    }
                }
                if decoder.buffered_len() > MAX_BUFFERED {
                    break;
                }
            }
        }
    }
    write.abort();
    let _ = events.send(TcpEvent::Closed { peer }).await;
}
