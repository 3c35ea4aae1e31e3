//! What the background task tells the server about on its own: Redis going away and coming
//! back, and an origin claim found taken by another node.

use crate::origin::OriginHolder;

/// Something that happened to this node's standing in the cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClusterEvent {
    /// A heartbeat failed: this node's entries are not being refreshed. After one lease
    /// without Redis, other nodes stop seeing them.
    RedisLost {
        /// Why, password redacted.
        reason: String,
    },
    /// A heartbeat succeeded again; every entry this node holds has been rewritten.
    RedisBack,
    /// Renewing the claim on `stream` found another node holding it (this node's lease ran
    /// out, e.g. while it could not reach Redis). The local publisher is no longer the
    /// cluster's origin for the stream: the server should end it.
    OriginLost {
        /// The stream.
        stream: String,
        /// Who holds it now (`None`: the value there is not one this crate writes).
        holder: Option<OriginHolder>,
    },
}
