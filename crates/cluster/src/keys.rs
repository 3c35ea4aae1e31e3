//! The key schema: the name of every Redis key and pub/sub channel this crate uses.
//!
//! Nothing else in the crate formats a key. Every name part is a checked
//! [`StreamName`]/[`NodeId`] and the namespace was checked at start, so the schema is
//! unambiguous: stream names and namespaces contain no `:`, and a node id (which may) is
//! always the last part. The leases and the reasons are in the crate's design note (`lib.rs`).

use crate::names::{NodeId, StreamName};

/// Builds the keys and channels of one namespace.
#[derive(Debug, Clone)]
pub(crate) struct Keys {
    /// The namespace, already checked (`[A-Za-z0-9._-]{1,32}`).
    ns: String,
}

impl Keys {
    /// The schema under `namespace` (checked by the caller).
    pub(crate) fn new(namespace: &str) -> Self {
        Self {
            ns: namespace.to_owned(),
        }
    }

    /// The namespace, as it prefixes every key and channel.
    pub(crate) fn namespace(&self) -> &str {
        &self.ns
    }

    /// `{ns}:node:{node}`: the node's record (JSON), leased.
    pub(crate) fn node(&self, node: NodeId<'_>) -> String {
        format!("{}:node:{}", self.ns, node.as_str())
    }

    /// `{ns}:nodes`: sorted set, node id → lease expiry (ms, Redis clock).
    pub(crate) fn nodes(&self) -> String {
        format!("{}:nodes", self.ns)
    }

    /// `{ns}:origin:{stream}`: who holds the stream's publisher (JSON), leased.
    pub(crate) fn origin(&self, stream: StreamName<'_>) -> String {
        format!("{}:origin:{}", self.ns, stream.as_str())
    }

    /// `{ns}:streams`: sorted set, stream → lease expiry of its origin claim.
    pub(crate) fn streams(&self) -> String {
        format!("{}:streams", self.ns)
    }

    /// `{ns}:relay:{stream}:{node}`: one edge's relay of the stream (JSON), leased.
    pub(crate) fn relay(&self, stream: StreamName<'_>, node: NodeId<'_>) -> String {
        format!("{}:relay:{}:{}", self.ns, stream.as_str(), node.as_str())
    }

    /// `{ns}:relays:{stream}`: sorted set, relaying node id → lease expiry.
    pub(crate) fn relays(&self, stream: StreamName<'_>) -> String {
        format!("{}:relays:{}", self.ns, stream.as_str())
    }

    /// `{ns}:viewers:{stream}:{node}`: the node's viewer count for the stream, leased.
    pub(crate) fn viewers(&self, stream: StreamName<'_>, node: NodeId<'_>) -> String {
        format!("{}:viewers:{}:{}", self.ns, stream.as_str(), node.as_str())
    }

    /// `{ns}:audience:{stream}`: sorted set, node id with viewers of the stream → lease expiry.
    pub(crate) fn audience(&self, stream: StreamName<'_>) -> String {
        format!("{}:audience:{}", self.ns, stream.as_str())
    }

    /// `{ns}:msg:chat:{stream}`: chat the stream's authority sends to every node.
    pub(crate) fn chat_channel(&self, stream: StreamName<'_>) -> String {
        format!("{}:msg:chat:{}", self.ns, stream.as_str())
    }

    /// `{ns}:msg:chat-in:{stream}`: chat input edges forward to the stream's authority.
    pub(crate) fn chat_input_channel(&self, stream: StreamName<'_>) -> String {
        format!("{}:msg:chat-in:{}", self.ns, stream.as_str())
    }

    /// `{ns}:msg:node:{node}`: messages addressed to one node.
    pub(crate) fn node_channel(&self, node: NodeId<'_>) -> String {
        format!("{}:msg:node:{}", self.ns, node.as_str())
    }

    /// `{ns}:msg:admin`: cluster-wide admin messages.
    pub(crate) fn admin_channel(&self) -> String {
        format!("{}:msg:admin", self.ns)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_name_is_prefixed_by_the_namespace() {
        let keys = Keys::new("staging");
        let stream = StreamName::check("launch").expect("valid stream");
        let node = NodeId::check("edge:1").expect("valid node id");
        assert_eq!(keys.node(node), "staging:node:edge:1");
        assert_eq!(keys.origin(stream), "staging:origin:launch");
        assert_eq!(keys.relay(stream, node), "staging:relay:launch:edge:1");
        assert_eq!(keys.viewers(stream, node), "staging:viewers:launch:edge:1");
        assert_eq!(keys.audience(stream), "staging:audience:launch");
        assert_eq!(keys.chat_channel(stream), "staging:msg:chat:launch");
        assert_eq!(keys.node_channel(node), "staging:msg:node:edge:1");
        assert_eq!(keys.admin_channel(), "staging:msg:admin");
    }
}
