//! The one error type of the crate, and what the server should make of each case.
//!
//! Messages never carry the Redis password: every text that came from Redis or from the URL
//! passes through [`crate::redact`] before it lands in an error.

use std::time::Duration;

/// What went wrong with a cluster call.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClusterError {
    /// Redis could not be reached, timed out, is loading, refused our credentials, or is
    /// read-only. The server answers `503` with [`ClusterError::retry_after`].
    #[error("Redis is unavailable: {reason}")]
    Unavailable {
        /// What failed, password redacted.
        reason: String,
    },
    /// A name, URL or setting the caller passed is not acceptable; nothing was sent to Redis.
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// Another live process already holds what was asked for (e.g. the same node id).
    #[error("conflict: {0}")]
    Conflict(String),
    /// Redis answered with an error that is not about reachability (a bug or a foreign value).
    #[error("Redis answered with an error: {reason}")]
    Redis {
        /// Redis' answer, password redacted.
        reason: String,
    },
    /// A value in Redis is not what this crate writes there.
    #[error("unexpected value at {key}: {reason}")]
    Corrupt {
        /// The key holding it.
        key: String,
        /// Why it could not be read.
        reason: String,
    },
    /// [`crate::Cluster::shutdown`] was called on this handle or one of its clones.
    #[error("the cluster handle was shut down")]
    Stopped,
}

impl ClusterError {
    /// Whether the caller should answer "try again later" (HTTP `503`).
    pub fn is_unavailable(&self) -> bool {
        matches!(self, ClusterError::Unavailable { .. })
    }

    /// How long a client should wait before trying again, for a `Retry-After` header.
    ///
    /// One second: the background task retries Redis every heartbeat, so by then a Redis that
    /// came back has been seen.
    pub fn retry_after(&self) -> Option<Duration> {
        self.is_unavailable().then_some(Duration::from_secs(1))
    }
}

/// The crate's result type.
pub type Result<T> = std::result::Result<T, ClusterError>;
