//! Each stream's chat figures for the stats API: messages sent and distinct members who
//! wrote, since the server started. They outlive the room (the stats page of an ended stream
//! still shows them) within [`crate::retention`]'s bounds; when a room closes, the set of
//! who wrote becomes a count (member ids are per connection, so none of them comes back).

use std::collections::HashSet;
use std::time::Instant;

use crate::retention::Retained;

/// A stream's chat figures for the stats API.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct ChatStats {
    /// Chat messages sent since the server started.
    pub chat_messages: u64,
    /// Distinct members who sent at least one message.
    pub chatters: usize,
}

#[derive(Debug, Default)]
struct Figures {
    messages: u64,
    /// Who wrote while the room is open.
    chatters: HashSet<String>,
    /// How many wrote in the room's earlier openings.
    earlier_chatters: usize,
}

/// Every stream's chat figures.
#[derive(Debug, Default)]
pub(super) struct ChatFigures {
    streams: Retained<Figures>,
}

impl ChatFigures {
    /// `from` posted a message on `stream`.
    pub(super) fn message(&mut self, stream: &str, from: &str) {
        let figures = self.streams.active(stream);
        figures.messages += 1;
        if !figures.chatters.contains(from) {
            figures.chatters.insert(from.to_owned());
        }
    }

    /// `stream`'s room closed at `now`.
    pub(super) fn room_closed(&mut self, stream: &str, now: Instant) {
        if let Some(figures) = self.streams.end(stream, now) {
            figures.earlier_chatters += figures.chatters.len();
            figures.chatters = HashSet::new();
        }
    }

    /// The figures of `stream` (zero if it has none).
    pub(super) fn stats(&self, stream: &str) -> ChatStats {
        self.streams
            .get(stream)
            .map(|f| ChatStats {
                chat_messages: f.messages,
                chatters: f.earlier_chatters + f.chatters.len(),
            })
            .unwrap_or_default()
    }
}
