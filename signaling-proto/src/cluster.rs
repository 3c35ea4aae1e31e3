//! What a cluster of Directo nodes says on the wire: to clients (a stream's figures across
//! the cluster, the notice that moves a client to another node) and between nodes (admin
//! requests and their replies over the cluster's signed pub/sub).

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

use crate::stream::StreamInfo;

/// A stream as any node of a cluster shows it (`GET /api/streams[/{stream}]`): the stream's
/// own fields, with `viewers` counted across the cluster.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClusterStreamInfo {
    /// The stream's fields; `viewers` is the cluster's total.
    #[serde(flatten)]
    pub stream: StreamInfo,
    /// The node holding the stream's publisher (its origin), if one does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<String>,
    /// Viewers per node, by node id.
    #[serde(default)]
    pub nodes: BTreeMap<String, u64>,
    /// `true` when the answering node could not reach the cluster: the figures are its own.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub partial: bool,
}

/// Why a node asks a client to move.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MoveReason {
    /// The node is leaving the cluster (SIGTERM): it takes no new clients and exits when
    /// empty or at its deadline.
    Draining,
}

/// A node's notice to one of its clients, on the client's `chat` data channel (and, as
/// [`crate::ServerMessage::Move`], on `/ws`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum NodeNotice {
    /// Open a new session at `url` (a node's base URL, e.g. `https://edge-2.example/`) and
    /// then end this one; a publisher ends this one first (a stream has one publisher).
    #[serde(rename = "server.move")]
    Move {
        /// The base URL of the node to move to.
        url: String,
        /// Why.
        reason: MoveReason,
    },
}

/// What one node asks every other node to do (topic `admin`, signed with the shared
/// secret). The node holding the session or stream acts and replies on the asker's own
/// topic with an [`AdminReply`] carrying the same `id`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdminRequest {
    /// Chosen by the asker, to match the replies.
    pub id: String,
    /// What to do.
    pub action: AdminAction,
}

/// An admin action a node carries out for its own sessions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum AdminAction {
    /// End one session of a stream (publisher or viewer).
    Kick {
        /// The stream.
        stream: String,
        /// The session id.
        session: String,
    },
    /// End a stream: its publisher and every viewer, on every node.
    EndStream {
        /// The stream.
        stream: String,
    },
}

/// A node's answer to an [`AdminRequest`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdminReply {
    /// The request's id.
    pub id: String,
    /// How many of the replying node's sessions the action closed.
    pub closed: usize,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_move_notice_is_a_typed_json_message() {
        let notice = NodeNotice::Move {
            url: "http://b.example:8080/".into(),
            reason: MoveReason::Draining,
        };
        let json = serde_json::to_value(&notice).unwrap();
        assert_eq!(json["type"], "server.move");
        assert_eq!(json["url"], "http://b.example:8080/");
        assert_eq!(json["reason"], "draining");
    }

    #[test]
    fn cluster_stream_info_flattens_the_stream() {
        let info = ClusterStreamInfo {
            stream: StreamInfo {
                name: "launch".into(),
                live: true,
                tracks: Vec::new(),
                viewers: 42,
                bitrate_bps: 0,
                recording: false,
            },
            origin: Some("a".into()),
            nodes: BTreeMap::from([("a".into(), 12), ("b".into(), 30)]),
            partial: false,
        };
        let json = serde_json::to_value(&info).unwrap();
        assert_eq!(json["viewers"], 42);
        assert_eq!(json["nodes"]["b"], 30);
        assert!(json.get("partial").is_none());
        let plain: StreamInfo = serde_json::from_value(json.clone()).unwrap();
        assert_eq!(plain.viewers, 42);
        let back: ClusterStreamInfo = serde_json::from_value(json).unwrap();
        assert_eq!(back, info);
    }

    #[test]
    fn admin_requests_round_trip() {
        let request = AdminRequest {
            id: "r1".into(),
            action: AdminAction::Kick {
                stream: "launch".into(),
                session: "s1".into(),
            },
        };
        let text = serde_json::to_string(&request).unwrap();
        assert!(text.contains(r#""type":"kick""#), "{text}");
        assert_eq!(
            serde_json::from_str::<AdminRequest>(&text).unwrap(),
            request
        );
    }
}
