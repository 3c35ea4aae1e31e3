//! How many viewers watch a stream, across the cluster and per node.

/// A stream's viewers as the nodes last reported them (each count is leased like every
/// other entry, so a dead node's viewers drop out within one lease).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StreamViewers {
    /// All nodes together.
    pub total: u64,
    /// Each node's count, by node id in ascending order.
    pub per_node: Vec<(String, u64)>,
}
