//! The heartbeat task: owns everything this node holds in Redis and rewrites all of it every
//! heartbeat.
//!
//! Holding means refreshing: the node record, each origin claim, each relay and each viewer
//! count is rewritten in one pipeline per heartbeat, not written once and extended. A Redis
//! that restarted empty is therefore refilled within one heartbeat (the failure of a
//! write-once lease, OvenMediaEngine #1530), and a claim that Redis lost is re-created.
//! Writes that change what is held (claim, release, relays) come to this task as commands,
//! so they are ordered with the heartbeats: a release can never be undone by a renewal that
//! was already under way.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::sync::{broadcast, mpsc, oneshot};
use tokio::time::MissedTickBehavior;

use crate::backend::Backend;
use crate::error::Result;
use crate::event::ClusterEvent;
use crate::keys::Keys;
use crate::leased;
use crate::names::{NodeId, StreamName};
use crate::node::{NodeLoad, NodeRecord};
use crate::origin::{Claim, OriginHolder};
use crate::relay::{RelayInfo, RelayRecord};
use crate::scripts;
use crate::stats::Counters;

/// What the handles ask of the heartbeat task. Stream names and node ids were checked by
/// the handle; the keeper checks them again only because the key schema takes checked names.
pub(crate) enum KeeperCommand {
    Claim {
        stream: String,
        reply: oneshot::Sender<Result<Claim>>,
    },
    Release {
        stream: String,
        reply: oneshot::Sender<Result<bool>>,
    },
    RegisterRelay {
        stream: String,
        info: RelayInfo,
        reply: oneshot::Sender<Result<()>>,
    },
    UnregisterRelay {
        stream: String,
        reply: oneshot::Sender<Result<()>>,
    },
    SetViewers {
        stream: String,
        count: u64,
    },
    SetLoad(NodeLoad),
    Shutdown {
        reply: oneshot::Sender<Result<()>>,
    },
}

/// Who this node is, as its records say.
#[derive(Debug, Clone)]
pub(crate) struct Identity {
    pub(crate) node_id: String,
    pub(crate) url: String,
    pub(crate) instance: String,
    pub(crate) started_at_ms: u64,
}

/// The heartbeat task's state: what this node holds.
pub(crate) struct Keeper {
    backend: Backend,
    keys: Keys,
    me: Identity,
    /// The lease in ms, as the scripts take it.
    lease_ms: String,
    heartbeat: Duration,
    counters: Arc<Counters>,
    events: broadcast::Sender<ClusterEvent>,
    load: NodeLoad,
    beat: u64,
    claims: BTreeSet<String>,
    relays: BTreeMap<String, RelayInfo>,
    viewers: BTreeMap<String, u64>,
    /// Streams whose count went to zero: their entries are deleted at the next heartbeat.
    viewers_gone: BTreeSet<String>,
}

impl Keeper {
    /// A keeper holding nothing yet.
    pub(crate) fn new(
        backend: Backend,
        keys: Keys,
        me: Identity,
        lease_ms: u64,
        heartbeat: Duration,
        counters: Arc<Counters>,
        events: broadcast::Sender<ClusterEvent>,
    ) -> Self {
        Self {
            backend,
            keys,
            me,
            lease_ms: lease_ms.to_string(),
            heartbeat,
            counters,
            events,
            load: NodeLoad::default(),
            beat: 0,
            claims: BTreeSet::new(),
            relays: BTreeMap::new(),
            viewers: BTreeMap::new(),
            viewers_gone: BTreeSet::new(),
        }
    }

    /// Runs heartbeats and commands until shut down. When every handle is dropped without a
    /// shutdown it simply stops: the entries then expire as a crashed node's would.
    pub(crate) async fn run(mut self, mut commands: mpsc::UnboundedReceiver<KeeperCommand>) {
        let mut tick = tokio::time::interval(self.heartbeat);
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        // The first tick fires at once; `start` has just written everything.
        tick.tick().await;
        loop {
            tokio::select! {
                // Commands first: once every handle is gone, no further heartbeat goes out.
                biased;
                command = commands.recv() => match command {
                    Some(command) => {
                        if !self.handle(command).await {
                            return;
                        }
                    }
                    None => return,
                },
                _ = tick.tick() => {
                    let result = self.heartbeat().await;
                    self.note_reachability(result);
                }
            }
        }
    }

    /// One heartbeat: rewrites everything held. Also `start`'s first registration.
    pub(crate) async fn heartbeat(&mut self) -> Result<()> {
        self.beat += 1;
        let node = NodeId::check(&self.me.node_id)?;
        let record = NodeRecord {
            id: self.me.node_id.clone(),
            url: self.me.url.clone(),
            instance: self.me.instance.clone(),
            beat: self.beat,
            started_at_ms: self.me.started_at_ms,
            load: self.load.clone(),
        };
        // Serializing numbers and strings cannot fail.
        let record = serde_json::to_string(&record).unwrap_or_default();
        let mut pipe = redis::pipe();
        let node_key = self.keys.node(node);
        let nodes_key = self.keys.nodes();
        leased::touch(
            &mut pipe,
            &node_key,
            &nodes_key,
            &record,
            &self.lease_ms,
            node.as_str(),
        );
        let claim_value = self.claim_value();
        for stream in &self.claims {
            let stream = StreamName::check(stream)?;
            scripts::add(
                &mut pipe,
                &scripts::CLAIM,
                &[&self.keys.origin(stream), &self.keys.streams()],
                &[&claim_value, &self.lease_ms, stream.as_str(), node.as_str()],
            );
        }
        for (stream, info) in &self.relays {
            let stream = StreamName::check(stream)?;
            let value = self.relay_value(info);
            leased::touch(
                &mut pipe,
                &self.keys.relay(stream, node),
                &self.keys.relays(stream),
                &value,
                &self.lease_ms,
                node.as_str(),
            );
        }
        for (stream, count) in &self.viewers {
            let stream = StreamName::check(stream)?;
            leased::touch(
                &mut pipe,
                &self.keys.viewers(stream, node),
                &self.keys.audience(stream),
                &count.to_string(),
                &self.lease_ms,
                node.as_str(),
            );
        }
        for stream in &self.viewers_gone {
            let stream = StreamName::check(stream)?;
            leased::remove(
                &mut pipe,
                &self.keys.viewers(stream, node),
                &self.keys.audience(stream),
                node.as_str(),
            );
        }
        // Only the claims answer (everything else is ignored), in the order they were added.
        let holders: Vec<String> = self.backend.query(&pipe).await?;
        self.viewers_gone.clear();
        let claimed: Vec<String> = self.claims.iter().cloned().collect();
        for (stream, holder) in claimed.into_iter().zip(holders) {
            self.check_claim(stream, &holder);
        }
        Ok(())
    }

    /// Records whether Redis answered, and says so when that changed.
    fn note_reachability(&mut self, result: Result<()>) {
        let was = self
            .counters
            .redis_reachable
            .swap(result.is_ok(), Ordering::Relaxed);
        match result {
            Ok(()) if !was => {
                tracing::info!("cluster heartbeat reaches Redis again");
                let _ = self.events.send(ClusterEvent::RedisBack);
            }
            Ok(()) => {}
            Err(error) => {
                Counters::bump(&self.counters.heartbeats_failed);
                if was {
                    tracing::warn!(%error, "cluster heartbeat failed; retrying every heartbeat");
                    let _ = self.events.send(ClusterEvent::RedisLost {
                        reason: error.to_string(),
                    });
                }
            }
        }
    }

    /// A renewed claim: still ours, or lost to another node while our lease had run out.
    fn check_claim(&mut self, stream: String, holder: &str) {
        let holder = match StreamName::check(&stream) {
            Ok(checked) => OriginHolder::from_json(&self.keys.origin(checked), holder),
            Err(error) => Err(error),
        };
        let holder = match holder {
            Ok(holder) if holder.node == self.me.node_id => return,
            Ok(holder) => Some(holder),
            Err(error) => {
                // Not a value we write: the claim is not ours any more, whatever it is.
                tracing::warn!(%stream, %error, "origin claim overwritten by an unreadable value");
                None
            }
        };
        tracing::warn!(%stream, holder = ?holder.as_ref().map(|h| &h.node), "origin claim lost");
        self.claims.remove(&stream);
        Counters::bump(&self.counters.origins_lost);
        let _ = self
            .events
            .send(ClusterEvent::OriginLost { stream, holder });
    }

    /// Carries out one command; `false` once the node has left and the task should end.
    async fn handle(&mut self, command: KeeperCommand) -> bool {
        match command {
            KeeperCommand::Claim { stream, reply } => {
                let _ = reply.send(self.claim(stream).await);
            }
            KeeperCommand::Release { stream, reply } => {
                let _ = reply.send(self.release(stream).await);
            }
            KeeperCommand::RegisterRelay {
                stream,
                info,
                reply,
            } => {
                let _ = reply.send(self.register_relay(stream, info).await);
            }
            KeeperCommand::UnregisterRelay { stream, reply } => {
                let _ = reply.send(self.unregister_relay(stream).await);
            }
            KeeperCommand::SetViewers { stream, count } => {
                if count == 0 {
                    if self.viewers.remove(&stream).is_some() {
                        self.viewers_gone.insert(stream);
                    }
                } else {
                    self.viewers_gone.remove(&stream);
                    self.viewers.insert(stream, count);
                }
            }
            KeeperCommand::SetLoad(load) => self.load = load,
            KeeperCommand::Shutdown { reply } => {
                let _ = reply.send(self.leave().await);
                return false;
            }
        }
        true
    }

    async fn claim(&mut self, stream: String) -> Result<Claim> {
        let checked = StreamName::check(&stream)?;
        let key = self.keys.origin(checked);
        let mut pipe = redis::pipe();
        scripts::add(
            &mut pipe,
            &scripts::CLAIM,
            &[&key, &self.keys.streams()],
            &[
                &self.claim_value(),
                &self.lease_ms,
                checked.as_str(),
                &self.me.node_id,
            ],
        );
        let (holder,): (String,) = self.backend.query(&pipe).await?;
        let holder = OriginHolder::from_json(&key, &holder)?;
        if holder.node == self.me.node_id {
            self.claims.insert(stream);
            Ok(Claim::Acquired)
        } else {
            Ok(Claim::HeldBy(holder))
        }
    }

    async fn release(&mut self, stream: String) -> Result<bool> {
        // Stop renewing first: if Redis is unreachable now, the claim still ends within a
        // lease.
        self.claims.remove(&stream);
        let checked = StreamName::check(&stream)?;
        let mut pipe = redis::pipe();
        scripts::add(
            &mut pipe,
            &scripts::RELEASE,
            &[&self.keys.origin(checked), &self.keys.streams()],
            &[&self.me.node_id, checked.as_str()],
        );
        let (released,): (i64,) = self.backend.query(&pipe).await?;
        Ok(released == 1)
    }

    async fn register_relay(&mut self, stream: String, info: RelayInfo) -> Result<()> {
        let checked = StreamName::check(&stream)?;
        let node = NodeId::check(&self.me.node_id)?;
        let mut pipe = redis::pipe();
        leased::touch(
            &mut pipe,
            &self.keys.relay(checked, node),
            &self.keys.relays(checked),
            &self.relay_value(&info),
            &self.lease_ms,
            node.as_str(),
        );
        self.backend.query::<()>(&pipe).await?;
        self.relays.insert(stream, info);
        Ok(())
    }

    async fn unregister_relay(&mut self, stream: String) -> Result<()> {
        self.relays.remove(&stream);
        let checked = StreamName::check(&stream)?;
        let node = NodeId::check(&self.me.node_id)?;
        let mut pipe = redis::pipe();
        leased::remove(
            &mut pipe,
            &self.keys.relay(checked, node),
            &self.keys.relays(checked),
            node.as_str(),
        );
        self.backend.query::<()>(&pipe).await
    }

    /// Removes everything this node holds (a clean leave). Claims go through the
    /// compare-and-delete script: one lost meanwhile is not ours to delete.
    async fn leave(&mut self) -> Result<()> {
        let node = NodeId::check(&self.me.node_id)?;
        let mut pipe = redis::pipe();
        leased::remove(
            &mut pipe,
            &self.keys.node(node),
            &self.keys.nodes(),
            node.as_str(),
        );
        for stream in std::mem::take(&mut self.claims) {
            let stream = StreamName::check(&stream)?;
            scripts::add(
                &mut pipe,
                &scripts::RELEASE,
                &[&self.keys.origin(stream), &self.keys.streams()],
                &[node.as_str(), stream.as_str()],
            );
            pipe.ignore();
        }
        let viewers: BTreeSet<String> = std::mem::take(&mut self.viewers).into_keys().collect();
        for stream in viewers.iter().chain(&self.viewers_gone) {
            let stream = StreamName::check(stream)?;
            leased::remove(
                &mut pipe,
                &self.keys.viewers(stream, node),
                &self.keys.audience(stream),
                node.as_str(),
            );
        }
        for stream in std::mem::take(&mut self.relays).into_keys() {
            let stream = StreamName::check(&stream)?;
            leased::remove(
                &mut pipe,
                &self.keys.relay(stream, node),
                &self.keys.relays(stream),
                node.as_str(),
            );
        }
        self.backend.query::<()>(&pipe).await
    }

    /// The value of every claim this node writes.
    fn claim_value(&self) -> String {
        OriginHolder {
            node: self.me.node_id.clone(),
            url: self.me.url.clone(),
        }
        .to_json()
    }

    fn relay_value(&self, info: &RelayInfo) -> String {
        let record = RelayRecord {
            node: self.me.node_id.clone(),
            url: self.me.url.clone(),
            upstream: info.upstream.clone(),
            depth: info.depth,
        };
        // Serializing strings and a number cannot fail.
        serde_json::to_string(&record).unwrap_or_default()
    }
}
