//! An in-memory driver for a [`Room`]: members with inboxes, a log kept as a Vec, time
//! advanced by hand. Every delivery goes through JSON and back, as on the wire.

#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use directo_chat::{JoinError, LogRecord, Output, Room, StreamState};
use signaling_proto::{ChatErrorCode, ChatMessage, ChatRole, ChatServerMessage, ChatUser};

/// The wall-clock time the harness's rooms start at (2025-01-01T00:00:00Z).
pub const WALL_START_MS: u64 = 1_735_689_600_000;

pub fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

/// A room and everything its driver would hold.
pub struct Harness {
    pub room: Room,
    pub now: Instant,
    /// Every record persisted, in order.
    pub log: Vec<LogRecord>,
    /// Members as the driver knows them (joined, not left or disconnected).
    pub members: BTreeSet<String>,
    /// What each member received, in order.
    pub inboxes: BTreeMap<String, Vec<ChatServerMessage>>,
    /// Members the room told the driver to disconnect.
    pub disconnected: Vec<String>,
}

impl Harness {
    pub fn new() -> Self {
        Self::restore(Vec::new())
    }

    /// A room rebuilt from `records`, as after a restart.
    pub fn restore(records: Vec<LogRecord>) -> Self {
        let now = Instant::now();
        let wall = UNIX_EPOCH + Duration::from_millis(WALL_START_MS);
        Harness {
            room: Room::restore(records.clone(), now, wall),
            now,
            log: records,
            members: BTreeSet::new(),
            inboxes: BTreeMap::new(),
            disconnected: Vec::new(),
        }
    }

    /// Starts the room's clock at `wall` instead.
    pub fn at_wall(wall: SystemTime, records: Vec<LogRecord>) -> Self {
        let mut harness = Self::restore(records);
        harness.room = Room::restore(harness.log.clone(), harness.now, wall);
        harness
    }

    pub fn advance(&mut self, by: Duration) {
        self.now += by;
        if self.room.poll_timeout().is_some_and(|due| due <= self.now) {
            self.room.handle_timeout(self.now);
            self.drain();
        }
    }

    pub fn try_join(
        &mut self,
        id: &str,
        name: &str,
        role: ChatRole,
        origin: Option<&str>,
    ) -> Result<ChatUser, JoinError> {
        let user = self.room.join(id, name, role, origin, self.now)?;
        self.members.insert(id.to_owned());
        self.inboxes.entry(id.to_owned()).or_default();
        self.drain();
        Ok(user)
    }

    pub fn join(&mut self, id: &str, name: &str, role: ChatRole) -> ChatUser {
        self.try_join(id, name, role, Some(&format!("origin-{id}")))
            .expect("join accepted")
    }

    pub fn leave(&mut self, id: &str) {
        self.room.leave(id, self.now);
        self.members.remove(id);
        self.drain();
    }

    /// The driver reports the stream's media.
    pub fn set_stream(&mut self, stream: StreamState) {
        self.room.set_stream(stream, self.now);
        self.drain();
    }

    /// Sends a raw message from `id`.
    pub fn raw(&mut self, id: &str, raw: &[u8]) {
        self.room.handle_raw(id, raw, self.now);
        self.drain();
    }

    /// Sends a JSON value from `id`.
    pub fn send(&mut self, id: &str, json: serde_json::Value) {
        let raw = serde_json::to_vec(&json).expect("json encodes");
        self.raw(id, &raw);
    }

    /// `id` says `text`.
    pub fn say(&mut self, id: &str, text: &str) {
        self.send(id, serde_json::json!({"type": "chat.send", "text": text}));
    }

    /// `id` replies `text` to message `to`.
    pub fn reply(&mut self, id: &str, to: &str, text: &str) {
        self.send(
            id,
            serde_json::json!({"type": "chat.send", "text": text, "reply_to": to}),
        );
    }

    /// Takes what `id` received since the last call.
    pub fn take(&mut self, id: &str) -> Vec<ChatServerMessage> {
        std::mem::take(self.inboxes.entry(id.to_owned()).or_default())
    }

    /// The chat messages `id` received (not history), in order, without taking them.
    pub fn messages(&self, id: &str) -> Vec<ChatMessage> {
        self.inboxes
            .get(id)
            .into_iter()
            .flatten()
            .filter_map(|m| match m {
                ChatServerMessage::Message(message) => Some(message.clone()),
                _ => None,
            })
            .collect()
    }

    /// The error codes `id` received, in order, without taking them.
    pub fn errors(&self, id: &str) -> Vec<ChatErrorCode> {
        self.inboxes
            .get(id)
            .into_iter()
            .flatten()
            .filter_map(|m| match m {
                ChatServerMessage::Error { code, .. } => Some(*code),
                _ => None,
            })
            .collect()
    }

    /// The last `chat.history` `id` received: its messages' texts.
    pub fn history_texts(&self, id: &str) -> Vec<String> {
        self.inboxes
            .get(id)
            .into_iter()
            .flatten()
            .filter_map(|m| match m {
                ChatServerMessage::History { messages, .. } => {
                    Some(messages.iter().map(|m| m.text.clone()).collect())
                }
                _ => None,
            })
            .next_back()
            .unwrap_or_default()
    }

    /// Texts of the chat messages `id` received live.
    pub fn texts(&self, id: &str) -> Vec<String> {
        self.messages(id).into_iter().map(|m| m.text).collect()
    }

    /// Drains the room like a transport would: persist, then deliver through JSON.
    pub fn drain(&mut self) {
        while let Some(output) = self.room.poll_output() {
            match output {
                Output::Persist(record) => self.log.push(record),
                Output::Broadcast(message) => {
                    let wire = serde_json::to_string(&message).expect("message encodes");
                    for member in &self.members {
                        let received = serde_json::from_str(&wire).expect("message decodes");
                        self.inboxes
                            .entry(member.clone())
                            .or_default()
                            .push(received);
                    }
                }
                Output::Send { to, message } => {
                    assert!(self.members.contains(&to), "sent to non-member {to}");
                    let wire = serde_json::to_string(&message).expect("message encodes");
                    let received = serde_json::from_str(&wire).expect("message decodes");
                    self.inboxes.entry(to).or_default().push(received);
                }
                Output::Disconnect { user } => {
                    self.members.remove(&user);
                    self.disconnected.push(user);
                }
            }
        }
    }
}
