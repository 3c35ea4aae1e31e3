//! The stream directory as this node sees it: the streams it is the origin of (it claimed
//! them for a local publisher), claiming one when a publisher arrives, giving it up when the
//! publisher is gone, and the recording policy that records only at the origin.
//!
//! The set of claims is kept here as well as in the cluster crate's heartbeat task so that
//! the engine's recording policy (a synchronous question) and a reconnecting publisher are
//! answered without Redis: a node that lost Redis keeps serving, and lets the publisher of
//! a stream it already holds come back.
//!
//! When a claim is given up:
//! - at once when the publisher leaves on purpose (WHIP `DELETE`, a `/ws` `leave`, an
//!   admin ending the stream);
//! - otherwise after [`RELEASE_GRACE`] without any publisher session ([`ReleaseTimer`]), so
//!   a publisher that lost its connection and comes back to this node keeps its stream;
//! - when the cluster says another node holds it now (our lease ran out while cut off).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use directo_cluster::Claim;
use directo_media::RecordingPolicy;
use signaling_proto::ErrorCode;

use super::{ClusterNode, api_error};
use crate::error::ApiError;

/// How long a claimed stream may have no publisher session before the claim is released.
pub const RELEASE_GRACE: Duration = Duration::from_secs(3);

/// The streams this node is the origin of; cheap to clone, every clone is the same set.
#[derive(Debug, Clone, Default)]
pub struct Directory {
    claims: Arc<RwLock<BTreeSet<String>>>,
    /// Woken when a claim is taken, so the chat's authority follows at once.
    claimed: Arc<tokio::sync::Notify>,
}

impl Directory {
    /// An empty directory (a node that holds nothing yet).
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether this node holds `stream`'s origin claim.
    pub fn is_origin(&self, stream: &str) -> bool {
        self.claims
            .read()
            .map(|claims| claims.contains(stream))
            .unwrap_or(false)
    }

    /// The streams this node holds.
    pub fn claims(&self) -> Vec<String> {
        self.claims
            .read()
            .map(|claims| claims.iter().cloned().collect())
            .unwrap_or_default()
    }

    fn insert(&self, stream: &str) {
        if let Ok(mut claims) = self.claims.write() {
            claims.insert(stream.to_owned());
        }
        self.claimed.notify_one();
    }

    /// Resolves once a claim was taken since the last call.
    pub(crate) async fn claimed(&self) {
        self.claimed.notified().await;
    }

    /// Forgets `stream`; `true` if it was held.
    pub(crate) fn forget(&self, stream: &str) -> bool {
        self.claims
            .write()
            .map(|mut claims| claims.remove(stream))
            .unwrap_or(false)
    }
}

/// Records a stream only on the node that is its origin, and only if its settings say so.
/// A node relaying a stream would otherwise record it a second time.
pub struct OriginPolicy<P> {
    settings: P,
    directory: Directory,
}

impl<P> OriginPolicy<P> {
    /// `settings` decides for the streams `directory` says this node is the origin of.
    pub fn new(settings: P, directory: Directory) -> Self {
        Self {
            settings,
            directory,
        }
    }
}

impl<P: RecordingPolicy> RecordingPolicy for OriginPolicy<P> {
    fn records(&self, stream: &str) -> bool {
        self.directory.is_origin(stream) && self.settings.records(stream)
    }
}

/// The outcome of claiming a stream for a local publisher.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claimed {
    /// This node held it already (a publisher coming back, or one replacing itself).
    Already,
    /// This node has just become its origin.
    New,
}

impl ClusterNode {
    /// Claims `stream` for a publisher arriving here: answered from the local set when this
    /// node holds it already (no Redis needed), else atomically in Redis. Another live node
    /// holding it is `409 stream_busy` naming that node; Redis unreachable is `503
    /// cluster_unavailable`; a draining node takes no new publisher (`503 unavailable`).
    pub async fn claim_for_publisher(&self, stream: &str) -> Result<Claimed, ApiError> {
        let directory = self.directory();
        if directory.is_origin(stream) {
            return Ok(Claimed::Already);
        }
        if self.is_draining() {
            return Err(ApiError::new(
                ErrorCode::Unavailable,
                "this node is leaving the cluster; publish to another node",
            )
            .retry_after(1));
        }
        match self.cluster().claim_origin(stream).await {
            Ok(Claim::Acquired) => {
                directory.insert(stream);
                tracing::info!(%stream, "this node is the stream's origin now");
                Ok(Claimed::New)
            }
            Ok(Claim::HeldBy(holder)) => Err(ApiError::new(
                ErrorCode::StreamBusy,
                format!(
                    "stream {stream} is live on node {} ({}); publish there, or once it ends",
                    holder.node, holder.url
                ),
            )),
            Err(error) => Err(api_error(error)),
        }
    }

    /// The local publisher of `stream` is gone for good (it left on purpose, or was ended):
    /// give the stream up now so another node may take it at once.
    pub async fn release(&self, stream: &str) {
        if !self.directory().forget(stream) {
            return;
        }
        match self.cluster().release_origin(stream).await {
            Ok(_) => tracing::info!(%stream, "released the stream's origin"),
            // Renewal has stopped: the claim ends within a lease anyway.
            Err(error) => {
                tracing::warn!(%stream, %error, "could not release the origin now; it expires within a lease")
            }
        }
    }
}

/// When a claimed stream without a publisher session is due for release: each stream's
/// first moment seen without one, passed in (no clock of its own).
#[derive(Debug, Default)]
pub struct ReleaseTimer {
    without_publisher_since: BTreeMap<String, Instant>,
}

impl ReleaseTimer {
    /// Notes which `claimed` streams have a publisher now; returns those that have had none
    /// for [`RELEASE_GRACE`].
    pub fn due(&mut self, claimed: &[(String, bool)], now: Instant) -> Vec<String> {
        self.without_publisher_since
            .retain(|stream, _| claimed.iter().any(|(s, has)| s == stream && !has));
        let mut due = Vec::new();
        for (stream, has_publisher) in claimed {
            if *has_publisher {
                continue;
            }
            let since = *self
                .without_publisher_since
                .entry(stream.clone())
                .or_insert(now);
            if now.duration_since(since) >= RELEASE_GRACE {
                due.push(stream.clone());
            }
        }
        for stream in &due {
            self.without_publisher_since.remove(stream);
        }
        due
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_only_streams_this_node_is_the_origin_of() {
        let directory = Directory::new();
        let policy = OriginPolicy::new(true, directory.clone());
        assert!(!policy.records("launch"));
        directory.insert("launch");
        assert!(policy.records("launch"));
        assert!(!OriginPolicy::new(false, directory.clone()).records("launch"));
        directory.forget("launch");
        assert!(!policy.records("launch"));
    }

    #[test]
    fn a_claim_without_publisher_is_due_after_the_grace() {
        let mut timer = ReleaseTimer::default();
        let t0 = Instant::now();
        let gone = [("a".to_owned(), false), ("b".to_owned(), true)];
        assert!(timer.due(&gone, t0).is_empty());
        assert!(timer.due(&gone, t0 + RELEASE_GRACE / 2).is_empty());
        assert_eq!(timer.due(&gone, t0 + RELEASE_GRACE), vec!["a".to_owned()]);
    }

    #[test]
    fn a_publisher_coming_back_resets_the_grace() {
        let mut timer = ReleaseTimer::default();
        let t0 = Instant::now();
        assert!(timer.due(&[("a".to_owned(), false)], t0).is_empty());
        assert!(
            timer
                .due(&[("a".to_owned(), true)], t0 + Duration::from_secs(2))
                .is_empty()
        );
        let later = t0 + Duration::from_secs(4);
        assert!(timer.due(&[("a".to_owned(), false)], later).is_empty());
        assert_eq!(
            timer.due(&[("a".to_owned(), false)], later + RELEASE_GRACE),
            vec!["a".to_owned()]
        );
    }
}
