//! The records of a stream's chat log: one JSON object per line, one per event that changes
//! what people see or who may write. Replaying them rebuilds a room (see `state`) and the
//! export of `GET /api/streams/{stream}/chat`.
//!
//! The format is on disk for the stream's life and across upgrades: add fields with
//! defaults, never rename. A line that does not parse is skipped on replay.

use serde::{Deserialize, Serialize};
use signaling_proto::{ChatMessage, ExportedChatMessage, MessageId, UserId};

/// One event in a stream's chat log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum LogRecord {
    /// A message was accepted.
    Message(ChatMessage),
    /// A moderator deleted a message.
    Deleted {
        /// The message deleted.
        id: MessageId,
        /// The moderator.
        by: UserId,
        /// When, in milliseconds since the Unix epoch.
        ts: u64,
    },
    /// A user was muted, by a moderator or (with no `by`) by the rate limit.
    Muted {
        /// The muted user.
        user: UserId,
        /// Their display name.
        name: String,
        /// The end of the mute, in milliseconds since the Unix epoch.
        until: u64,
        /// The moderator; absent for an automatic mute.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        by: Option<UserId>,
        /// When, in milliseconds since the Unix epoch.
        ts: u64,
    },
    /// A user was banned for the stream's life.
    Banned {
        /// The banned user.
        user: UserId,
        /// Their display name (banned too).
        name: String,
        /// Where they connected from (banned too), if known.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        origin: Option<String>,
        /// The moderator.
        by: UserId,
        /// When, in milliseconds since the Unix epoch.
        ts: u64,
    },
    /// Slow mode changed.
    Slow {
        /// The new interval in seconds; 0 is off.
        seconds: u32,
        /// The moderator.
        by: UserId,
        /// When, in milliseconds since the Unix epoch.
        ts: u64,
    },
    /// Every message so far was removed.
    Cleared {
        /// The moderator.
        by: UserId,
        /// When, in milliseconds since the Unix epoch.
        ts: u64,
    },
    /// The pinned message changed.
    Pinned {
        /// The message pinned; absent when unpinned.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<MessageId>,
        /// The moderator.
        by: UserId,
        /// When, in milliseconds since the Unix epoch.
        ts: u64,
    },
}

/// Every message in `records`, in order, each marked deleted if a later record deleted it
/// or cleared the chat after it.
pub fn export<'a>(records: impl IntoIterator<Item = &'a LogRecord>) -> Vec<ExportedChatMessage> {
    let mut messages: Vec<ExportedChatMessage> = Vec::new();
    for record in records {
        match record {
            LogRecord::Message(message) => messages.push(ExportedChatMessage {
                message: message.clone(),
                deleted: false,
            }),
            LogRecord::Deleted { id, .. } => {
                if let Some(entry) = messages.iter_mut().rev().find(|m| &m.message.id == id) {
                    entry.deleted = true;
                }
            }
            LogRecord::Cleared { .. } => {
                for entry in &mut messages {
                    entry.deleted = true;
                }
            }
            LogRecord::Muted { .. }
            | LogRecord::Banned { .. }
            | LogRecord::Slow { .. }
            | LogRecord::Pinned { .. } => {}
        }
    }
    messages
}

#[cfg(test)]
mod tests {
    use super::*;
    use signaling_proto::{ChatRole, ChatUser};

    fn message(id: &str) -> ChatMessage {
        ChatMessage {
            id: id.into(),
            from: ChatUser {
                id: "u1".into(),
                name: "Ana".into(),
                role: ChatRole::Viewer,
            },
            text: "hi".into(),
            ts: 7,
            reply_to: None,
        }
    }

    #[test]
    fn a_message_record_is_the_message_plus_an_event_tag() {
        let json = serde_json::to_value(LogRecord::Message(message("m1"))).unwrap();
        assert_eq!(json["event"], "message");
        assert_eq!(json["id"], "m1");
        assert_eq!(json["from"]["name"], "Ana");
        let back: LogRecord = serde_json::from_value(json).unwrap();
        assert_eq!(back, LogRecord::Message(message("m1")));
    }

    #[test]
    fn export_marks_deleted_and_cleared_messages() {
        let records = [
            LogRecord::Message(message("m1")),
            LogRecord::Message(message("m2")),
            LogRecord::Deleted {
                id: "m2".into(),
                by: "mod".into(),
                ts: 8,
            },
            LogRecord::Message(message("m3")),
            LogRecord::Cleared {
                by: "mod".into(),
                ts: 9,
            },
            LogRecord::Message(message("m4")),
        ];
        let flags: Vec<(String, bool)> = export(&records)
            .into_iter()
            .map(|m| (m.message.id, m.deleted))
            .collect();
        assert_eq!(
            flags,
            [
                ("m1".to_owned(), true),
                ("m2".to_owned(), true),
                ("m3".to_owned(), true),
                ("m4".to_owned(), false)
            ]
        );
    }
}
