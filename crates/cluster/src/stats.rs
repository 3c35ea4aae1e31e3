//! Counters of what the background tasks dropped or failed, for `/metrics`.
//!
//! Written by the tasks, read by anyone through [`crate::Cluster::stats`]; plain atomics,
//! since nothing needs them to agree with each other at one instant.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// A snapshot of the counters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClusterStats {
    /// Whether the last heartbeat reached Redis.
    pub redis_reachable: bool,
    /// Heartbeats that failed (Redis unreachable or slow).
    pub heartbeats_failed: u64,
    /// Origin claims this node found taken by another node while renewing them.
    pub origins_lost: u64,
    /// Messages dropped because their tag did not verify (forged, or another secret).
    pub messages_forged: u64,
    /// Messages dropped because they were signed too long ago or in the future.
    pub messages_stale: u64,
    /// Messages dropped because the same frame had been delivered already.
    pub messages_replayed: u64,
    /// Messages dropped because a subscriber's queue was full.
    pub messages_dropped_full: u64,
    /// Times the pub/sub connection was (re)established.
    pub pubsub_connects: u64,
}

/// The live counters.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) redis_reachable: AtomicBool,
    pub(crate) heartbeats_failed: AtomicU64,
    pub(crate) origins_lost: AtomicU64,
    pub(crate) messages_forged: AtomicU64,
    pub(crate) messages_stale: AtomicU64,
    pub(crate) messages_replayed: AtomicU64,
    pub(crate) messages_dropped_full: AtomicU64,
    pub(crate) pubsub_connects: AtomicU64,
}

impl Counters {
    /// Adds one to `counter`.
    pub(crate) fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// The counters now.
    pub(crate) fn snapshot(&self) -> ClusterStats {
        let read = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        ClusterStats {
            redis_reachable: self.redis_reachable.load(Ordering::Relaxed),
            heartbeats_failed: read(&self.heartbeats_failed),
            origins_lost: read(&self.origins_lost),
            messages_forged: read(&self.messages_forged),
            messages_stale: read(&self.messages_stale),
            messages_replayed: read(&self.messages_replayed),
            messages_dropped_full: read(&self.messages_dropped_full),
            pubsub_connects: read(&self.pubsub_connects),
        }
    }
}
