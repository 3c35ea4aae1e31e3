//! What crosses nodes for the chat (see [`super::link`]) and what the cluster side asks the
//! chat thread. The wire types live here rather than in `signaling-proto` because they carry
//! the chat log's own records.

use std::collections::BTreeSet;
use std::time::Duration;

use directo_chat::LogRecord;
use directo_cluster::Topic;
use serde::{Deserialize, Serialize};
use signaling_proto::ChatRole;
use tokio::sync::{mpsc, oneshot};

/// How long an edge waits for the authority to acknowledge a member's input.
pub const ACK_TIMEOUT: Duration = Duration::from_secs(3);
/// Messages for the cluster the chat thread may have waiting to be published.
pub const OUTBOX_CAPACITY: usize = 4096;

/// What a stream's chat is on this node.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Mode {
    /// The room here decides for this node's members only: a single node, or a stream no
    /// node has published in this room's life.
    #[default]
    Local,
    /// This node is the stream's authority for the cluster: its origin, or its last origin
    /// while the stream is not live.
    Authority,
    /// The node with this id is the authority: forward input there, deliver its events.
    Edge(String),
    /// The authority's node is gone and no node has published the stream since: members
    /// read the mirrored history, but what they write is refused with `unavailable`.
    Orphaned,
}

/// What an edge sends its stream's authority, on `Topic::ChatInput(stream)`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RemoteInput {
    /// The node the edge takes for the authority; any other node ignores the input.
    pub to: String,
    /// The edge's sequence number, acknowledged by the authority.
    pub seq: u64,
    /// What happened.
    pub input: Input,
}

/// One member's act on an edge.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Input {
    /// A member's chat channel opened.
    Join(Identity),
    /// A raw chat message from a member (with its identity, so an authority that missed the
    /// join can still place it).
    Message {
        /// Who.
        #[serde(flatten)]
        who: Identity,
        /// The raw message as it came off the wire.
        text: String,
    },
    /// A member's chat channel closed.
    Leave {
        /// The member's id.
        user: String,
    },
    /// The admin API on the edge moderates the stream.
    Admin {
        /// The raw moderation message.
        text: String,
    },
}

/// A member as the edge knows it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Identity {
    /// The member's id (its session id on the edge).
    pub user: String,
    /// Its display name.
    pub name: String,
    /// Its role, from the token or key it presented on the edge.
    pub role: ChatRole,
    /// Where it connects from, for bans by address.
    #[serde(default)]
    pub origin: Option<String>,
}

/// What the authority decided, on `Topic::Chat(stream)`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RemoteEvent {
    /// Numbered per stream by the authority, so an edge notices a lost event.
    pub seq: u64,
    /// The log records committed, in order (edges mirror them).
    #[serde(default)]
    pub records: Vec<LogRecord>,
    /// What to deliver, in order.
    #[serde(default)]
    pub deliver: Vec<Delivery>,
    /// The input this event answers.
    #[serde(default)]
    pub ack: Option<Ack>,
    /// The authority just took the stream: edges join their members (again).
    #[serde(default)]
    pub hello: bool,
}

/// One delivery of an event.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "to", rename_all = "snake_case")]
pub enum Delivery {
    /// To every member of the stream on every node (a serialized `ChatServerMessage`).
    All {
        /// The message, serialized once by the authority.
        text: String,
    },
    /// To one member on one node.
    One {
        /// The member's node.
        node: String,
        /// The member.
        user: String,
        /// The message.
        text: String,
    },
    /// A member was banned: its node closes its chat and its media.
    Disconnect {
        /// The member's node.
        node: String,
        /// The member.
        user: String,
    },
}

/// The acknowledgement of one input.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Ack {
    /// The edge that sent it.
    pub node: String,
    /// Its sequence number there.
    pub seq: u64,
}

/// What the cluster side asks the chat thread.
pub enum LinkCommand {
    /// This node is in a cluster as `node`; publish through `out` (in order).
    Attach {
        /// This node's id.
        node: String,
        /// Topic and payload, published in order by the cluster side.
        out: mpsc::Sender<(Topic, Vec<u8>)>,
    },
    /// The streams whose rooms are open here.
    Rooms {
        /// Where to answer.
        reply: oneshot::Sender<Vec<String>>,
    },
    /// A stream's chat is now in `mode` here.
    Mode {
        /// The stream.
        stream: String,
        /// Its mode.
        mode: Mode,
    },
    /// An edge's input for a stream this node is the authority of.
    Input {
        /// The stream.
        stream: String,
        /// The edge (verified sender).
        from: String,
        /// What it sent.
        input: RemoteInput,
    },
    /// The authority's event for a stream this node is an edge of.
    Event {
        /// The stream.
        stream: String,
        /// The authority (verified sender).
        from: String,
        /// What it published.
        event: RemoteEvent,
    },
    /// The nodes alive in the registry: remote members of the others are gone.
    Alive {
        /// Their ids.
        nodes: BTreeSet<String>,
    },
    /// The cluster's viewers of a stream this node is the authority of.
    Watching {
        /// The stream.
        stream: String,
        /// Its viewers on every node.
        viewers: usize,
    },
}

#[cfg(test)]
mod tests {
    use super::*;
    use signaling_proto::{ChatMessage, ChatUser};

    #[test]
    fn inputs_and_events_cross_the_wire_unchanged() {
        let input = RemoteInput {
            to: "a".to_owned(),
            seq: 7,
            input: Input::Message {
                who: Identity {
                    user: "s1".to_owned(),
                    name: "Ana".to_owned(),
                    role: ChatRole::Moderator,
                    origin: Some("203.0.113.9".to_owned()),
                },
                text: r#"{"type":"chat.send","text":"hi"}"#.to_owned(),
            },
        };
        let json = serde_json::to_string(&input).expect("encode");
        let back: RemoteInput = serde_json::from_str(&json).expect("decode");
        let Input::Message { who, text } = back.input else {
            panic!("not a message: {json}");
        };
        assert_eq!((back.to.as_str(), back.seq), ("a", 7));
        assert_eq!((who.name.as_str(), who.role), ("Ana", ChatRole::Moderator));
        assert_eq!(who.origin.as_deref(), Some("203.0.113.9"));
        assert!(text.contains("hi"));

        let message = ChatMessage {
            id: "m1".to_owned(),
            from: ChatUser {
                id: "s1".to_owned(),
                name: "Ana".to_owned(),
                role: ChatRole::Viewer,
            },
            text: "hi".to_owned(),
            ts: 1,
            reply_to: None,
        };
        let event = RemoteEvent {
            seq: 3,
            records: vec![LogRecord::Message(message.clone())],
            deliver: vec![
                Delivery::All {
                    text: "{}".to_owned(),
                },
                Delivery::Disconnect {
                    node: "b".to_owned(),
                    user: "s2".to_owned(),
                },
            ],
            ack: Some(Ack {
                node: "b".to_owned(),
                seq: 7,
            }),
            hello: false,
        };
        let json = serde_json::to_string(&event).expect("encode");
        let back: RemoteEvent = serde_json::from_str(&json).expect("decode");
        assert_eq!(back.seq, 3);
        assert_eq!(back.records, [LogRecord::Message(message)]);
        assert!(
            matches!(&back.deliver[1], Delivery::Disconnect { node, user } if node == "b" && user == "s2")
        );
        assert_eq!(back.ack.map(|a| a.seq), Some(7));
    }
}
