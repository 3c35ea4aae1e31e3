//! A chat flood beside the media load: chat-only `/ws` members (no WebRTC) that each send a
//! message every 2.1 s (under the server's 5-per-10-s limit) and read everything the room
//! fans out, so the media figures of the same run show whether chat slows forwarding.

use futures::{SinkExt, StreamExt};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;
use tokio_tungstenite::connect_async;
use tokio_tungstenite::tungstenite::Message;

/// How often each member writes.
const INTERVAL: Duration = Duration::from_millis(2100);

/// What the flood did.
#[derive(Debug, Default)]
pub struct FloodCounters {
    /// Chat messages sent.
    pub sent: AtomicU64,
    /// Chat frames received (the fan-out).
    pub received: AtomicU64,
}

/// Start `members` chat members on `stream` at `ws_url` (`ws://host:port/ws`) until `stop`.
pub fn start(
    ws_url: String,
    stream: String,
    members: usize,
    stop: Arc<AtomicBool>,
) -> Arc<FloodCounters> {
    let counters = Arc::new(FloodCounters::default());
    for index in 0..members {
        let (url, stream, stop, counters) = (
            ws_url.clone(),
            stream.clone(),
            Arc::clone(&stop),
            Arc::clone(&counters),
        );
        tokio::spawn(async move {
            let Ok((socket, _)) = connect_async(url.as_str()).await else {
                return;
            };
            let (mut tx, mut rx) = socket.split();
            let join = serde_json::json!({
                "type": "join", "stream": stream, "role": "viewer", "name": format!("flood {index}")
            });
            if tx.send(Message::text(join.to_string())).await.is_err() {
                return;
            }
            // Spread the members over the interval so the flood is steady.
            let offset = INTERVAL.mul_f64(index as f64 / members.max(1) as f64);
            let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + offset, INTERVAL);
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                tokio::select! {
                    _ = tick.tick() => {
                        n += 1;
                        let text = serde_json::json!({
                            "type": "chat.send",
                            "text": format!("flood message {n} from member {index}"),
                        });
                        if tx.send(Message::text(text.to_string())).await.is_err() {
                            return;
                        }
                        counters.sent.fetch_add(1, Ordering::Relaxed);
                    }
                    frame = rx.next() => match frame {
                        Some(Ok(_)) => { counters.received.fetch_add(1, Ordering::Relaxed); }
                        _ => return,
                    },
                }
            }
            let _ = tx.close().await;
        });
    }
    counters
}
