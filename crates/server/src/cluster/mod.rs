//! This node's part in a cluster of Directo nodes coordinated through Redis
//! (`directo-cluster`): which streams it is the origin of, where a viewer it has no room for
//! goes, the cluster's figures for the API and `/metrics`, admin actions for sessions on
//! other nodes, and leaving the cluster without dropping anyone (drain).
//!
//! Single-node Directo has no [`ClusterNode`]: every caller holds an
//! `Option<ClusterNode>` and does exactly what it did before when it is `None`.
//!
//! The parts, each owning one concern:
//! - [`directory`]: the origin claims this node holds and when they are given up; the
//!   recording policy "record only where this node is the origin".
//! - [`routing`]: serve a viewer here, or `307` to the least-loaded node with a short-lived
//!   viewer token in the URL.
//! - [`relay`]: pulling a stream this node is not the origin of (one relay per stream, a
//!   tree of bounded fan-out), and answering another node's pull; `pull` is the WHEP
//!   client a relay pulls with.
//! - [`load`]: the load this node reports with every heartbeat.
//! - [`counts`]: a stream's viewers across the cluster, for the API and `/metrics`.
//! - [`chat`]: which node is each stream's chat authority, and the chat topics between
//!   nodes (the chat thread's side is `chat/link.rs`).
//! - [`admin`]: kick and end-stream for sessions held by other nodes, over the signed admin
//!   topic.
//! - [`drain`]: SIGTERM in a cluster: redirect new viewers, tell clients to move, exit when
//!   empty or at the deadline.
//! - [`reconcile`]: the once-a-heartbeat loop that keeps Redis in step with the engine.

pub mod admin;
pub mod chat;
pub mod counts;
pub mod directory;
pub mod drain;
pub mod load;
mod pull;
pub mod reconcile;
pub mod relay;
pub mod routing;

use std::sync::Arc;
use std::time::Duration;

use directo_cluster::{Cluster, ClusterConfig, ClusterError};
use directo_media::{ChatOut, EngineHandle};
use signaling_proto::ErrorCode;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::error::ApiError;
use crate::token::Tokens;

pub use directory::{Directory, OriginPolicy};

/// How this node joins the cluster, from the command line.
#[derive(Debug, Clone)]
pub struct ClusterOptions {
    /// Redis (`redis://…` or `rediss://…`), this node's id and URL, and the shared secret.
    pub config: ClusterConfig,
    /// Viewers this node serves before it redirects new ones (`None`: no limit).
    pub max_viewers_per_node: Option<u64>,
    /// Relays one node feeds in a stream's relay tree.
    pub max_relays_per_node: usize,
}

/// Why joining the cluster failed.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The cluster crate refused the configuration or could not reach Redis.
    #[error(transparent)]
    Cluster(#[from] ClusterError),
}

/// This node's membership in the cluster; cheap to clone.
#[derive(Clone)]
pub struct ClusterNode {
    inner: Arc<Inner>,
}

struct Inner {
    cluster: Cluster,
    engine: EngineHandle,
    tokens: Arc<Tokens>,
    directory: Directory,
    node_url: String,
    max_viewers: Option<u64>,
    max_relays: usize,
    draining: watch::Sender<bool>,
    admin: admin::Pending,
    remote_cache: counts::RemoteCache,
    /// Sends notices on clients' `chat` data channels (the engine delivers them).
    chat_out: mpsc::Sender<ChatOut>,
    tasks: std::sync::Mutex<Vec<JoinHandle<()>>>,
    /// The streams this node pulls from other nodes.
    relays: relay::Relays,
}

impl ClusterNode {
    /// Joins the cluster and starts this node's background work (heartbeat reconcile, admin
    /// topic). `directory` is the one the engine's recording policy already asks.
    pub async fn start(
        options: ClusterOptions,
        directory: Directory,
        engine: EngineHandle,
        tokens: Arc<Tokens>,
        chat_out: mpsc::Sender<ChatOut>,
    ) -> Result<ClusterNode, StartError> {
        let node_url = options.config.node_url.clone();
        let cluster = Cluster::start(options.config).await?;
        let node = ClusterNode {
            inner: Arc::new(Inner {
                cluster,
                engine,
                tokens,
                directory,
                node_url,
                max_viewers: options.max_viewers_per_node,
                max_relays: options.max_relays_per_node.max(1),
                draining: watch::channel(false).0,
                admin: admin::Pending::default(),
                remote_cache: counts::RemoteCache::default(),
                chat_out,
                tasks: std::sync::Mutex::new(Vec::new()),
                relays: relay::Relays::default(),
            }),
        };
        let listener = admin::listen(&node).await?;
        let reconciler = tokio::spawn(reconcile::run(node.clone()));
        if let Ok(mut tasks) = node.inner.tasks.lock() {
            tasks.extend([listener, reconciler]);
        }
        Ok(node)
    }

    /// This node's id.
    pub fn node_id(&self) -> &str {
        self.inner.cluster.node_id()
    }

    /// This node's base URL, as other nodes and redirected viewers reach it.
    pub fn node_url(&self) -> &str {
        &self.inner.node_url
    }

    /// The absolute URL of `path` (which starts with `/`) on this node: session `Location`s
    /// in a cluster are absolute, so a client that was redirected here resolves them right.
    pub fn absolute(&self, path: &str) -> String {
        format!("{}{}", self.inner.node_url.trim_end_matches('/'), path)
    }

    /// The coordination handle.
    pub(crate) fn cluster(&self) -> &Cluster {
        &self.inner.cluster
    }

    /// The media engine.
    pub(crate) fn engine(&self) -> &EngineHandle {
        &self.inner.engine
    }

    /// The origin claims this node holds.
    pub fn directory(&self) -> &Directory {
        &self.inner.directory
    }

    /// Leaves the cluster: stops the background work and removes this node's entries
    /// (claims, counts, relays, its record) from Redis at once. If Redis cannot be reached
    /// they expire within a lease.
    pub async fn leave(&self) {
        self.inner.relays.stop_all();
        if let Ok(mut tasks) = self.inner.tasks.lock() {
            for task in tasks.drain(..) {
                task.abort();
            }
        }
        if let Err(error) = self.inner.cluster.shutdown().await {
            tracing::warn!(%error, "left the cluster without cleaning up; entries expire within a lease");
        } else {
            tracing::info!("left the cluster");
        }
    }
}

/// How long a client waits before retrying a request that needed the cluster.
const RETRY_AFTER_S: u64 = 1;

/// The API error for a cluster call that failed: `503 cluster_unavailable` with
/// `Retry-After` when Redis cannot be reached, `400` for a name the cluster refused (the
/// server checks names first, so this is a bug guard), `500` otherwise.
pub(crate) fn api_error(error: ClusterError) -> ApiError {
    match error {
        ClusterError::Unavailable { .. } | ClusterError::Stopped => ApiError::new(
            ErrorCode::ClusterUnavailable,
            "this node cannot reach the cluster right now; try again shortly",
        )
        .retry_after(
            error
                .retry_after()
                .map_or(RETRY_AFTER_S, |d| d.as_secs().max(1)),
        ),
        ClusterError::InvalidInput(message) => ApiError::new(ErrorCode::BadRequest, message),
        other => ApiError::new(ErrorCode::Internal, other.to_string()),
    }
}

/// How long the node waits for other nodes to answer an admin request.
pub(crate) const ADMIN_REPLY_TIMEOUT: Duration = Duration::from_secs(2);
