//! The handle the server holds: start, the registry, the stream directory, relays, viewer
//! counts and pub/sub.
//!
//! Reads go straight to Redis. Writes that change what this node holds go to the heartbeat
//! task ([`crate::keeper`]), which owns that state; subscriptions go to the pub/sub task
//! ([`crate::bus`]). Every name is checked here, before any command is built.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use serde::Serialize;
use tokio::sync::{broadcast, mpsc, oneshot};

use crate::audience::StreamViewers;
use crate::backend::Backend;
use crate::bus::{Bus, BusCommand, Subscription, now_ms};
use crate::config::ClusterConfig;
use crate::error::{ClusterError, Result};
use crate::event::ClusterEvent;
use crate::keeper::{Identity, Keeper, KeeperCommand};
use crate::keys::Keys;
use crate::leased;
use crate::message::Sealer;
use crate::names::{NodeId, StreamName};
use crate::node::{NodeInfo, NodeLoad, NodeRecord};
use crate::origin::{Claim, OriginHolder, StreamOrigin};
use crate::relay::{Relay, RelayInfo, RelayRecord, count_children};
use crate::stats::{ClusterStats, Counters};
use crate::topic::Topic;

/// How many events a slow [`Cluster::events`] receiver may miss before it lags.
const EVENT_QUEUE: usize = 64;

/// A node's membership in the cluster; cheap to clone, every clone is the same node.
///
/// Dropping every clone without [`Cluster::shutdown`] stops the heartbeats and leaves the
/// entries to expire within a lease, as a crash would.
#[derive(Clone)]
pub struct Cluster {
    inner: Arc<Inner>,
}

struct Inner {
    backend: Backend,
    keys: Keys,
    node_id: String,
    sealer: Sealer,
    keeper: mpsc::UnboundedSender<KeeperCommand>,
    bus: mpsc::UnboundedSender<BusCommand>,
    counters: Arc<Counters>,
    events: broadcast::Sender<ClusterEvent>,
}

impl Cluster {
    /// Joins the cluster: checks `config`, registers this node, and starts the heartbeat and
    /// pub/sub tasks (on the current tokio runtime).
    ///
    /// Fails with `InvalidInput` for a bad config (nothing is sent to Redis), `Unavailable`
    /// when Redis cannot be reached (the caller may retry), and `Conflict` when another live
    /// process heartbeats the same node id. A record left by a dead process with this id is
    /// taken over after watching it for up to two heartbeats.
    pub async fn start(config: ClusterConfig) -> Result<Cluster> {
        config.validate()?;
        let timing = config.timing;
        let backend = Backend::new(&config.url, config.tls_ca_pem.as_deref(), timing.op_timeout)?;
        let keys = Keys::new(&config.namespace);
        let me = Identity {
            node_id: config.node_id.clone(),
            url: config.node_url.clone(),
            instance: uuid::Uuid::new_v4().simple().to_string(),
            started_at_ms: now_ms(),
        };
        refuse_live_duplicate(&backend, &keys, &me, timing.heartbeat).await?;

        let counters = Arc::new(Counters::default());
        let (events, _) = broadcast::channel(EVENT_QUEUE);
        let mut keeper = Keeper::new(
            backend.clone(),
            keys.clone(),
            me,
            timing.lease_ms(),
            timing.heartbeat,
            counters.clone(),
            events.clone(),
        );
        keeper.heartbeat().await?;
        counters.redis_reachable.store(true, Ordering::Relaxed);
        let (keeper_tx, keeper_rx) = mpsc::unbounded_channel();
        tokio::spawn(keeper.run(keeper_rx));

        let (bus_tx, bus_rx) = mpsc::unbounded_channel();
        let bus = Bus::new(
            backend.clone(),
            Sealer::new(&config.secret),
            counters.clone(),
            bus_rx,
            timing.heartbeat,
            timing.max_message_age,
        );
        tokio::spawn(bus.run());
        tracing::info!(node = %config.node_id, namespace = %config.namespace, "joined the cluster");

        Ok(Cluster {
            inner: Arc::new(Inner {
                backend,
                keys,
                node_id: config.node_id,
                sealer: Sealer::new(&config.secret),
                keeper: keeper_tx,
                bus: bus_tx,
                counters,
                events,
            }),
        })
    }

    /// This node's id.
    pub fn node_id(&self) -> &str {
        &self.inner.node_id
    }

    /// Sets the load the next heartbeat reports (no Redis call here).
    pub fn set_load(&self, load: NodeLoad) {
        let _ = self.inner.keeper.send(KeeperCommand::SetLoad(load));
    }

    /// The live nodes (this one included), by id.
    pub async fn nodes(&self) -> Result<Vec<NodeInfo>> {
        let keys = &self.inner.keys;
        let entries = leased::list(&self.inner.backend, &keys.nodes(), |member| {
            NodeId::check(member).ok().map(|node| keys.node(node))
        })
        .await?;
        Ok(entries
            .into_iter()
            .filter_map(|(id, json)| parse::<NodeRecord>(&id, &json))
            .map(NodeInfo::from)
            .collect())
    }

    /// Claims `stream`'s origin for this node, atomically: [`Claim::Acquired`] if it was free
    /// or already ours (this node then renews it every heartbeat until released), else who
    /// holds it.
    pub async fn claim_origin(&self, stream: &str) -> Result<Claim> {
        StreamName::check(stream)?;
        self.ask_keeper(|reply| KeeperCommand::Claim {
            stream: stream.to_owned(),
            reply,
        })
        .await
    }

    /// Gives up this node's claim on `stream`; `true` if it was ours and is deleted, `false`
    /// if another node holds it or nobody does. Renewal stops even when Redis is
    /// unreachable, so the claim then ends within a lease.
    pub async fn release_origin(&self, stream: &str) -> Result<bool> {
        StreamName::check(stream)?;
        self.ask_keeper(|reply| KeeperCommand::Release {
            stream: stream.to_owned(),
            reply,
        })
        .await
    }

    /// The node holding `stream`'s publisher, if any.
    pub async fn origin_of(&self, stream: &str) -> Result<Option<OriginHolder>> {
        let key = self.inner.keys.origin(StreamName::check(stream)?);
        let mut pipe = redis::pipe();
        pipe.get(&key);
        let (value,): (Option<String>,) = self.inner.backend.query(&pipe).await?;
        value
            .map(|json| OriginHolder::from_json(&key, &json))
            .transpose()
    }

    /// Every stream with a live origin in the cluster, by name.
    pub async fn streams(&self) -> Result<Vec<StreamOrigin>> {
        let keys = &self.inner.keys;
        let entries = leased::list(&self.inner.backend, &keys.streams(), |member| {
            StreamName::check(member)
                .ok()
                .map(|stream| keys.origin(stream))
        })
        .await?;
        Ok(entries
            .into_iter()
            .filter_map(|(stream, json)| {
                let origin = parse::<OriginHolder>(&stream, &json)?;
                Some(StreamOrigin { stream, origin })
            })
            .collect())
    }

    /// Registers this node as a relay of `stream` (it pulls from `info.upstream`); renewed
    /// every heartbeat until unregistered.
    pub async fn register_relay(&self, stream: &str, info: RelayInfo) -> Result<()> {
        StreamName::check(stream)?;
        NodeId::check(&info.upstream)?;
        self.ask_keeper(|reply| KeeperCommand::RegisterRelay {
            stream: stream.to_owned(),
            info,
            reply,
        })
        .await
    }

    /// Removes this node's relay of `stream`.
    pub async fn unregister_relay(&self, stream: &str) -> Result<()> {
        StreamName::check(stream)?;
        self.ask_keeper(|reply| KeeperCommand::UnregisterRelay {
            stream: stream.to_owned(),
            reply,
        })
        .await
    }

    /// The live relays of `stream`, by node id, each with how many relays pull from it; feed
    /// them to [`crate::choose_upstream`].
    pub async fn relays_of(&self, stream: &str) -> Result<Vec<Relay>> {
        let stream = StreamName::check(stream)?;
        let keys = &self.inner.keys;
        let entries = leased::list(&self.inner.backend, &keys.relays(stream), |member| {
            NodeId::check(member)
                .ok()
                .map(|node| keys.relay(stream, node))
        })
        .await?;
        let mut relays: Vec<Relay> = entries
            .into_iter()
            .filter_map(|(node, json)| parse::<RelayRecord>(&node, &json))
            .map(|record| Relay {
                node: record.node,
                url: record.url,
                info: RelayInfo {
                    upstream: record.upstream,
                    depth: record.depth,
                },
                children: 0,
            })
            .collect();
        count_children(&mut relays);
        Ok(relays)
    }

    /// Sets how many viewers of `stream` this node serves; the next heartbeat writes it, and
    /// 0 removes the entry.
    pub fn set_stream_viewers(&self, stream: &str, count: u64) -> Result<()> {
        StreamName::check(stream)?;
        self.inner
            .keeper
            .send(KeeperCommand::SetViewers {
                stream: stream.to_owned(),
                count,
            })
            .map_err(|_| ClusterError::Stopped)
    }

    /// `stream`'s viewers across the cluster, as the nodes last reported them.
    pub async fn stream_viewers(&self, stream: &str) -> Result<StreamViewers> {
        let stream = StreamName::check(stream)?;
        let keys = &self.inner.keys;
        let entries = leased::list(&self.inner.backend, &keys.audience(stream), |member| {
            NodeId::check(member)
                .ok()
                .map(|node| keys.viewers(stream, node))
        })
        .await?;
        let per_node: Vec<(String, u64)> = entries
            .into_iter()
            .filter_map(|(node, count)| Some((node, count.parse().ok()?)))
            .collect();
        Ok(StreamViewers {
            total: per_node.iter().map(|(_, count)| count).sum(),
            per_node,
        })
    }

    /// Publishes `payload` on `topic`, signed; answers how many nodes' subscriber
    /// connections received it (this node's included when it subscribes to the topic).
    pub async fn publish(&self, topic: &Topic, payload: impl AsRef<[u8]>) -> Result<usize> {
        let channel = topic.channel(&self.inner.keys)?;
        let frame =
            self.inner
                .sealer
                .seal(&channel, &self.inner.node_id, now_ms(), payload.as_ref());
        let mut pipe = redis::pipe();
        pipe.publish(&channel, frame);
        let (receivers,): (usize,) = self.inner.backend.query(&pipe).await?;
        Ok(receivers)
    }

    /// Publishes `value` as JSON on `topic`; see [`Cluster::publish`].
    pub async fn publish_json<T: Serialize>(&self, topic: &Topic, value: &T) -> Result<usize> {
        let payload = serde_json::to_vec(value).map_err(|error| {
            ClusterError::InvalidInput(format!("the message does not serialize to JSON: {error}"))
        })?;
        self.publish(topic, payload).await
    }

    /// Subscribes to `topic`: returns once Redis confirmed, so anything published after
    /// this returns is delivered (while the connection holds). Every message is verified;
    /// forged, stale and replayed ones are dropped and counted in [`Cluster::stats`].
    pub async fn subscribe(&self, topic: Topic) -> Result<Subscription> {
        let channel = topic.channel(&self.inner.keys)?;
        let (reply, answer) = oneshot::channel();
        self.inner
            .bus
            .send(BusCommand::Subscribe {
                channel,
                topic,
                reply,
            })
            .map_err(|_| ClusterError::Stopped)?;
        answer.await.map_err(|_| ClusterError::Stopped)?
    }

    /// Events from the background tasks (Redis lost or back, an origin claim lost).
    pub fn events(&self) -> broadcast::Receiver<ClusterEvent> {
        self.inner.events.subscribe()
    }

    /// The counters of dropped messages and failed heartbeats.
    pub fn stats(&self) -> ClusterStats {
        self.inner.counters.snapshot()
    }

    /// Leaves the cluster cleanly: deletes this node's record, releases its claims, removes
    /// its relays and viewer counts, and stops the background tasks (for every clone).
    /// Fails with `Unavailable` if Redis cannot be reached; the entries then expire within a
    /// lease.
    pub async fn shutdown(&self) -> Result<()> {
        let left = self
            .ask_keeper(|reply| KeeperCommand::Shutdown { reply })
            .await;
        let _ = self.inner.bus.send(BusCommand::Stop);
        left
    }

    /// Sends a command to the heartbeat task and waits for its answer.
    async fn ask_keeper<T>(
        &self,
        command: impl FnOnce(oneshot::Sender<Result<T>>) -> KeeperCommand,
    ) -> Result<T> {
        let (reply, answer) = oneshot::channel();
        self.inner
            .keeper
            .send(command(reply))
            .map_err(|_| ClusterError::Stopped)?;
        answer.await.map_err(|_| ClusterError::Stopped)?
    }
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("node_id", &self.inner.node_id)
            .field("namespace", &self.inner.keys.namespace())
            .finish_non_exhaustive()
    }
}

/// Refuses to start when another live process heartbeats `me`'s node id: its record is there
/// and changes while we watch. Watching lasts two heartbeats (one of slack for a late beat)
/// or until the record expires, whichever comes first; a dead process's record is then
/// simply overwritten.
async fn refuse_live_duplicate(
    backend: &Backend,
    keys: &Keys,
    me: &Identity,
    heartbeat: std::time::Duration,
) -> Result<()> {
    let key = keys.node(NodeId::check(&me.node_id)?);
    let read = || async {
        let mut pipe = redis::pipe();
        pipe.get(&key);
        let (value,): (Option<String>,) = backend.query(&pipe).await?;
        Ok::<_, ClusterError>(value.and_then(|json| parse::<NodeRecord>(&key, &json)))
    };
    let Some(first) = read().await? else {
        return Ok(());
    };
    let deadline = tokio::time::Instant::now() + heartbeat * 2;
    while tokio::time::Instant::now() < deadline {
        tokio::time::sleep(heartbeat / 4).await;
        match read().await? {
            None => return Ok(()),
            Some(now) if now.instance != first.instance || now.beat != first.beat => {
                return Err(ClusterError::Conflict(format!(
                    "node id {:?} is heartbeating from another live process ({}); give each \
                     node its own id",
                    me.node_id, now.url
                )));
            }
            Some(_) => {}
        }
    }
    Ok(())
}

/// `json` as a `T`, or `None` with a warning: one foreign value must not hide every other
/// entry of a listing.
fn parse<T: serde::de::DeserializeOwned>(name: &str, json: &str) -> Option<T> {
    match serde_json::from_str(json) {
        Ok(value) => Some(value),
        Err(error) => {
            tracing::warn!(entry = name, %error, "skipped an unreadable cluster entry");
            None
        }
    }
}
