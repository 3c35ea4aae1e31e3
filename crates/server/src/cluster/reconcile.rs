//! The loop that keeps what Redis says about this node in step with its engine, once a
//! heartbeat: the load it reports, its viewer count of each stream, the claims of streams
//! whose publisher is gone, relays for viewers waiting for a stream published elsewhere,
//! and the cluster gauges of `/metrics`. It also reacts to the cluster's own events: a
//! claim lost to another node ends the local publisher, which is no longer the origin.
//!
//! The engine is read from its snapshot; the only engine commands are one `sessions` per
//! claimed stream. Redis is not asked for anything while the heartbeat cannot reach it, so
//! a hung Redis does not stretch the loop.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use directo_cluster::ClusterEvent;
use tokio::sync::broadcast::error::RecvError;
use tokio::time::MissedTickBehavior;

use super::ClusterNode;
use super::counts::Reported;
use super::directory::ReleaseTimer;
use super::load::{CpuMeter, node_load};

/// How often the loop runs: the cluster crate's default heartbeat.
pub const TICK: Duration = Duration::from_secs(1);
/// The cluster gauges cost a few Redis round trips per stream: refreshed every few ticks.
const METRICS_EVERY_TICKS: u64 = 5;

/// What the loop remembers between ticks.
#[derive(Default)]
struct State {
    cpu: CpuMeter,
    releases: ReleaseTimer,
    /// Streams whose viewer count this node reported as non-zero.
    counted: BTreeSet<String>,
    gauges: Reported,
    ticks: u64,
}

/// Runs until the task is aborted ([`ClusterNode::leave`]).
pub async fn run(node: ClusterNode) {
    let mut events = node.cluster().events();
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut state = State::default();
    loop {
        tokio::select! {
            _ = tick.tick() => node.reconcile(&mut state).await,
            event = events.recv() => match event {
                Ok(event) => node.on_event(event).await,
                Err(RecvError::Lagged(missed)) => {
                    tracing::warn!(missed, "missed cluster events; the next heartbeat catches up");
                }
                Err(RecvError::Closed) => return,
            }
        }
    }
}

impl ClusterNode {
    async fn reconcile(&self, state: &mut State) {
        let now = Instant::now();
        let cluster = self.cluster();
        let streams = self.engine().streams();
        cluster.set_load(node_load(
            &streams,
            state.cpu.sample(now),
            self.inner.max_viewers,
            self.is_draining(),
        ));

        let mut counted = BTreeSet::new();
        for info in streams.iter().filter(|info| info.viewers > 0) {
            if cluster
                .set_stream_viewers(&info.name, info.viewers as u64)
                .is_ok()
            {
                counted.insert(info.name.clone());
            }
        }
        for gone in state.counted.difference(&counted) {
            let _ = cluster.set_stream_viewers(gone, 0);
        }
        state.counted = counted;

        let mut claimed = Vec::new();
        for stream in self.directory().claims() {
            let has_publisher = match self.engine().sessions(&stream).await {
                Ok(sessions) => sessions
                    .iter()
                    .any(|s| s.role == signaling_proto::Role::Publisher),
                // The engine is shutting down: its streams go with it.
                Err(_) => false,
            };
            claimed.push((stream, has_publisher));
        }
        for stream in state.releases.due(&claimed, now) {
            tracing::info!(%stream, "the stream's publisher has not come back");
            self.release(&stream).await;
        }

        if !cluster.stats().redis_reachable {
            return;
        }
        for info in streams.iter() {
            let waiting = info.viewers > 0 && !info.live && !self.directory().is_origin(&info.name);
            if !waiting {
                continue;
            }
            if let Ok(Some(origin)) = cluster.origin_of(&info.name).await
                && origin.node != self.node_id()
                && let Err(error) = self.ensure_relay(&info.name, &origin).await
            {
                tracing::warn!(stream = %info.name, %error, "could not relay the stream here");
            }
        }
        if state.ticks.is_multiple_of(METRICS_EVERY_TICKS) {
            self.refresh_metrics(&mut state.gauges).await;
        }
        state.ticks += 1;
    }

    async fn on_event(&self, event: ClusterEvent) {
        match event {
            ClusterEvent::OriginLost { stream, holder } => {
                self.directory().forget(&stream);
                tracing::warn!(
                    %stream,
                    holder = ?holder.map(|h| h.node),
                    "another node is the stream's origin now: ending the publisher here"
                );
                let engine = self.engine();
                if let Ok(sessions) = engine.sessions(&stream).await {
                    for publisher in sessions
                        .iter()
                        .filter(|s| s.role == signaling_proto::Role::Publisher)
                    {
                        let _ = engine.close(&publisher.session).await;
                    }
                }
            }
            ClusterEvent::RedisLost { .. } => {
                metrics::gauge!("directo_cluster_redis_reachable").set(0.0);
            }
            ClusterEvent::RedisBack => {
                metrics::gauge!("directo_cluster_redis_reachable").set(1.0);
            }
        }
    }
}
