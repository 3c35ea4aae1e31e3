//! A stream's chat room: the sans-IO state machine the transports drive. They call
//! [`Room::join`] when a member's channel opens, feed what it sends to
//! [`Room::handle_raw`], call [`Room::leave`] when it closes, report the stream's media
//! with [`Room::set_stream`] when it changes, call [`Room::handle_timeout`] when
//! [`Room::poll_timeout`] says so, and drain [`Room::poll_output`] after every call.
//!
//! The room owns membership, roles, limits, moderation and what members hear of the
//! stream. It does not own sockets, buffers, serialization to the wire, the log file or
//! the media: those are the driver's (see [`crate::ChatLog`] and [`crate::MemberQueue`]).
//! Time comes in as an argument.

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
use crate::presence::{Audience, Presence};
use crate::record::LogRecord;
use crate::state::RoomState;
use crate::stream::StreamState;
use crate::text::{clean_name, clean_text};

/// The longest mute a moderator can give, in minutes (a day; longer is a ban).
pub const MAX_MUTE_MINUTES: u32 = 24 * 60;
/// The longest slow-mode interval, in seconds.
pub const MAX_SLOW_SECONDS: u32 = 3600;

mod moderation;

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

/// One stream's chat.
#[derive(Debug)]
pub struct Room {
    state: RoomState,
    members: HashMap<UserId, Member>,
    /// Members who are not the presenter.
    viewers: usize,
    presence: Presence,
    /// The stream's media as the driver last reported it (`None`: never reported).
    stream: Option<StreamState>,
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
            stream: None,
            clock: WallClock::new(now, wall),
            ids: ContextV7::new(),
            outputs: VecDeque::new(),
        }
    }

    /// Adds a member whose chat channel just opened and sends it the history, the stream's
    /// status (once the driver reported it) and the audience. `user` is
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
        if let Some(stream) = &self.stream {
            let status = stream.status_message();
            self.send(user, status);
        }
        if !self.update_presence(now) {
            let presence = self.audience().message();
            self.send(user, presence);
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

    /// The stream's media changed (or is reported for the first time): members hear a
    /// `stream.status` if live, tracks or recording changed, and the audience in the next
    /// `presence` if the number watching changed.
    pub fn set_stream(&mut self, stream: StreamState, now: Instant) {
        let changed = self
            .stream
            .as_ref()
            .is_none_or(|old| old.status_differs(&stream));
        if changed {
            self.broadcast(stream.status_message());
        }
        self.stream = Some(stream);
        self.update_presence(now);
    }

    /// Applies an event the stream's chat authority on another node committed (a node of a
    /// cluster mirrors its authority's log): history, pin, slow mode, mutes and bans change
    /// as they did there, so this room refuses the same joins and, should it become the
    /// authority, goes on from the same state. Nothing is emitted: the authority's own
    /// deliveries tell the members.
    pub fn apply_record(&mut self, record: &LogRecord) {
        self.state.apply(record);
    }

    /// The stream's media as last reported, if it was.
    pub fn stream(&self) -> Option<&StreamState> {
        self.stream.as_ref()
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

    /// One raw message from a moderator outside the room (e.g. an admin API): handled as a
    /// moderator's, but nobody hears `user` join or counts it, and it is not a member
    /// afterwards. A refusal is sent to `user` (a driver with no such member drops it).
    pub fn handle_raw_as_moderator(&mut self, user: &str, name: &str, raw: &[u8], now: Instant) {
        if self.is_member(user) {
            self.handle_raw(user, raw, now);
            return;
        }
        let member = Member {
            name: name.to_owned(),
            role: ChatRole::Moderator,
            origin: None,
            limiter: SendLimiter::default(),
        };
        self.members.insert(user.to_owned(), member);
        self.handle_raw(user, raw, now);
        self.members.remove(user);
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
        if self.presence.take_due(now) {
            self.update_presence(now);
        }
    }

    /// When [`Self::handle_timeout`] should next be called, if anything is pending.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.presence.due()
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

    /// The audience as `presence` announces it.
    fn audience(&self) -> Audience {
        Audience {
            in_chat: self.viewers,
            watching: self.stream.as_ref().map(|s| s.watching),
        }
    }

    /// Announces the audience if it changed, unless an announcement went out less than
    /// [`crate::PRESENCE_INTERVAL`] ago (then a timer announces it). Returns whether it
    /// went out now.
    fn update_presence(&mut self, now: Instant) -> bool {
        let audience = self.audience();
        if !self.presence.announce_now(audience, now) {
            return false;
        }
        self.broadcast(audience.message());
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

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}
