//! Relays between nodes: this node pulling a stream whose publisher is elsewhere
//! ([`ClusterNode::ensure_relay`]), and answering another node's pull ([`accept_relay_pull`]).
//!
//! A stream is pulled once per node, however many of its viewers are here: the supervisor
//! task of a relay picks its upstream with `directo_cluster::choose_upstream` (the origin
//! while it has room for `--max-relays-per-node` relays, else the shallowest relay with
//! room: a tree), registers itself in Redis so routing and further edges see it, pulls
//! (`pull.rs`) as a WHEP client with a node token, and when the pull breaks — the origin
//! died, the upstream relay left — asks the directory again and pulls again, so viewers here
//! stay connected and continue as after a publisher reconnect. It lets go once no session of
//! the stream (local viewer or another node's pull) has been here for [`RELAY_LINGER`].

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Duration;

use directo_cluster::{OriginHolder, RelayInfo, choose_upstream};
use directo_media::{EngineHandle, Identity, MediaError, Quality, SessionAnswer};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::pull::{PullError, Upstream, pull};
use super::{ClusterNode, api_error};
use crate::error::ApiError;

/// How long a relay stays after its last local session, for a viewer who reloads.
pub const RELAY_LINGER: Duration = Duration::from_secs(5);
/// Pause between two pulls of one stream.
const REPULL_BACKOFF: Duration = Duration::from_millis(500);
/// The longest pause between pulls while the upstream is away.
const REPULL_BACKOFF_MAX: Duration = Duration::from_secs(4);
/// How often a relay checks whether anyone here still watches.
const AUDIENCE_CHECK: Duration = Duration::from_secs(1);

/// The relays this node runs, by stream.
#[derive(Default)]
pub(crate) struct Relays {
    running: Mutex<HashMap<String, RelayTask>>,
    http: reqwest::Client,
}

struct RelayTask {
    task: JoinHandle<()>,
    stop: watch::Sender<bool>,
}

impl Relays {
    /// How many streams this node pulls now.
    pub(crate) fn count(&self) -> usize {
        self.running
            .lock()
            .map(|running| running.values().filter(|r| !r.task.is_finished()).count())
            .unwrap_or(0)
    }

    /// Stops every relay (the node leaves).
    pub(crate) fn stop_all(&self) {
        if let Ok(running) = self.running.lock() {
            for relay in running.values() {
                relay.stop.send_replace(true);
            }
        }
    }
}

impl ClusterNode {
    /// Makes sure `stream`, whose origin is `origin` (another node), reaches this node's
    /// fan-out. Idempotent: one relay per stream and node.
    pub async fn ensure_relay(
        &self,
        stream: &str,
        origin: &OriginHolder,
    ) -> Result<(), directo_cluster::ClusterError> {
        let relays = &self.inner.relays;
        let Ok(mut running) = relays.running.lock() else {
            return Ok(());
        };
        if running.get(stream).is_some_and(|r| !r.task.is_finished()) {
            return Ok(());
        }
        tracing::info!(%stream, origin = %origin.node, "relaying a stream published on another node");
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(supervise(self.clone(), stream.to_owned(), stopped));
        running.insert(stream.to_owned(), RelayTask { task, stop });
        Ok(())
    }

    /// Before a viewer of `stream` is created here: if the stream is neither live here nor
    /// published here, asks the directory where it is and has it relayed. A stream live
    /// nowhere is fine (the viewer waits, as on a single node); a directory that cannot be
    /// reached is `503 cluster_unavailable`.
    pub async fn prepare_viewer(&self, stream: &str) -> Result<(), ApiError> {
        let live_here = self.engine().stream(stream).is_some_and(|info| info.live);
        if live_here || self.directory().is_origin(stream) {
            return Ok(());
        }
        match self.cluster().origin_of(stream).await {
            Ok(Some(origin)) if origin.node != self.node_id() => {
                self.ensure_relay(stream, &origin).await.map_err(api_error)
            }
            Ok(_) => Ok(()),
            Err(error) => Err(api_error(error)),
        }
    }

    /// The address relay pulls bind: the host of this node's URL when it is an IP (the
    /// address other nodes reach this one at), else every interface.
    fn relay_bind(&self) -> IpAddr {
        url::Url::parse(self.node_url())
            .ok()
            .and_then(|url| {
                url.host_str()
                    .and_then(|h| h.trim_matches(['[', ']']).parse().ok())
            })
            .unwrap_or(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED))
    }
}

/// Whether anyone here still needs the stream: a local viewer or another node's pull.
async fn needed_here(engine: &EngineHandle, stream: &str) -> bool {
    engine.sessions(stream).await.is_ok_and(|sessions| {
        sessions
            .iter()
            .any(|s| s.role == signaling_proto::Role::Viewer)
    })
}

/// How long no one here has needed a stream.
#[derive(Default)]
struct Linger {
    since: Option<tokio::time::Instant>,
}

impl Linger {
    /// Takes whether the stream is needed now; `true` once it has not been for
    /// [`RELAY_LINGER`].
    fn over(&mut self, needed: bool) -> bool {
        if needed {
            self.since = None;
            return false;
        }
        self.since
            .get_or_insert_with(tokio::time::Instant::now)
            .elapsed()
            >= RELAY_LINGER
    }
}

/// One stream's relay: pull, and pull again when the pull breaks, while anyone here needs it.
async fn supervise(node: ClusterNode, stream: String, mut stop: watch::Receiver<bool>) {
    let engine = node.engine().clone();
    let cluster = node.cluster();
    let mut backoff = REPULL_BACKOFF;
    let mut linger = Linger::default();
    while !*stop.borrow() {
        if linger.over(needed_here(&engine, &stream).await) {
            break;
        }
        let origin = match cluster.origin_of(&stream).await {
            Ok(Some(origin)) if origin.node != node.node_id() => origin,
            // Published here now, or nowhere: nothing to pull (viewers wait here).
            Ok(Some(_)) => break,
            Ok(None) | Err(_) => {
                wait(&mut stop, backoff).await;
                backoff = (backoff * 2).min(REPULL_BACKOFF_MAX);
                continue;
            }
        };
        let relays = cluster.relays_of(&stream).await.unwrap_or_default();
        let (upstream_node, upstream_url, depth) =
            match choose_upstream(&origin, &relays, node.inner.max_relays, node.node_id()) {
                Some(upstream) => (upstream.node, upstream.url, upstream.depth),
                // Every node is at its relay limit: the origin still serves best.
                None => (origin.node.clone(), origin.url.clone(), 1),
            };
        let info = RelayInfo {
            upstream: upstream_node.clone(),
            depth,
        };
        if let Err(error) = cluster.register_relay(&stream, info).await {
            tracing::debug!(%stream, %error, "could not register the relay");
        }
        let token = match node.inner.tokens.mint_node(&stream, node.node_id()) {
            Ok(token) => token,
            Err(error) => {
                tracing::error!(%error, "cannot sign a node token; no relay");
                break;
            }
        };
        let feed = match engine.open_relay(&stream).await {
            Ok(feed) => feed,
            Err(MediaError::StreamBusy(_)) => break,
            Err(error) => {
                tracing::warn!(%stream, %error, "the engine refused the relay");
                break;
            }
        };
        let upstream = Upstream {
            http: &node.inner.relays.http,
            url: &upstream_url,
            stream: &stream,
            token: &token,
            bind: node.relay_bind(),
        };
        let (audience_stop, audience_stopped) = watch::channel(false);
        let watcher = tokio::spawn(watch_audience(
            engine.clone(),
            stream.clone(),
            stop.clone(),
            audience_stop,
        ));
        let started = tokio::time::Instant::now();
        let result = pull(&upstream, feed, audience_stopped).await;
        watcher.abort();
        match result {
            Ok(()) => {
                tracing::info!(%stream, upstream = %upstream_node, "relay stopped");
            }
            Err(error @ PullError::NotLive) => {
                tracing::debug!(%stream, upstream = %upstream_node, %error, "nothing to relay yet");
            }
            Err(error) => {
                tracing::warn!(%stream, upstream = %upstream_node, %error, "relay broke; pulling again");
            }
        }
        if started.elapsed() > Duration::from_secs(10) {
            backoff = REPULL_BACKOFF;
        }
        wait(&mut stop, backoff).await;
        backoff = (backoff * 2).min(REPULL_BACKOFF_MAX);
    }
    if let Err(error) = cluster.unregister_relay(&stream).await {
        tracing::debug!(%stream, %error, "could not unregister the relay");
    }
    tracing::info!(%stream, "relay let go");
}

/// Sets `stop_pull` once no one here has needed the stream for [`RELAY_LINGER`], or the
/// relay is stopped.
async fn watch_audience(
    engine: EngineHandle,
    stream: String,
    mut stop: watch::Receiver<bool>,
    stop_pull: watch::Sender<bool>,
) {
    let mut linger = Linger::default();
    loop {
        if *stop.borrow() {
            break;
        }
        if linger.over(needed_here(&engine, &stream).await) {
            break;
        }
        wait(&mut stop, AUDIENCE_CHECK).await;
    }
    stop_pull.send_replace(true);
}

/// Sleeps `duration` or until `stop` turns true.
async fn wait(stop: &mut watch::Receiver<bool>, duration: Duration) {
    let _ = tokio::time::timeout(duration, stop.wait_for(|stop| *stop)).await;
}

/// Answers another node's pull of `stream` (a WHEP POST carrying a node token; `relay_for`
/// is the pulling node's id). The session is a viewer pinned to the layer the pull asked for
/// (`quality`), marked as a relay so it is not counted in the stream's audience.
pub async fn accept_relay_pull(
    engine: &EngineHandle,
    stream: &str,
    offer: String,
    identity: Identity,
    relay_for: &str,
    quality: Quality,
) -> Result<SessionAnswer, MediaError> {
    tracing::info!(%stream, node = %relay_for, quality = quality.as_str(), "another node pulls the stream");
    engine
        .watch_with_quality(stream, offer, identity, quality)
        .await
}
