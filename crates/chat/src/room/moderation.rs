//! The moderation actions of a room: delete, mute, ban, slow mode, clear and pin, each
//! checked against the actor's role (and the target's rank), committed to the log and
//! announced to everyone.

use std::time::Instant;

use signaling_proto::{ChatErrorCode, ChatRole, ChatServerMessage};

use super::{MAX_MUTE_MINUTES, MAX_SLOW_SECONDS, Output, Refusal, Room};
use crate::rank::{rank, role_name};
use crate::record::LogRecord;

impl Room {
    pub(super) fn delete(&mut self, user: &str, id: &str, now: Instant) -> Result<(), Refusal> {
        self.moderator(user)?;
        if self.state.message(id).is_none() {
            return Err(not_found_message());
        }
        let was_pinned = self.state.pinned.as_ref().is_some_and(|m| m.id == id);
        self.commit(LogRecord::Deleted {
            id: id.to_owned(),
            by: user.to_owned(),
            ts: self.clock.millis(now),
        });
        self.broadcast(ChatServerMessage::Deleted { id: id.to_owned() });
        if was_pinned {
            self.broadcast(ChatServerMessage::Pinned { message: None });
        }
        Ok(())
    }

    pub(super) fn mute(
        &mut self,
        user: &str,
        target: &str,
        minutes: u32,
        now: Instant,
    ) -> Result<(), Refusal> {
        let actor = self.moderator(user)?;
        if !(1..=MAX_MUTE_MINUTES).contains(&minutes) {
            return Err((
                ChatErrorCode::BadRequest,
                format!("`minutes` must be 1 to {MAX_MUTE_MINUTES}"),
            ));
        }
        let (name, _, _) = self.target(actor, target)?;
        let now_ms = self.clock.millis(now);
        let until = now_ms.saturating_add(u64::from(minutes) * 60_000);
        self.commit(LogRecord::Muted {
            user: target.to_owned(),
            name: name.clone(),
            until,
            by: Some(user.to_owned()),
            ts: now_ms,
        });
        self.broadcast(ChatServerMessage::Muted {
            user: target.to_owned(),
            name,
            until,
        });
        Ok(())
    }

    pub(super) fn ban(&mut self, user: &str, target: &str, now: Instant) -> Result<(), Refusal> {
        let actor = self.moderator(user)?;
        let (name, _, origin) = self.target(actor, target)?;
        self.commit(LogRecord::Banned {
            user: target.to_owned(),
            name: name.clone(),
            origin,
            by: user.to_owned(),
            ts: self.clock.millis(now),
        });
        self.broadcast(ChatServerMessage::Banned {
            user: target.to_owned(),
            name,
        });
        if let Some(member) = self.members.remove(target) {
            self.count_out(member.role);
            self.outputs.push_back(Output::Disconnect {
                user: target.to_owned(),
            });
            self.update_presence(now);
        }
        Ok(())
    }

    pub(super) fn slow(&mut self, user: &str, seconds: u32, now: Instant) -> Result<(), Refusal> {
        self.moderator(user)?;
        if seconds > MAX_SLOW_SECONDS {
            return Err((
                ChatErrorCode::BadRequest,
                format!("`seconds` must be 0 (off) to {MAX_SLOW_SECONDS}"),
            ));
        }
        self.commit(LogRecord::Slow {
            seconds,
            by: user.to_owned(),
            ts: self.clock.millis(now),
        });
        self.broadcast(ChatServerMessage::Slow { seconds });
        Ok(())
    }

    pub(super) fn clear(&mut self, user: &str, now: Instant) -> Result<(), Refusal> {
        self.moderator(user)?;
        let was_pinned = self.state.pinned.is_some();
        self.commit(LogRecord::Cleared {
            by: user.to_owned(),
            ts: self.clock.millis(now),
        });
        self.broadcast(ChatServerMessage::Cleared);
        if was_pinned {
            self.broadcast(ChatServerMessage::Pinned { message: None });
        }
        Ok(())
    }

    pub(super) fn pin(
        &mut self,
        user: &str,
        id: Option<String>,
        now: Instant,
    ) -> Result<(), Refusal> {
        self.moderator(user)?;
        let message = match &id {
            Some(id) => Some(
                self.state
                    .message(id)
                    .cloned()
                    .ok_or_else(not_found_message)?,
            ),
            None => None,
        };
        self.commit(LogRecord::Pinned {
            id,
            by: user.to_owned(),
            ts: self.clock.millis(now),
        });
        self.broadcast(ChatServerMessage::Pinned { message });
        Ok(())
    }

    /// The member's role if it may moderate.
    fn moderator(&self, user: &str) -> Result<ChatRole, Refusal> {
        match self.members.get(user) {
            Some(member) if member.role.can_moderate() => Ok(member.role),
            _ => Err((
                ChatErrorCode::Forbidden,
                "only moderators and the presenter may moderate".to_owned(),
            )),
        }
    }

    /// Name, role and origin of a user `actor` wants to mute or ban: a member, or the
    /// author of a message still in the history. Only someone of lower rank qualifies,
    /// so nobody mutes themselves and a moderator cannot silence the presenter.
    fn target(
        &self,
        actor: ChatRole,
        target: &str,
    ) -> Result<(String, ChatRole, Option<String>), Refusal> {
        let found = match self.members.get(target) {
            Some(member) => (member.name.clone(), member.role, member.origin.clone()),
            None => {
                let message = self.state.last_message_from(target).ok_or_else(|| {
                    (
                        ChatErrorCode::NotFound,
                        "no such user in this chat".to_owned(),
                    )
                })?;
                (message.from.name.clone(), message.from.role, None)
            }
        };
        if rank(found.1) >= rank(actor) {
            return Err((
                ChatErrorCode::Forbidden,
                format!("a {} cannot be muted or banned by you", role_name(found.1)),
            ));
        }
        Ok(found)
    }
}

fn not_found_message() -> Refusal {
    (
        ChatErrorCode::NotFound,
        "no such message in the chat (deleted, or too old)".to_owned(),
    )
}
