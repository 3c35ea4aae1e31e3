//! Leaving the cluster without dropping anyone (SIGTERM on a node of a cluster).
//!
//! Draining marks this node in its load (other nodes stop sending it viewers, and it
//! redirects new ones itself), tells every client to move, and returns once the node is
//! empty or at the deadline; the usual shutdown follows. The notice is a
//! [`NodeNotice::Move`] naming the node to go to, sent on each session's `chat` data
//! channel (the SDK opens a session there, then ends this one; a publisher ends this one
//! first, which gives the stream up at once) and as `server.move` on `/ws`. It is sent again
//! every [`NOTICE_EVERY`], for clients that could not move yet (no node had room).

use std::time::Duration;

use directo_media::ChatOut;
use signaling_proto::{MoveReason, NodeNotice};
use tokio::sync::{mpsc, watch};

use super::ClusterNode;

/// How often clients still here are told again to move.
pub const NOTICE_EVERY: Duration = Duration::from_secs(5);
/// How often the node looks whether it is empty.
const EMPTY_CHECK: Duration = Duration::from_millis(250);

impl ClusterNode {
    /// Whether this node is draining.
    pub fn is_draining(&self) -> bool {
        *self.inner.draining.borrow()
    }

    /// Follows the draining flag (`/ws` connections tell their client when it turns on).
    pub fn drain_signal(&self) -> watch::Receiver<bool> {
        self.inner.draining.subscribe()
    }

    /// Drains this node: returns once it has no publisher or viewer left, or after
    /// `deadline`.
    pub async fn drain(&self, deadline: Duration) {
        self.inner.draining.send_replace(true);
        tracing::info!(
            deadline_s = deadline.as_secs(),
            "draining: new viewers go to other nodes, clients here are asked to move"
        );
        let until = tokio::time::Instant::now() + deadline;
        let mut notices = tokio::time::interval(NOTICE_EVERY);
        let mut checks = tokio::time::interval(EMPTY_CHECK);
        loop {
            tokio::select! {
                _ = notices.tick() => self.tell_clients_to_move().await,
                _ = checks.tick() => {
                    if self.is_empty() {
                        tracing::info!("drained: no client left");
                        return;
                    }
                }
                _ = tokio::time::sleep_until(until) => {
                    tracing::info!("drain deadline reached; closing the sessions still here");
                    return;
                }
            }
        }
    }

    /// No stream here has a live publisher or a viewer.
    fn is_empty(&self) -> bool {
        self.engine()
            .streams()
            .iter()
            .all(|info| info.viewers == 0 && !info.live)
    }

    /// Sends the move notice on the chat channel of every session here, per stream to the
    /// node its viewers should go to.
    async fn tell_clients_to_move(&self) {
        let engine = self.engine();
        for info in engine.streams().iter() {
            let target = match self.move_target(&info.name).await {
                Ok(Some(target)) => target,
                Ok(None) => {
                    tracing::warn!(stream = %info.name, "no other node has room; clients stay until the deadline");
                    continue;
                }
                Err(error) => {
                    tracing::warn!(stream = %info.name, error = %error.0, "cannot choose a node to move clients to");
                    continue;
                }
            };
            let Ok(sessions) = engine.sessions(&info.name).await else {
                continue;
            };
            let notice = move_notice(&target);
            let sent = sessions
                .iter()
                .filter(|session| send_notice(&self.inner.chat_out, &session.session, &notice))
                .count();
            tracing::info!(stream = %info.name, %target, sent, "asked clients to move");
        }
    }
}

/// The notice as JSON text.
pub fn move_notice(target: &str) -> std::sync::Arc<str> {
    let notice = NodeNotice::Move {
        url: target.to_owned(),
        reason: MoveReason::Draining,
    };
    // Serializing two strings cannot fail.
    serde_json::to_string(&notice).unwrap_or_default().into()
}

/// Offers `notice` to the engine for `session`'s chat channel; `false` when the engine's
/// queue is full (the notice goes again in [`NOTICE_EVERY`]).
fn send_notice(
    chat_out: &mpsc::Sender<ChatOut>,
    session: &str,
    notice: &std::sync::Arc<str>,
) -> bool {
    chat_out
        .try_send(ChatOut::Send {
            session: session.to_owned(),
            text: notice.clone(),
        })
        .is_ok()
}
