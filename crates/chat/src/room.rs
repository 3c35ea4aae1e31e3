//! A stream's chat room: the sans-IO state machine the transports drive. They call
//! [`Room::join`] when a member's channel opens, feed what it sends to
//! [`Room::handle_raw`], call [`Room::leave`] when it closes, call [`Room::handle_timeout`]
//! when [`Room::poll_timeout`] says so, and drain [`Room::poll_output`] after every call.
//!
//! The room owns membership, roles, limits and moderation. It does not own sockets,
//! buffers, serialization to the wire or the log file: those are the driver's (see
//! [`crate::ChatLog`] and [`crate::MemberQueue`]). Time comes in as an argument.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant, SystemTime};

use signaling_proto::{
    ChatClientMessage, ChatErrorCode, ChatMessage, ChatRole, ChatServerMessage, ChatUser, UserId,
};
use uuid::{ContextV7, Timestamp, Uuid};

use crate::clock::WallClock;
use crate::error::JoinError;
use crate::limits::{AUTO_MUTE, SendLimiter};
use crate::output::Output;
use crate::parse::parse;
use crate::record::LogRecord;
use crate::state::RoomState;
use crate::text::{clean_name, clean_text};

/// The longest mute a moderator can give, in minutes (a day; longer is a ban).
pub const MAX_MUTE_MINUTES: u32 = 24 * 60;
/// The longest slow-mode interval, in seconds.
pub const MAX_SLOW_SECONDS: u32 = 3600;
/// Presence goes out at most this often, so a crowd joining at once is one update, not
/// one per viewer to every viewer.
pub const PRESENCE_INTERVAL: Duration = Duration::from_secs(1);

/// A refusal to send back to the member who asked.
type Refusal = (ChatErrorCode, String);

/// Someone whose chat channel is open.
#[derive(Debug)]
struct Member {
    name: String,
    role: ChatRole,
    origin: Option<String>,
    limiter: SendLimiter,
}

/// Presence throttling: what was last announced, and when the next announcement may go.
#[derive(Debug, Default)]
struct Presence {
    announced: Option<usize>,
    last_at: Option<Instant>,
    due: Option<Instant>,
}

/// One stream's chat.
#[derive(Debug)]
pub struct Room {
    state: RoomState,
    members: HashMap<UserId, Member>,
    /// Members who are not the presenter.
    viewers: usize,
    presence: Presence,
    clock: WallClock,
    /// Keeps message ids increasing within one millisecond.
    ids: ContextV7,
    outputs: VecDeque<Output>,
}

impl Room {
    /// An empty room. `now` and `wall` are the same moment on the two clocks; every later
    /// call takes an `Instant` only.
    pub fn new(now: Instant, wall: SystemTime) -> Self {
        Self::restore(std::iter::empty(), now, wall)
    }

    /// A room rebuilt from its log: history (minus deleted messages), pin, slow mode,
    /// mutes and bans as they were. Nobody is a member yet.
    pub fn restore(
        records: impl IntoIterator<Item = LogRecord>,
        now: Instant,
        wall: SystemTime,
    ) -> Self {
        let mut state = RoomState::default();
        for record in records {
            state.apply(&record);
        }
        Room {
            state,
            members: HashMap::new(),
            viewers: 0,
            presence: Presence::default(),
            clock: WallClock::new(now, wall),
            ids: ContextV7::new(),
            outputs: VecDeque::new(),
        }
    }

    /// Adds a member whose chat channel just opened and sends it the history. `user` is
    /// the connection's stable id, `origin` where it connects from (e.g. its IP address),
    /// used for bans. Joining again with the same id replaces the member's name and role
    /// (its flood limit carries over). Returns the member as others will see it.
    pub fn join(
        &mut self,
        user: &str,
        name: &str,
        role: ChatRole,
        origin: Option<&str>,
        now: Instant,
    ) -> Result<ChatUser, JoinError> {
        let name = clean_name(name).ok_or(JoinError::InvalidName)?;
        if self.state.bans.matches(user, &name, origin) {
            return Err(JoinError::Banned);
        }
        let limiter = match self.members.remove(user) {
            Some(old) => {
                self.count_out(old.role);
                old.limiter
            }
            None => SendLimiter::default(),
        };
        self.members.insert(
            user.to_owned(),
            Member {
                name: name.clone(),
                role,
                origin: origin.map(str::to_owned),
                limiter,
            },
        );
        if role != ChatRole::Presenter {
            self.viewers += 1;
        }
        self.send(
            user,
            ChatServerMessage::History {
                messages: self.state.history.iter().cloned().collect(),
                pinned: self.state.pinned.clone(),
                slow_seconds: self.state.slow_seconds,
            },
        );
        if !self.update_presence(now) {
            self.send(
                user,
                ChatServerMessage::Presence {
                    viewers: self.viewers,
                },
            );
        }
        Ok(ChatUser {
            id: user.to_owned(),
            name,
            role,
        })
    }

    /// Removes a member whose channel closed; unknown ids are ignored.
    pub fn leave(&mut self, user: &str, now: Instant) {
        if let Some(member) = self.members.remove(user) {
            self.count_out(member.role);
            self.update_presence(now);
        }
    }

    /// Whether someone with this id, display name or origin is banned: transports refuse
    /// such a join, for chat and for media.
    pub fn is_banned(&self, user: &str, name: &str, origin: Option<&str>) -> bool {
        self.state.bans.matches(user, name, origin)
    }

    /// One raw message from a member, as it came off the wire. Anything wrong with it is
    /// answered with an `error` to that member, who stays connected. Messages from anyone
    /// not joined (e.g. a member just banned, before its transport closed) are ignored.
    pub fn handle_raw(&mut self, user: &str, raw: &[u8], now: Instant) {
        if !self.is_member(user) {
            return;
        }
        match parse(raw) {
            Ok(message) => self.handle(user, message, now),
            Err((code, message)) => self.send(user, ChatServerMessage::error(code, message)),
        }
    }

    /// One parsed message from a member (for transports that parse themselves).
    pub fn handle(&mut self, user: &str, message: ChatClientMessage, now: Instant) {
        if !self.is_member(user) {
            return;
        }
        let result = match message {
            ChatClientMessage::Send { text, reply_to } => self.post(user, &text, reply_to, now),
            ChatClientMessage::Delete { id } => self.delete(user, &id, now),
            ChatClientMessage::Mute {
                user: target,
                minutes,
            } => self.mute(user, &target, minutes, now),
            ChatClientMessage::Ban { user: target } => self.ban(user, &target, now),
            ChatClientMessage::Slow { seconds } => self.slow(user, seconds, now),
            ChatClientMessage::Clear {} => self.clear(user, now),
            ChatClientMessage::Pin { id } => self.pin(user, id, now),
        };
        if let Err((code, message)) = result {
            self.send(user, ChatServerMessage::error(code, message));
        }
    }

    /// Runs what is due at `now`: a throttled presence update.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.presence.due.is_some_and(|due| due <= now) {
            self.presence.due = None;
            self.update_presence(now);
        }
    }

    /// When [`Self::handle_timeout`] should next be called, if anything is pending.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.presence.due
    }

    /// The next thing for the driver to do; drain after every call above.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    /// The history a member joining now receives, oldest first.
    pub fn history(&self) -> impl Iterator<Item = &ChatMessage> {
        self.state.history.iter()
    }

    /// The pinned message, if any.
    pub fn pinned(&self) -> Option<&ChatMessage> {
        self.state.pinned.as_ref()
    }

    /// The slow-mode interval in seconds; 0 when off.
    pub fn slow_seconds(&self) -> u32 {
        self.state.slow_seconds
    }

    /// How many members are viewers (everyone but the presenter).
    pub fn viewer_count(&self) -> usize {
        self.viewers
    }

    /// How many members the room has.
    pub fn member_count(&self) -> usize {
        self.members.len()
    }

    /// Whether `user` is a member.
    pub fn is_member(&self, user: &str) -> bool {
        self.members.contains_key(user)
    }

    /// A member's name and role as others see them.
    pub fn member(&self, user: &str) -> Option<ChatUser> {
        self.members.get(user).map(|m| ChatUser {
            id: user.to_owned(),
            name: m.name.clone(),
            role: m.role,
        })
    }

    fn post(
        &mut self,
        user: &str,
        text: &str,
        reply_to: Option<String>,
        now: Instant,
    ) -> Result<(), Refusal> {
        let now_ms = self.clock.millis(now);
        if let Some(until) = self.state.muted_until(user, now_ms) {
            return Err((
                ChatErrorCode::Muted,
                format!(
                    "you are muted for another {} s",
                    until.saturating_sub(now_ms).div_ceil(1000)
                ),
            ));
        }
        let text = clean_text(text)?;
        if let Some(id) = &reply_to
            && self.state.message(id).is_none()
        {
            return Err((
                ChatErrorCode::NotFound,
                "the message you reply to is not in the chat (deleted, or too old)".to_owned(),
            ));
        }
        let slow = Duration::from_secs(self.state.slow_seconds.into());
        let Some(member) = self.members.get_mut(user) else {
            return Ok(());
        };
        if !member.role.can_moderate()
            && !slow.is_zero()
            && let Some(wait) = member.limiter.slow_mode_wait(slow, now)
        {
            return Err((
                ChatErrorCode::SlowMode,
                format!(
                    "slow mode is on: one message every {} s; wait {} s",
                    slow.as_secs(),
                    wait.as_millis().div_ceil(1000)
                ),
            ));
        }
        if !member.limiter.allows(now) {
            let (name, role) = (member.name.clone(), member.role);
            // Staff cannot be muted, but they are still held to the flood limit.
            if role == ChatRole::Viewer {
                let until = now_ms.saturating_add(millis(AUTO_MUTE));
                self.commit(LogRecord::Muted {
                    user: user.to_owned(),
                    name: name.clone(),
                    until,
                    by: None,
                    ts: now_ms,
                });
                self.broadcast(ChatServerMessage::Muted {
                    user: user.to_owned(),
                    name,
                    until,
                });
            }
            return Err((
                ChatErrorCode::RateLimited,
                format!(
                    "too many messages: at most {} per {} s",
                    crate::RATE_LIMIT_MESSAGES,
                    crate::RATE_LIMIT_WINDOW.as_secs()
                ),
            ));
        }
        member.limiter.record(now);
        let from = ChatUser {
            id: user.to_owned(),
            name: member.name.clone(),
            role: member.role,
        };
        let message = ChatMessage {
            id: self.next_id(now_ms),
            from,
            text,
            ts: now_ms,
            reply_to,
        };
        self.commit(LogRecord::Message(message.clone()));
        self.broadcast(ChatServerMessage::Message(message));
        Ok(())
    }

    fn delete(&mut self, user: &str, id: &str, now: Instant) -> Result<(), Refusal> {
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

    fn mute(
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

    fn ban(&mut self, user: &str, target: &str, now: Instant) -> Result<(), Refusal> {
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

    fn slow(&mut self, user: &str, seconds: u32, now: Instant) -> Result<(), Refusal> {
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

    fn clear(&mut self, user: &str, now: Instant) -> Result<(), Refusal> {
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

    fn pin(&mut self, user: &str, id: Option<String>, now: Instant) -> Result<(), Refusal> {
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

    /// Applies an event and queues its log record ahead of its deliveries, so the log
    /// always runs ahead of what anyone sees.
    fn commit(&mut self, record: LogRecord) {
        self.state.apply(&record);
        self.outputs.push_back(Output::Persist(record));
    }

    fn broadcast(&mut self, message: ChatServerMessage) {
        self.outputs.push_back(Output::Broadcast(message));
    }

    fn send(&mut self, to: &str, message: ChatServerMessage) {
        self.outputs.push_back(Output::Send {
            to: to.to_owned(),
            message,
        });
    }

    fn count_out(&mut self, role: ChatRole) {
        if role != ChatRole::Presenter {
            self.viewers = self.viewers.saturating_sub(1);
        }
    }

    /// Announces the viewer count if it changed, unless one went out less than
    /// [`PRESENCE_INTERVAL`] ago (then a timer announces it). Returns whether it went out
    /// now.
    fn update_presence(&mut self, now: Instant) -> bool {
        if self.presence.announced == Some(self.viewers) {
            return false;
        }
        if let Some(last) = self.presence.last_at
            && now < last + PRESENCE_INTERVAL
        {
            self.presence.due.get_or_insert(last + PRESENCE_INTERVAL);
            return false;
        }
        self.presence = Presence {
            announced: Some(self.viewers),
            last_at: Some(now),
            due: None,
        };
        self.broadcast(ChatServerMessage::Presence {
            viewers: self.viewers,
        });
        true
    }

    fn next_id(&mut self, now_ms: u64) -> String {
        let ts = Timestamp::from_unix(
            &self.ids,
            now_ms / 1000,
            u32::try_from(now_ms % 1000).unwrap_or(0) * 1_000_000,
        );
        Uuid::new_v7(ts).hyphenated().to_string()
    }
}

fn not_found_message() -> Refusal {
    (
        ChatErrorCode::NotFound,
        "no such message in the chat (deleted, or too old)".to_owned(),
    )
}

fn rank(role: ChatRole) -> u8 {
    match role {
        ChatRole::Viewer => 0,
        ChatRole::Moderator => 1,
        ChatRole::Presenter => 2,
    }
}

fn role_name(role: ChatRole) -> &'static str {
    match role {
        ChatRole::Viewer => "viewer",
        ChatRole::Moderator => "moderator",
        ChatRole::Presenter => "presenter",
    }
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}
