//! What crosses nodes, by topic: the four kinds of pub/sub channel and who talks on each.

use crate::error::Result;
use crate::keys::Keys;
use crate::names::{NodeId, StreamName};

/// A pub/sub topic. Names inside are checked when the topic is used.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Topic {
    /// A stream's chat, from its authority (the origin) to every node serving it.
    Chat(String),
    /// A stream's chat input, from the edges to the stream's authority.
    ChatInput(String),
    /// Messages addressed to one node: deliver to a session, kick a session, drain.
    Node(String),
    /// Cluster-wide admin messages.
    Admin,
}

impl Topic {
    /// The channel this topic is published on, after checking the name it carries.
    pub(crate) fn channel(&self, keys: &Keys) -> Result<String> {
        Ok(match self {
            Topic::Chat(stream) => keys.chat_channel(StreamName::check(stream)?),
            Topic::ChatInput(stream) => keys.chat_input_channel(StreamName::check(stream)?),
            Topic::Node(node) => keys.node_channel(NodeId::check(node)?),
            Topic::Admin => keys.admin_channel(),
        })
    }
}

impl std::fmt::Display for Topic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Topic::Chat(stream) => write!(f, "chat:{stream}"),
            Topic::ChatInput(stream) => write!(f, "chat-in:{stream}"),
            Topic::Node(node) => write!(f, "node:{node}"),
            Topic::Admin => f.write_str("admin"),
        }
    }
}
