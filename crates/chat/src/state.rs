//! The part of a room its log rebuilds: recent history, the pinned message, slow mode,
//! mutes and bans. A live room and a restored one change it through the same
//! [`RoomState::apply`], so a restart cannot disagree with what people saw.
//!
//! Members, their flood limits and the presence count are not here: they belong to
//! connections, which do not survive a restart.

use std::collections::{HashMap, VecDeque};

use signaling_proto::{ChatMessage, UserId};

use crate::bans::Bans;
use crate::record::LogRecord;

/// How many messages the history keeps (and a joining member receives).
pub const HISTORY_LEN: usize = 200;

/// Recent history and moderation state.
#[derive(Debug, Default)]
pub(crate) struct RoomState {
    /// The last messages not deleted, oldest first.
    pub(crate) history: VecDeque<ChatMessage>,
    pub(crate) pinned: Option<ChatMessage>,
    pub(crate) slow_seconds: u32,
    /// User id -> end of the mute, in Unix milliseconds.
    mutes: HashMap<UserId, u64>,
    pub(crate) bans: Bans,
}

impl RoomState {
    /// Applies one event.
    pub(crate) fn apply(&mut self, record: &LogRecord) {
        match record {
            LogRecord::Message(message) => {
                self.history.push_back(message.clone());
                while self.history.len() > HISTORY_LEN {
                    self.history.pop_front();
                }
            }
            LogRecord::Deleted { id, .. } => {
                self.history.retain(|m| &m.id != id);
                if self.pinned.as_ref().is_some_and(|m| &m.id == id) {
                    self.pinned = None;
                }
            }
            LogRecord::Muted { user, until, .. } => {
                self.mutes.insert(user.clone(), *until);
            }
            LogRecord::Banned {
                user, name, origin, ..
            } => {
                self.bans.insert(user, name, origin.as_deref());
                self.mutes.remove(user);
            }
            LogRecord::Slow { seconds, .. } => self.slow_seconds = *seconds,
            LogRecord::Cleared { .. } => {
                self.history.clear();
                self.pinned = None;
            }
            LogRecord::Pinned { id, .. } => {
                self.pinned = id.as_ref().and_then(|id| self.message(id).cloned());
            }
        }
    }

    /// A message still in the history.
    pub(crate) fn message(&self, id: &str) -> Option<&ChatMessage> {
        self.history.iter().rev().find(|m| m.id == id)
    }

    /// The latest message `user` wrote that is still in the history.
    pub(crate) fn last_message_from(&self, user: &str) -> Option<&ChatMessage> {
        self.history.iter().rev().find(|m| m.from.id == user)
    }

    /// When `user`'s mute ends, if it is still running at `now_ms`. Forgets ended mutes.
    pub(crate) fn muted_until(&mut self, user: &str, now_ms: u64) -> Option<u64> {
        let until = *self.mutes.get(user)?;
        if until > now_ms {
            Some(until)
        } else {
            self.mutes.remove(user);
            None
        }
    }
}
