//! Admin actions for sessions this node does not hold: kick a session, end a stream.
//!
//! The node the admin called publishes an [`AdminRequest`] on the cluster-wide admin topic
//! (signed with the shared secret by `directo-cluster`); every other node carries it out
//! on its own sessions and answers on the asker's node topic with an [`AdminReply`] (how
//! many sessions it closed). The asker waits until every node it knows answered, a kick
//! found its session, or [`ADMIN_REPLY_TIMEOUT`]. Replies are matched by request id in
//! [`Pending`], the one table shared between the askers and the listening task.

use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;

use directo_cluster::{ClusterMessage, Topic};
use signaling_proto::{AdminAction, AdminReply, AdminRequest};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::{ADMIN_REPLY_TIMEOUT, ClusterNode, api_error};
use crate::error::ApiError;

/// Requests waiting for replies: request id → where the listener hands each reply (with
/// the replying node's id).
#[derive(Debug, Default)]
pub struct Pending {
    waiting: Mutex<HashMap<String, mpsc::UnboundedSender<(String, AdminReply)>>>,
}

impl Pending {
    fn register(&self, id: &str) -> mpsc::UnboundedReceiver<(String, AdminReply)> {
        let (tx, rx) = mpsc::unbounded_channel();
        if let Ok(mut waiting) = self.waiting.lock() {
            waiting.insert(id.to_owned(), tx);
        }
        rx
    }

    fn forget(&self, id: &str) {
        if let Ok(mut waiting) = self.waiting.lock() {
            waiting.remove(id);
        }
    }

    fn deliver(&self, from: String, reply: AdminReply) {
        if let Ok(waiting) = self.waiting.lock()
            && let Some(tx) = waiting.get(&reply.id)
        {
            let _ = tx.send((from, reply));
        }
    }
}

/// Subscribes to the admin topic and this node's own topic, and spawns the task that
/// carries out other nodes' requests and hands replies to their askers.
pub(crate) async fn listen(
    node: &ClusterNode,
) -> Result<JoinHandle<()>, directo_cluster::ClusterError> {
    let cluster = node.cluster();
    let mut requests = cluster.subscribe(Topic::Admin).await?;
    let mut replies = cluster
        .subscribe(Topic::Node(node.node_id().to_owned()))
        .await?;
    let node = node.clone();
    Ok(tokio::spawn(async move {
        loop {
            tokio::select! {
                Some(message) = requests.recv() => {
                    // The asker acts on its own sessions itself.
                    if message.from != node.node_id() {
                        let node = node.clone();
                        tokio::spawn(async move { node.on_request(message).await });
                    }
                }
                Some(message) = replies.recv() => {
                    // Other parts may talk to this node on its topic: take admin replies only.
                    if let Ok(reply) = message.json::<AdminReply>() {
                        node.inner.admin.deliver(message.from, reply);
                    }
                }
                else => return,
            }
        }
    }))
}

impl ClusterNode {
    /// Carries out another node's request on this node's sessions and replies.
    async fn on_request(&self, message: ClusterMessage) {
        let Ok(request) = message.json::<AdminRequest>() else {
            tracing::debug!(from = %message.from, "ignored a message on the admin topic that is not a request");
            return;
        };
        let closed = self.act_locally(&request.action).await;
        let reply = AdminReply {
            id: request.id,
            closed,
        };
        if let Err(error) = self
            .cluster()
            .publish_json(&Topic::Node(message.from.clone()), &reply)
            .await
        {
            tracing::warn!(%error, to = %message.from, "could not answer an admin request");
        }
    }

    /// What `action` closes on this node; a publisher leaving this way gives its stream up.
    async fn act_locally(&self, action: &AdminAction) -> usize {
        let engine = self.engine();
        match action {
            AdminAction::Kick { stream, session } => {
                let Ok(sessions) = engine.sessions(stream).await else {
                    return 0;
                };
                let Some(found) = sessions.iter().find(|s| &s.session == session) else {
                    return 0;
                };
                if engine.close(session).await.is_err() {
                    return 0;
                }
                if found.role == signaling_proto::Role::Publisher {
                    self.release(stream).await;
                }
                tracing::info!(%stream, %session, "kicked a session for an admin on another node");
                1
            }
            AdminAction::EndStream { stream } => {
                let closed = engine.end_stream(stream).await.unwrap_or(0);
                self.release(stream).await;
                if closed > 0 {
                    tracing::info!(%stream, closed, "ended the stream for an admin on another node");
                }
                closed
            }
        }
    }

    /// Asks every other node to carry out `action`; returns how many sessions they closed.
    /// A kick stops waiting at the first node that found the session.
    pub async fn ask_others(&self, action: AdminAction) -> Result<usize, ApiError> {
        let cluster = self.cluster();
        let mut expected: BTreeSet<String> = cluster
            .nodes()
            .await
            .map_err(api_error)?
            .into_iter()
            .map(|node| node.id)
            .filter(|id| id != self.node_id())
            .collect();
        if expected.is_empty() {
            return Ok(0);
        }
        let stop_at_first = matches!(action, AdminAction::Kick { .. });
        let request = AdminRequest {
            id: uuid::Uuid::new_v4().simple().to_string(),
            action,
        };
        let pending = &self.inner.admin;
        let mut replies = pending.register(&request.id);
        let published = cluster.publish_json(&Topic::Admin, &request).await;
        let mut closed = 0;
        if published.is_ok() {
            let deadline = tokio::time::Instant::now() + ADMIN_REPLY_TIMEOUT;
            while !expected.is_empty() {
                let Ok(Some((from, reply))) =
                    tokio::time::timeout_at(deadline, replies.recv()).await
                else {
                    break;
                };
                expected.remove(&from);
                closed += reply.closed;
                if stop_at_first && reply.closed > 0 {
                    break;
                }
            }
            let found = stop_at_first && closed > 0;
            if !expected.is_empty() && !found {
                tracing::warn!(missing = ?expected, "some nodes did not answer an admin request in time");
            }
        }
        pending.forget(&request.id);
        published.map_err(api_error)?;
        Ok(closed)
    }
}
