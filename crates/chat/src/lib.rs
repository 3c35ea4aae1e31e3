//! Directo's chat: one [`Room`] per stream, shared by everyone watching it. A sans-IO state
//! machine in the style of `directo-sfu`: the transports (a WebRTC data channel labelled
//! `chat`, or `/ws` for clients without WebRTC) feed it joins, raw messages and leaves with
//! the current time, and drain [`Output`]s: log records, messages for everyone, messages
//! for one member, and members to disconnect. The stream's media (live or not, viewers
//! watching) comes in the same way, as a [`StreamState`] the driver reports. No sockets, no
//! tokio, no clock of its own.
//!
//! The wire types are `signaling-proto`'s (`ChatClientMessage`, `ChatServerMessage`).
//!
//! # Driving a room
//!
//! ```no_run
//! # use std::collections::HashMap;
//! # use std::time::{Instant, SystemTime};
//! # use directo_chat::{ChatLog, Durability, MEMBER_QUEUE_CAPACITY, MemberQueue, Output, Room};
//! # use signaling_proto::ChatRole;
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let data_dir = std::path::Path::new("/var/lib/directo");
//! let (mut log, records) = ChatLog::open(data_dir, "launch", Durability::Flush)?;
//! let mut room = Room::restore(records, Instant::now(), SystemTime::now());
//! let mut queues: HashMap<String, MemberQueue<String>> = HashMap::new();
//!
//! room.join("peer-1", "Ana", ChatRole::Viewer, Some("203.0.113.9"), Instant::now())?;
//! queues.insert("peer-1".into(), MemberQueue::new(MEMBER_QUEUE_CAPACITY));
//! room.handle_raw("peer-1", br#"{"type":"chat.send","text":"hello"}"#, Instant::now());
//!
//! while let Some(output) = room.poll_output() {
//!     match output {
//!         // On disk before anything after it is delivered.
//!         Output::Persist(record) => log.append(&record)?,
//!         Output::Broadcast(message) => {
//!             let text = serde_json::to_string(&message)?;
//!             for queue in queues.values_mut() {
//!                 queue.push(text.clone());
//!             }
//!         }
//!         Output::Send { to, message } => {
//!             if let Some(queue) = queues.get_mut(&to) {
//!                 queue.push(serde_json::to_string(&message)?);
//!             }
//!         }
//!         Output::Disconnect { user } => {
//!             queues.remove(&user); // and close the member's media
//!         }
//!     }
//! }
//! # Ok(()) }
//! ```
//!
//! If an append fails, the event is in the room but not on disk: the driver should treat
//! that as fatal for the room (log it, close the members, restore a new room from the
//! log) rather than deliver what a restart would not know.
//!
//! # What it enforces
//!
//! Names of 1–32 and texts of 1–500 characters (control characters removed, never
//! interpreted as HTML), raw messages of at most 4 KiB, replies only to messages still in
//! the history, moderation only by moderators and the presenter, mutes, bans (by id, name
//! and origin), slow mode, and at most 5 messages per 10 s per user (a viewer's 6th mutes
//! them for a minute). Anything refused is an `error` to the sender, who stays connected.

mod bans;
mod clock;
mod error;
mod limits;
mod log;
mod output;
mod parse;
mod presence;
mod queue;
mod rank;
mod record;
mod room;
mod state;
mod stream;
mod text;

pub use error::{JoinError, LogError};
pub use limits::{AUTO_MUTE, RATE_LIMIT_MESSAGES, RATE_LIMIT_WINDOW};
pub use log::{ChatLog, Durability};
pub use output::Output;
pub use parse::MAX_RAW_BYTES;
pub use presence::PRESENCE_INTERVAL;
pub use queue::{MEMBER_QUEUE_CAPACITY, MemberQueue};
pub use record::{LogRecord, export};
pub use room::{MAX_MUTE_MINUTES, MAX_SLOW_SECONDS, Room};
pub use state::HISTORY_LEN;
pub use stream::StreamState;
pub use text::{MAX_NAME_CHARS, MAX_TEXT_CHARS, clean_name, sanitize};
