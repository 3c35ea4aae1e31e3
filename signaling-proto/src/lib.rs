//! Every message that crosses a wire between Directo and its clients, and nothing else.
//!
//! - HTTP errors (WHIP, WHEP, the API) are an [`ErrorBody`] in `application/json`.
//! - `GET /ws` carries one [`ClientMessage`] or [`ServerMessage`] per WebSocket text frame.
//! - `GET /api/streams` answers with [`StreamInfo`] values ([`ClusterStreamInfo`] on a node of
//!   a cluster), `GET /api/recordings` with [`RecordingEntry`] values; the admin API with
//!   [`StreamSessions`], [`AudienceStats`] and [`MintedToken`]; the restream API with
//!   [`RestreamRequest`] and [`RestreamInfo`].
//! - Nodes of a cluster tell clients to move with a [`NodeNotice`], and each other what to do
//!   with [`AdminRequest`] / [`AdminReply`] over their signed pub/sub.
//! - A `chat` data channel carries one [`ChatClientMessage`] or [`ChatServerMessage`] per
//!   message; `GET /api/streams/{stream}/chat` answers with [`ExportedChatMessage`] values.
//!
//! The types own their JSON shape (`serde`); no transport code lives here.

use serde::{Deserialize, Serialize};

mod admin;
mod chat;
mod cluster;
mod error;
mod recording;
mod restream;
mod stream;

pub use admin::{AudienceStats, MintedToken, SessionInfo, StreamSessions};
pub use chat::{
    ChatClientMessage, ChatErrorCode, ChatMessage, ChatRole, ChatServerMessage, ChatUser,
    ExportedChatMessage, MessageId, UserId,
};
pub use cluster::{
    AdminAction, AdminReply, AdminRequest, ClusterStreamInfo, MoveReason, NodeNotice,
};
pub use error::{ErrorBody, ErrorCode};
pub use recording::RecordingEntry;
pub use restream::{RestreamInfo, RestreamRequest, RestreamStatus};
pub use stream::{StreamInfo, TrackInfo, is_valid_stream_name};

/// The role a peer plays in a stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Sends audio and video.
    Publisher,
    /// Receives audio and video.
    Viewer,
}

/// A message a client sends over `GET /ws`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ClientMessage {
    /// Join `stream` as publisher (with `key`) or viewer; an SDP offer may come along.
    Join {
        /// The stream's name, `[A-Za-z0-9_-]{1,64}`.
        stream: String,
        /// Publisher or viewer.
        role: Role,
        /// The publish key (publishers only).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        key: Option<String>,
        /// The display name, 1–32 characters.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        name: Option<String>,
        /// An SDP offer, so join and offer take one round trip.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        sdp: Option<String>,
    },
    /// A new SDP offer from the client (first offer or renegotiation).
    Offer {
        /// The offer's SDP.
        sdp: String,
    },
    /// The client's answer to a server-initiated offer.
    Answer {
        /// The answer's SDP.
        sdp: String,
    },
    /// Leave the stream; the server closes the peer connection.
    Leave {},
}

/// A message the server sends over `GET /ws`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerMessage {
    /// The join was accepted.
    Joined {
        /// The session id (the same id WHIP/WHEP put in `Location`); absent until an offer.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        session: Option<String>,
        /// The stream joined.
        stream: String,
        /// The role granted.
        role: Role,
    },
    /// The server's answer to the client's offer.
    Answer {
        /// The answer's SDP.
        sdp: String,
    },
    /// A server-initiated offer (tracks changed); the client replies with `answer`.
    Offer {
        /// The offer's SDP.
        sdp: String,
    },
    /// The stream's publisher went live.
    Live {
        /// The stream's tracks as they are now.
        stream: StreamInfo,
    },
    /// The stream's publisher left.
    Offline {
        /// The stream's name.
        stream: String,
    },
    /// The number of viewers changed.
    Viewers {
        /// The number of viewers connected now.
        count: usize,
    },
    /// This node is leaving the cluster: open a new session at `url` (another node's base
    /// URL), then end this one. Same shape as the chat channel's [`NodeNotice::Move`].
    #[serde(rename = "server.move")]
    Move {
        /// The base URL of the node to move to.
        url: String,
        /// Why.
        reason: MoveReason,
    },
    /// Something was refused; the connection stays up unless the error says otherwise.
    Error {
        /// A machine-readable code.
        code: ErrorCode,
        /// What was wrong, for a person.
        message: String,
    },
}

impl ServerMessage {
    /// An `error` message.
    pub fn error(code: ErrorCode, message: impl Into<String>) -> Self {
        ServerMessage::Error {
            code,
            message: message.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_join_round_trips() {
        let text = r#"{"type":"join","stream":"launch","role":"viewer","name":"Ana"}"#;
        let msg: ClientMessage = serde_json::from_str(text).unwrap();
        assert_eq!(
            msg,
            ClientMessage::Join {
                stream: "launch".into(),
                role: Role::Viewer,
                key: None,
                name: Some("Ana".into()),
                sdp: None
            }
        );
        let back: ClientMessage =
            serde_json::from_str(&serde_json::to_string(&msg).unwrap()).unwrap();
        assert_eq!(back, msg);
    }

    #[test]
    fn unknown_client_message_is_rejected() {
        assert!(serde_json::from_str::<ClientMessage>(r#"{"type":"dance"}"#).is_err());
        assert!(serde_json::from_str::<ClientMessage>(r#"{"type":"leave","x":1}"#).is_err());
    }

    #[test]
    fn server_error_has_code_and_message() {
        let msg = ServerMessage::error(ErrorCode::StreamBusy, "stream already has a publisher");
        let json = serde_json::to_value(&msg).unwrap();
        assert_eq!(json["type"], "error");
        assert_eq!(json["code"], "stream_busy");
    }
}
