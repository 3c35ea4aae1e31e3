//! Chat across nodes, the cluster side: which node is each open chat's authority, the
//! subscriptions that carry it (`Topic::ChatInput(stream)` where this node is the authority,
//! `Topic::Chat(stream)` where it is an edge), and publishing what the chat thread hands
//! over, in order. The chat thread does the rest (`chat/link.rs`).
//!
//! Who is a stream's chat authority, decided here once a heartbeat:
//! - the node holding the stream's directory entry (its origin: the node of its publisher);
//! - when the stream has no entry (not live), the node that was its origin keeps the
//!   authority while it is alive in the registry, so the chat of an ended stream goes on;
//! - a stream that never had an origin while its room was open chats locally on each node
//!   (a single node's behaviour); the first origin takes over, and each node's members then
//!   get the origin's history;
//! - an authority that died (gone from the registry) leaves the stream's edges *orphaned*:
//!   members keep the mirrored history, and what they write is refused with `unavailable`
//!   until a publisher claims the stream again (then that node is the authority).

use std::collections::{BTreeSet, HashMap};

use directo_cluster::{ClusterMessage, Topic};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::MissedTickBehavior;

use super::ClusterNode;
use crate::chat::ChatHandle;
use crate::chat::wire::{LinkCommand, Mode, OUTBOX_CAPACITY, RemoteEvent, RemoteInput};

/// Messages received on chat topics, waiting for the bridge.
const INCOMING_CAPACITY: usize = 4096;

impl ClusterNode {
    /// Links the chat service to the cluster: from now on each stream's chat has one
    /// authority in the cluster.
    pub async fn link_chat(&self, chat: ChatHandle) {
        let (out_tx, out_rx) = mpsc::channel(OUTBOX_CAPACITY);
        let attached = chat
            .link(LinkCommand::Attach {
                node: self.node_id().to_owned(),
                out: out_tx,
            })
            .await;
        if attached.is_err() {
            tracing::error!("the chat service is not running; chat stays local to this node");
            return;
        }
        let publisher = tokio::spawn(publish(self.clone(), out_rx));
        let (incoming_tx, incoming) = mpsc::channel(INCOMING_CAPACITY);
        let bridge = Bridge {
            node: self.clone(),
            chat,
            modes: HashMap::new(),
            subscriptions: HashMap::new(),
            incoming_tx,
        };
        let bridge = tokio::spawn(bridge.run(incoming));
        if let Ok(mut tasks) = self.inner.tasks.lock() {
            tasks.extend([publisher, bridge]);
        }
    }
}

/// Publishes what the chat thread hands over, one at a time, so the order is kept.
async fn publish(node: ClusterNode, mut out: mpsc::Receiver<(Topic, Vec<u8>)>) {
    while let Some((topic, payload)) = out.recv().await {
        if let Err(error) = node.cluster().publish(&topic, payload).await {
            metrics::counter!("directo_chat_cluster_dropped_total").increment(1);
            tracing::warn!(%error, %topic, "chat: could not publish to the cluster");
        }
    }
}

struct Bridge {
    node: ClusterNode,
    chat: ChatHandle,
    modes: HashMap<String, Mode>,
    /// Topic → the task forwarding its messages to `incoming_tx`.
    subscriptions: HashMap<Topic, JoinHandle<()>>,
    incoming_tx: mpsc::Sender<ClusterMessage>,
}

impl Bridge {
    async fn run(mut self, mut incoming: mpsc::Receiver<ClusterMessage>) {
        let mut tick = tokio::time::interval(super::reconcile::TICK);
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            let directory = self.node.directory().clone();
            tokio::select! {
                _ = tick.tick() => self.reconcile().await,
                () = directory.claimed() => self.reconcile().await,
                Some(message) = incoming.recv() => self.on_message(message).await,
            }
        }
    }

    async fn on_message(&self, message: ClusterMessage) {
        if message.from == self.node.node_id() {
            return;
        }
        let command = match &message.topic {
            Topic::ChatInput(stream) => match message.json::<RemoteInput>() {
                Ok(input) => LinkCommand::Input {
                    stream: stream.clone(),
                    from: message.from.clone(),
                    input,
                },
                Err(error) => {
                    tracing::debug!(%error, from = %message.from, "ignored a chat input that does not parse");
                    return;
                }
            },
            Topic::Chat(stream) => match message.json::<RemoteEvent>() {
                Ok(event) => LinkCommand::Event {
                    stream: stream.clone(),
                    from: message.from.clone(),
                    event,
                },
                Err(error) => {
                    tracing::debug!(%error, from = %message.from, "ignored a chat event that does not parse");
                    return;
                }
            },
            _ => return,
        };
        let _ = self.chat.link(command).await;
    }

    /// Once a heartbeat: each open chat's authority, and the subscriptions it needs.
    async fn reconcile(&mut self) {
        let (reply, rooms) = tokio::sync::oneshot::channel();
        if self.chat.link(LinkCommand::Rooms { reply }).await.is_err() {
            return;
        }
        let Ok(rooms) = rooms.await else {
            return;
        };
        let cluster = self.node.cluster();
        let (origins, nodes) = tokio::join!(cluster.streams(), cluster.nodes());
        // Without Redis nothing can be decided: every chat stays as it is.
        let (Ok(origins), Ok(nodes)) = (origins, nodes) else {
            return;
        };
        let origins: HashMap<String, String> = origins
            .into_iter()
            .map(|entry| (entry.stream, entry.origin.node))
            .collect();
        let alive: BTreeSet<String> = nodes.into_iter().map(|node| node.id).collect();
        let me = self.node.node_id().to_owned();
        let mut streams: BTreeSet<String> = rooms.into_iter().collect();
        streams.extend(self.node.directory().claims());

        for stream in &streams {
            let previous = self.modes.get(stream).cloned().unwrap_or_default();
            let next = decide(
                &me,
                self.node.directory().is_origin(stream),
                origins.get(stream),
                &previous,
                &alive,
            );
            // Subscribed before the chat thread acts on the mode, so nothing it asks for
            // (an edge's joins, answered with the history) is missed.
            let input = Topic::ChatInput(stream.clone());
            let events = Topic::Chat(stream.clone());
            let ready = self.want(input, next == Mode::Authority).await
                && self.want(events, matches!(next, Mode::Edge(_))).await;
            if !ready {
                continue;
            }
            if next != previous {
                let command = LinkCommand::Mode {
                    stream: stream.clone(),
                    mode: next.clone(),
                };
                if self.chat.link(command).await.is_err() {
                    return;
                }
                self.modes.insert(stream.clone(), next.clone());
            }
            if next == Mode::Authority
                && let Some(view) = self.node.stream_view(stream).await
            {
                let viewers = view.stream.viewers;
                let _ = self
                    .chat
                    .link(LinkCommand::Watching {
                        stream: stream.clone(),
                        viewers,
                    })
                    .await;
            }
        }
        let forgotten: Vec<String> = self
            .modes
            .keys()
            .filter(|stream| !streams.contains(*stream))
            .cloned()
            .collect();
        for stream in forgotten {
            self.modes.remove(&stream);
            self.want(Topic::ChatInput(stream.clone()), false).await;
            self.want(Topic::Chat(stream.clone()), false).await;
            let _ = self
                .chat
                .link(LinkCommand::Mode {
                    stream,
                    mode: Mode::Local,
                })
                .await;
        }
        let _ = self.chat.link(LinkCommand::Alive { nodes: alive }).await;
    }

    /// Subscribes to `topic` or lets it go; `false` if a wanted subscription failed.
    async fn want(&mut self, topic: Topic, wanted: bool) -> bool {
        if !wanted {
            if let Some(task) = self.subscriptions.remove(&topic) {
                task.abort();
            }
            return true;
        }
        if self.subscriptions.contains_key(&topic) {
            return true;
        }
        match self.node.cluster().subscribe(topic.clone()).await {
            Ok(mut subscription) => {
                let incoming = self.incoming_tx.clone();
                let task = tokio::spawn(async move {
                    while let Some(message) = subscription.recv().await {
                        if incoming.send(message).await.is_err() {
                            return;
                        }
                    }
                });
                self.subscriptions.insert(topic, task);
                true
            }
            Err(error) => {
                tracing::warn!(%error, %topic, "chat: cannot subscribe; trying again next heartbeat");
                false
            }
        }
    }
}

/// A stream's chat mode on this node (`me`): see the module's rules.
fn decide(
    me: &str,
    holds: bool,
    origin: Option<&String>,
    previous: &Mode,
    alive: &BTreeSet<String>,
) -> Mode {
    if holds {
        return Mode::Authority;
    }
    match origin {
        Some(node) if node == me => Mode::Authority,
        Some(node) => Mode::Edge(node.clone()),
        None => match previous {
            Mode::Authority => Mode::Authority,
            Mode::Edge(node) if alive.contains(node) => Mode::Edge(node.clone()),
            Mode::Edge(_) | Mode::Orphaned => Mode::Orphaned,
            Mode::Local => Mode::Local,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alive(ids: &[&str]) -> BTreeSet<String> {
        ids.iter().map(|id| (*id).to_owned()).collect()
    }

    #[test]
    fn the_origin_is_the_authority() {
        let a = "a".to_owned();
        let nodes = alive(&["a", "b"]);
        assert_eq!(
            decide("a", true, None, &Mode::Local, &nodes),
            Mode::Authority
        );
        assert_eq!(
            decide("a", false, Some(&a), &Mode::Local, &nodes),
            Mode::Authority
        );
        assert_eq!(
            decide("b", false, Some(&a), &Mode::Local, &nodes),
            Mode::Edge("a".to_owned())
        );
    }

    #[test]
    fn a_stream_that_ended_keeps_its_last_live_authority() {
        let nodes = alive(&["a", "b"]);
        assert_eq!(
            decide("a", false, None, &Mode::Authority, &nodes),
            Mode::Authority
        );
        let edge = Mode::Edge("a".to_owned());
        assert_eq!(decide("b", false, None, &edge, &nodes), edge);
    }

    #[test]
    fn a_dead_authority_orphans_its_edges_until_a_new_origin() {
        let nodes = alive(&["b", "c"]);
        let edge = Mode::Edge("a".to_owned());
        assert_eq!(decide("b", false, None, &edge, &nodes), Mode::Orphaned);
        assert_eq!(
            decide("b", false, None, &Mode::Orphaned, &nodes),
            Mode::Orphaned
        );
        let c = "c".to_owned();
        assert_eq!(
            decide("b", false, Some(&c), &Mode::Orphaned, &nodes),
            Mode::Edge("c".to_owned())
        );
        assert_eq!(
            decide("b", true, None, &Mode::Orphaned, &nodes),
            Mode::Authority
        );
    }

    #[test]
    fn a_stream_never_published_chats_locally() {
        assert_eq!(
            decide("b", false, None, &Mode::Local, &alive(&["b"])),
            Mode::Local
        );
    }
}
