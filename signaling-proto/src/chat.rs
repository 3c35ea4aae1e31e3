//! The chat wire contract: what travels over a `chat` data channel (and over `/ws` for
//! clients without WebRTC), one JSON object with a `"type"` per message, and the export
//! format of `GET /api/streams/{stream}/chat`.
//!
//! Only shapes live here. Who may send what, the limits and the history are the chat
//! room's (`directo-chat`).
//!
//! Text is always plain text: servers store and send it verbatim, clients render it with
//! `textContent`, never as HTML.

use serde::{Deserialize, Serialize};

use crate::stream::TrackInfo;

/// A chat message id: a UUID v7 in its hyphenated form.
pub type MessageId = String;

/// A chat user's id, chosen by the server per connection.
pub type UserId = String;

/// What a chat user may do.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChatRole {
    /// The stream's publisher: may moderate, exempt from slow mode.
    Presenter,
    /// Anyone watching (the default).
    #[default]
    Viewer,
    /// May moderate, exempt from slow mode.
    Moderator,
}

impl ChatRole {
    /// Whether this role may delete, mute, ban, pin, clear and set slow mode.
    pub fn can_moderate(self) -> bool {
        matches!(self, ChatRole::Presenter | ChatRole::Moderator)
    }
}

/// Who wrote a message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatUser {
    /// The user's id.
    pub id: UserId,
    /// The display name, 1–32 characters.
    pub name: String,
    /// The user's role when the message was written.
    pub role: ChatRole,
}

/// One chat message as everyone sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatMessage {
    /// The message's id (UUID v7, so ids sort in time order).
    pub id: MessageId,
    /// The author.
    pub from: ChatUser,
    /// The text, 1–500 characters, plain text (never HTML).
    pub text: String,
    /// When the server accepted it, in milliseconds since the Unix epoch.
    pub ts: u64,
    /// The message this one answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_to: Option<MessageId>,
}

/// A message a chat client sends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", deny_unknown_fields)]
pub enum ChatClientMessage {
    /// Post a message, optionally as a reply.
    #[serde(rename = "chat.send")]
    Send {
        /// The text, 1–500 characters after trimming.
        text: String,
        /// The id of the message answered; it must still be in the history.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reply_to: Option<MessageId>,
    },
    /// Remove a message for everyone (moderators and the presenter).
    #[serde(rename = "chat.delete")]
    Delete {
        /// The message to remove.
        id: MessageId,
    },
    /// Stop a user writing for a while (moderators and the presenter).
    #[serde(rename = "user.mute")]
    Mute {
        /// The user to mute.
        user: UserId,
        /// For how long, in minutes.
        minutes: u32,
    },
    /// Close a user's chat and media and refuse them for the stream's life (moderators
    /// and the presenter).
    #[serde(rename = "user.ban")]
    Ban {
        /// The user to ban.
        user: UserId,
    },
    /// Allow each user one message per `seconds`; 0 turns slow mode off (moderators and
    /// the presenter).
    #[serde(rename = "chat.slow")]
    Slow {
        /// The minimum interval between one user's messages, in seconds.
        seconds: u32,
    },
    /// Remove every message for everyone (moderators and the presenter).
    // A struct variant, not a unit one: serde lets unknown fields through on unit
    // variants of an internally tagged enum, even with `deny_unknown_fields`.
    #[serde(rename = "chat.clear")]
    Clear {},
    /// Pin a message above the chat, or unpin with no id (moderators and the presenter).
    #[serde(rename = "chat.pin")]
    Pin {
        /// The message to pin; absent or `null` unpins.
        #[serde(default)]
        id: Option<MessageId>,
    },
}

impl ChatClientMessage {
    /// Every `type` a client may send, so a server can tell an unknown type from a
    /// malformed message of a known one.
    pub const TYPES: [&'static str; 7] = [
        "chat.send",
        "chat.delete",
        "user.mute",
        "user.ban",
        "chat.slow",
        "chat.clear",
        "chat.pin",
    ];

    /// This message's `type`.
    pub fn type_name(&self) -> &'static str {
        match self {
            ChatClientMessage::Send { .. } => "chat.send",
            ChatClientMessage::Delete { .. } => "chat.delete",
            ChatClientMessage::Mute { .. } => "user.mute",
            ChatClientMessage::Ban { .. } => "user.ban",
            ChatClientMessage::Slow { .. } => "chat.slow",
            ChatClientMessage::Clear {} => "chat.clear",
            ChatClientMessage::Pin { .. } => "chat.pin",
        }
    }
}

/// A message the server sends to chat clients.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum ChatServerMessage {
    /// A new message, to everyone.
    #[serde(rename = "chat.message")]
    Message(ChatMessage),
    /// The recent history, to one client when its channel opens.
    #[serde(rename = "chat.history")]
    History {
        /// The last messages (at most 200), oldest first, deleted ones left out.
        messages: Vec<ChatMessage>,
        /// The pinned message, if any.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pinned: Option<ChatMessage>,
        /// The slow-mode interval in seconds; 0 when off.
        slow_seconds: u32,
    },
    /// A message was removed; clients drop it.
    #[serde(rename = "chat.deleted")]
    Deleted {
        /// The removed message.
        id: MessageId,
    },
    /// The pinned message changed.
    #[serde(rename = "chat.pinned")]
    Pinned {
        /// The message now pinned; `null` when nothing is.
        message: Option<ChatMessage>,
    },
    /// A user may not write until `until`.
    #[serde(rename = "user.muted")]
    Muted {
        /// The muted user.
        user: UserId,
        /// Their display name.
        name: String,
        /// The end of the mute, in milliseconds since the Unix epoch.
        until: u64,
    },
    /// A user was banned from the stream.
    #[serde(rename = "user.banned")]
    Banned {
        /// The banned user.
        user: UserId,
        /// Their display name.
        name: String,
    },
    /// The audience size changed (sent at most once a second, and to each member when it
    /// joins).
    #[serde(rename = "presence")]
    Presence {
        /// How many viewers (everyone but the presenter) are in the chat.
        viewers: usize,
        /// How many viewers watch the stream's media, in the chat or not (the API's
        /// `viewers`); absent where the server does not know (a chat without media).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        watching: Option<usize>,
    },
    /// Whether the stream is live, to everyone when that (or its tracks, or recording)
    /// changes, and to each member when it joins, after `chat.history`.
    #[serde(rename = "stream.status")]
    StreamStatus {
        /// Whether a publisher is sending now.
        live: bool,
        /// The publisher's tracks (absent when offline).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        tracks: Vec<TrackInfo>,
        /// Whether the stream is being recorded now.
        #[serde(default)]
        recording: bool,
    },
    /// Every message was removed; clients empty their list.
    #[serde(rename = "chat.cleared")]
    Cleared,
    /// Slow mode changed.
    #[serde(rename = "chat.slow")]
    Slow {
        /// The minimum interval between one user's messages, in seconds; 0 when off.
        seconds: u32,
    },
    /// Something the client sent was refused; the channel stays open.
    #[serde(rename = "error")]
    Error {
        /// A machine-readable code.
        code: ChatErrorCode,
        /// What was wrong, for a person.
        message: String,
    },
}

impl ChatServerMessage {
    /// An `error` message.
    pub fn error(code: ChatErrorCode, message: impl Into<String>) -> Self {
        ChatServerMessage::Error {
            code,
            message: message.into(),
        }
    }
}

/// Why a chat message or a join was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChatErrorCode {
    /// Not JSON, not an object, or a known type with missing or wrong fields.
    BadRequest,
    /// A `type` the server does not know.
    UnknownType,
    /// The raw message is over 4 KiB.
    TooLarge,
    /// The text is empty after trimming.
    TextEmpty,
    /// The text is over 500 characters.
    TextTooLong,
    /// The display name is outside 1–32 characters.
    InvalidName,
    /// The user is muted.
    Muted,
    /// The user is banned from this stream.
    Banned,
    /// Slow mode: the user wrote too recently.
    SlowMode,
    /// Too many messages in a short time.
    RateLimited,
    /// Only moderators and the presenter may do that (or not to that user).
    Forbidden,
    /// No such message or user.
    NotFound,
    /// The server could not record the event; try again.
    Internal,
    /// In a cluster: the stream's chat authority (the node of its publisher) cannot be
    /// reached or did not confirm the message, which may not have been delivered; try again
    /// once the stream is published again.
    Unavailable,
}

/// One message in the export of a stream's chat, deleted ones included.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExportedChatMessage {
    /// The message as it was sent.
    #[serde(flatten)]
    pub message: ChatMessage,
    /// Whether a moderator deleted it (or cleared the chat after it).
    pub deleted: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn send_with_reply_round_trips() {
        let text = r#"{"type":"chat.send","text":"hi","reply_to":"abc"}"#;
        let msg: ChatClientMessage = serde_json::from_str(text).unwrap();
        assert_eq!(
            msg,
            ChatClientMessage::Send {
                text: "hi".into(),
                reply_to: Some("abc".into())
            }
        );
        assert_eq!(serde_json::to_string(&msg).unwrap(), text);
    }

    #[test]
    fn moderation_messages_parse() {
        let cases = [
            r#"{"type":"chat.delete","id":"m1"}"#,
            r#"{"type":"user.mute","user":"u1","minutes":5}"#,
            r#"{"type":"user.ban","user":"u1"}"#,
            r#"{"type":"chat.slow","seconds":10}"#,
            r#"{"type":"chat.clear"}"#,
            r#"{"type":"chat.pin","id":"m1"}"#,
            r#"{"type":"chat.pin"}"#,
        ];
        for case in cases {
            let msg: ChatClientMessage = serde_json::from_str(case).unwrap();
            let json: serde_json::Value = serde_json::from_str(case).unwrap();
            assert_eq!(json["type"], msg.type_name());
        }
    }

    #[test]
    fn every_type_name_is_listed() {
        let all = [
            ChatClientMessage::Send {
                text: String::new(),
                reply_to: None,
            },
            ChatClientMessage::Delete { id: String::new() },
            ChatClientMessage::Mute {
                user: String::new(),
                minutes: 1,
            },
            ChatClientMessage::Ban {
                user: String::new(),
            },
            ChatClientMessage::Slow { seconds: 0 },
            ChatClientMessage::Clear {},
            ChatClientMessage::Pin { id: None },
        ];
        for msg in all {
            assert!(ChatClientMessage::TYPES.contains(&msg.type_name()));
            let json = serde_json::to_value(&msg).unwrap();
            assert_eq!(json["type"], msg.type_name());
        }
    }

    #[test]
    fn unknown_fields_and_types_are_rejected() {
        assert!(serde_json::from_str::<ChatClientMessage>(r#"{"type":"chat.dance"}"#).is_err());
        assert!(
            serde_json::from_str::<ChatClientMessage>(r#"{"type":"chat.clear","x":1}"#).is_err()
        );
        assert!(
            serde_json::from_str::<ChatClientMessage>(
                r#"{"type":"user.mute","user":"u","minutes":-1}"#
            )
            .is_err()
        );
    }

    #[test]
    fn server_message_shapes() {
        let message = ChatMessage {
            id: "m1".into(),
            from: ChatUser {
                id: "u1".into(),
                name: "Ana".into(),
                role: ChatRole::Presenter,
            },
            text: "<b>hi</b>".into(),
            ts: 1,
            reply_to: None,
        };
        let json = serde_json::to_value(ChatServerMessage::Message(message.clone())).unwrap();
        assert_eq!(json["type"], "chat.message");
        assert_eq!(json["from"]["role"], "presenter");
        assert_eq!(json["text"], "<b>hi</b>");
        assert!(json.get("reply_to").is_none());

        let json = serde_json::to_value(ChatServerMessage::Cleared).unwrap();
        assert_eq!(json, serde_json::json!({"type": "chat.cleared"}));
        let json = serde_json::to_value(ChatServerMessage::Presence {
            viewers: 3,
            watching: None,
        })
        .unwrap();
        assert_eq!(json, serde_json::json!({"type": "presence", "viewers": 3}));
        let json = serde_json::to_value(ChatServerMessage::Presence {
            viewers: 3,
            watching: Some(7),
        })
        .unwrap();
        assert_eq!(
            json,
            serde_json::json!({"type": "presence", "viewers": 3, "watching": 7})
        );
        let json = serde_json::to_value(ChatServerMessage::error(ChatErrorCode::SlowMode, "wait"))
            .unwrap();
        assert_eq!(
            json,
            serde_json::json!({"type": "error", "code": "slow_mode", "message": "wait"})
        );

        let exported = ExportedChatMessage {
            message,
            deleted: true,
        };
        let json = serde_json::to_value(&exported).unwrap();
        assert_eq!(json["id"], "m1");
        assert_eq!(json["deleted"], true);
        let back: ExportedChatMessage = serde_json::from_value(json).unwrap();
        assert_eq!(back, exported);
    }

    #[test]
    fn stream_status_round_trips() {
        let live = ChatServerMessage::StreamStatus {
            live: true,
            tracks: vec![
                TrackInfo {
                    kind: "audio".into(),
                    codec: "audio/opus".into(),
                    layers: Vec::new(),
                },
                TrackInfo {
                    kind: "video".into(),
                    codec: "video/VP8".into(),
                    layers: vec!["q".into(), "f".into()],
                },
            ],
            recording: true,
        };
        let json = serde_json::to_value(&live).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "type": "stream.status",
                "live": true,
                "tracks": [
                    {"kind": "audio", "codec": "audio/opus"},
                    {"kind": "video", "codec": "video/VP8", "layers": ["q", "f"]},
                ],
                "recording": true,
            })
        );
        assert_eq!(
            serde_json::from_value::<ChatServerMessage>(json).unwrap(),
            live
        );

        let offline = ChatServerMessage::StreamStatus {
            live: false,
            tracks: Vec::new(),
            recording: false,
        };
        let text = serde_json::to_string(&offline).unwrap();
        assert_eq!(
            text,
            r#"{"type":"stream.status","live":false,"recording":false}"#
        );
        let back: ChatServerMessage =
            serde_json::from_str(r#"{"type":"stream.status","live":false}"#).unwrap();
        assert_eq!(back, offline);
    }
}
