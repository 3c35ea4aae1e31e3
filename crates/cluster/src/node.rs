//! What the node registry says about a node: its load as the node reports it, and the record
//! stored at `{ns}:node:{id}`.

use serde::{Deserialize, Serialize};

/// A node's load as it reports it; the next heartbeat carries the latest.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct NodeLoad {
    /// Viewers connected to this node, all streams together.
    pub viewers: u64,
    /// Streams this node relays from another node.
    pub relays: u64,
    /// Media the node sends, in bits per second.
    pub bitrate_bps: u64,
    /// CPU use of the node's process, 100 per fully used core.
    pub cpu_percent: f32,
    /// The most viewers this node accepts (0: no limit set).
    pub max_viewers: u64,
    /// Whether the node takes no new viewers (it is about to leave).
    pub draining: bool,
}

impl NodeLoad {
    /// Whether the node can take one more viewer: not draining, and below its limit if it has
    /// one.
    pub fn has_room(&self) -> bool {
        !self.draining && (self.max_viewers == 0 || self.viewers < self.max_viewers)
    }
}

/// A live node as the registry shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeInfo {
    /// The node's id.
    pub id: String,
    /// Where other nodes and redirected viewers reach it.
    pub url: String,
    /// Its load at its last heartbeat.
    pub load: NodeLoad,
    /// When its process joined the cluster, Unix milliseconds on its own clock.
    pub started_at_ms: u64,
}

/// The JSON stored at `{ns}:node:{id}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct NodeRecord {
    pub(crate) id: String,
    pub(crate) url: String,
    /// Random per process: tells a restarted node (same id) from a second live one.
    pub(crate) instance: String,
    /// Counts heartbeats; a record whose beat moves belongs to a live process.
    pub(crate) beat: u64,
    pub(crate) started_at_ms: u64,
    pub(crate) load: NodeLoad,
}

impl From<NodeRecord> for NodeInfo {
    fn from(record: NodeRecord) -> Self {
        Self {
            id: record.id,
            url: record.url,
            load: record.load,
            started_at_ms: record.started_at_ms,
        }
    }
}
