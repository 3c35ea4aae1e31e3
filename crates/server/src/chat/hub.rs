//! The chat thread's state: the open rooms, every member and where its messages go (a data
//! channel through the engine, or a `/ws` queue), and the chat figures. It applies what the
//! engine, `/ws` connections and the engine's stream snapshot bring, and delivers what the
//! rooms emit: persisted first, serialized once, queued per member.

use directo_chat::Output;
use directo_media::{ChatIn, ChatOut, ChatRole as MediaRole};
use signaling_proto::{ChatErrorCode, ChatRole, ChatServerMessage, StreamInfo};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

use super::Command;
use super::figures::ChatFigures;
use super::link::Link;
use super::rooms::Rooms;
use super::wire::{Delivery, Mode};
use super::ws_member::WsMember;

/// The member id the admin API moderates as.
pub(super) const ADMIN_USER: &str = "admin-api";
/// How often rooms are checked for being let go.
const SWEEP_INTERVAL: Duration = Duration::from_secs(5);

pub(super) enum Sink {
    /// A WebRTC data channel, reached through the media engine by session id.
    Engine,
    /// A `/ws` connection.
    Ws(Arc<WsMember>),
    /// A member on another node of the cluster (this node is the stream's authority).
    Remote(String),
}

pub(super) struct Member {
    pub(super) stream: String,
    pub(super) sink: Sink,
    /// As it joined: what an edge tells the stream's authority.
    pub(super) name: String,
    pub(super) role: ChatRole,
    pub(super) origin: Option<String>,
}

/// Who joins a room.
struct Joiner<'a> {
    user: &'a str,
    stream: &'a str,
    name: &'a str,
    role: ChatRole,
    origin: Option<&'a str>,
}

/// Every open room, member and figure of the chat service.
pub(super) struct Hub {
    pub(super) rooms: Rooms,
    pub(super) members: HashMap<String, Member>,
    figures: ChatFigures,
    to_engine: mpsc::Sender<ChatOut>,
    engine_dropped: Arc<AtomicU64>,
    next_sweep: Instant,
    /// This node's part of the chat in a cluster (`None`: a single node).
    pub(super) link: Option<Link>,
}

fn role_of(role: MediaRole) -> ChatRole {
    match role {
        MediaRole::Presenter => ChatRole::Presenter,
        MediaRole::Viewer => ChatRole::Viewer,
        MediaRole::Moderator => ChatRole::Moderator,
    }
}

impl Hub {
    pub(super) fn new(
        data_dir: PathBuf,
        snapshot: Arc<Vec<StreamInfo>>,
        to_engine: mpsc::Sender<ChatOut>,
        engine_dropped: Arc<AtomicU64>,
    ) -> Self {
        Hub {
            rooms: Rooms::new(data_dir, snapshot),
            members: HashMap::new(),
            figures: ChatFigures::default(),
            to_engine,
            engine_dropped,
            next_sweep: Instant::now() + SWEEP_INTERVAL,
            link: None,
        }
    }

    fn join(&mut self, who: Joiner<'_>, sink: Sink, now: Instant) -> Result<(), ChatErrorCode> {
        let Joiner {
            user,
            stream,
            name,
            role,
            origin,
        } = who;
        let open = self
            .rooms
            .open(stream, now)
            .ok_or(ChatErrorCode::Internal)?;
        open.room
            .join(user, name, role, origin, now)
            .map_err(|e| e.code())?;
        self.members.insert(
            user.to_owned(),
            Member {
                stream: stream.to_owned(),
                sink,
                name: name.to_owned(),
                role,
                origin: origin.map(str::to_owned),
            },
        );
        self.forward_join(stream, user);
        self.drain(stream);
        Ok(())
    }

    fn message(&mut self, user: &str, text: &str, now: Instant) {
        let Some(stream) = self.members.get(user).map(|m| m.stream.clone()) else {
            return;
        };
        if self.forward_message(&stream, user, text, now) {
            return;
        }
        if let Some(open) = self.rooms.get_mut(&stream, now) {
            open.room.handle_raw(user, text.as_bytes(), now);
        }
        self.drain(&stream);
    }

    fn leave(&mut self, user: &str, now: Instant) {
        let Some(member) = self.members.remove(user) else {
            return;
        };
        if let Some(open) = self.rooms.get_mut(&member.stream, now) {
            open.room.leave(user, now);
        }
        self.forward_leave(&member.stream, user);
        self.drain(&member.stream);
    }

    /// Sends `text` to one member: through the engine, its `/ws` queue, or (a member of
    /// another node) in the event being assembled for the cluster.
    pub(super) fn deliver(&mut self, user: &str, text: &Arc<str>) {
        if let Some(Sink::Remote(node)) = self.members.get(user).map(|m| &m.sink) {
            let node = node.clone();
            if let Some(link) = self.link.as_mut() {
                link.outbox.deliver.push(Delivery::One {
                    node,
                    user: user.to_owned(),
                    text: text.to_string(),
                });
            }
            return;
        }
        match self.members.get(user).map(|m| &m.sink) {
            Some(Sink::Engine) => {
                let out = ChatOut::Send {
                    session: user.to_owned(),
                    text: Arc::clone(text),
                };
                if self.to_engine.try_send(out).is_err() {
                    self.engine_dropped.fetch_add(1, Ordering::Relaxed);
                }
            }
            Some(Sink::Ws(member)) => member.push(Arc::clone(text)),
            Some(Sink::Remote(_)) | None => {}
        }
    }

    /// Closes a member's chat (and, on a data channel, its media); a member of another node
    /// is closed by its node.
    pub(super) fn close_sink(&mut self, user: &str, sink: Sink) {
        match sink {
            Sink::Engine => {
                let _ = self.to_engine.try_send(ChatOut::Disconnect {
                    session: user.to_owned(),
                });
            }
            Sink::Ws(ws) => ws.close(),
            Sink::Remote(node) => {
                if let Some(link) = self.link.as_mut() {
                    link.outbox.deliver.push(Delivery::Disconnect {
                        node,
                        user: user.to_owned(),
                    });
                }
            }
        }
    }

    /// Apply everything the room emitted: persist first, then deliver. On an edge the room
    /// here only keeps membership and the mirrored state: the authority speaks, so what the
    /// room says is dropped. As the authority, what is delivered here goes to the cluster too.
    pub(super) fn drain(&mut self, stream: &str) {
        let mode = self.mode(stream);
        if matches!(mode, Mode::Edge(_)) {
            if let Some(open) = self.rooms.peek_mut(stream) {
                while open.room.poll_output().is_some() {}
            }
            return;
        }
        let authority = mode == Mode::Authority;
        let mut outputs = Vec::new();
        if let Some(open) = self.rooms.peek_mut(stream) {
            while let Some(output) = open.room.poll_output() {
                if let Output::Persist(record) = &output {
                    if let Err(e) = open.log.append(record) {
                        // Not on disk means not delivered: a restart would not know it.
                        tracing::error!(%stream, error = %e, "chat log append failed; dropping the event");
                        outputs.clear();
                        break;
                    }
                    if authority && let Some(link) = self.link.as_mut() {
                        link.outbox.records.push(record.clone());
                    }
                    continue;
                }
                outputs.push(output);
            }
        }
        for output in outputs {
            match output {
                Output::Broadcast(message) => {
                    if let ChatServerMessage::Message(chat) = &message {
                        metrics::counter!("directo_chat_messages_total").increment(1);
                        self.figures.message(stream, &chat.from.id);
                    }
                    let Some(text) = serialize(&message) else {
                        continue;
                    };
                    let users: Vec<String> = self
                        .members
                        .iter()
                        .filter(|(_, m)| m.stream == stream && !matches!(m.sink, Sink::Remote(_)))
                        .map(|(u, _)| u.clone())
                        .collect();
                    for user in users {
                        self.deliver(&user, &text);
                    }
                    if authority && let Some(link) = self.link.as_mut() {
                        link.outbox.deliver.push(Delivery::All {
                            text: text.to_string(),
                        });
                    }
                }
                Output::Send { to, message } => {
                    if let Some(text) = serialize(&message) {
                        self.deliver(&to, &text);
                    }
                }
                Output::Disconnect { user } => {
                    if let Some(member) = self.members.remove(&user) {
                        self.close_sink(&user, member.sink);
                    }
                }
                Output::Persist(_) => {}
            }
        }
        if authority && let Some(link) = self.link.as_mut() {
            link.flush(stream, false);
        }
    }

    pub(super) fn on_engine(&mut self, msg: ChatIn, now: Instant) {
        match msg {
            ChatIn::Open {
                session,
                stream,
                name,
                role,
                origin,
            } => {
                let who = Joiner {
                    user: &session,
                    stream: &stream,
                    name: &name,
                    role: role_of(role),
                    origin: origin.as_deref(),
                };
                if let Err(code) = self.join(who, Sink::Engine, now) {
                    let error = ChatServerMessage::Error {
                        code,
                        message: "you cannot join this chat".to_owned(),
                    };
                    if let Some(text) = serialize(&error) {
                        let _ = self.to_engine.try_send(ChatOut::Send {
                            session: session.clone(),
                            text,
                        });
                    }
                    if code == ChatErrorCode::Banned {
                        let _ = self.to_engine.try_send(ChatOut::Disconnect { session });
                    }
                }
            }
            ChatIn::Message { session, text } => self.message(&session, &text, now),
            ChatIn::Closed { session } => self.leave(&session, now),
        }
    }

    pub(super) fn on_command(&mut self, cmd: Command, now: Instant) {
        match cmd {
            Command::Join {
                user,
                stream,
                name,
                role,
                origin,
                reply,
            } => {
                let member = WsMember::new();
                let who = Joiner {
                    user: &user,
                    stream: &stream,
                    name: &name,
                    role,
                    origin: origin.as_deref(),
                };
                let result = self
                    .join(who, Sink::Ws(Arc::clone(&member)), now)
                    .map(|()| member);
                let _ = reply.send(result);
            }
            Command::Message { user, text } => self.message(&user, &text, now),
            Command::Leave { user } => self.leave(&user, now),
            Command::Stats { stream, reply } => {
                let _ = reply.send(self.figures.stats(&stream));
            }
            Command::Admin { stream, text } => {
                if self.forward_admin(&stream, &text) {
                    return;
                }
                if let Some(open) = self.rooms.open(&stream, now) {
                    // Not a member: the admin API is not in the audience, and a member would
                    // keep the room open for ever.
                    open.room
                        .handle_raw_as_moderator(ADMIN_USER, "Admin", text.as_bytes(), now);
                }
                self.drain(&stream);
            }
            Command::IsBanned {
                stream,
                name,
                origin,
                reply,
            } => {
                let banned = self.rooms.open(&stream, now).is_some_and(|open| {
                    open.room
                        .is_banned("", name.as_deref().unwrap_or(""), origin.as_deref())
                });
                let _ = reply.send(banned);
            }
            Command::Link(command) => self.on_link(command, now),
        }
    }

    /// The engine published a new stream snapshot.
    pub(super) fn on_streams(&mut self, snapshot: Arc<Vec<StreamInfo>>, now: Instant) {
        for stream in self.rooms.follow(snapshot, now) {
            self.drain(&stream);
        }
    }

    pub(super) fn next_timeout(&self) -> Option<Instant> {
        let sweep = (self.rooms.len() > 0).then_some(self.next_sweep);
        let pending = self.link.as_ref().and_then(Link::next_timeout);
        [self.rooms.next_timeout(), sweep, pending]
            .into_iter()
            .flatten()
            .min()
    }

    pub(super) fn on_timeout(&mut self, now: Instant) {
        self.expire_pending(now);
        for stream in self.rooms.due(now) {
            if let Some(open) = self.rooms.peek_mut(&stream) {
                open.room.handle_timeout(now);
            }
            self.drain(&stream);
        }
        if now >= self.next_sweep {
            self.next_sweep = now + SWEEP_INTERVAL;
            self.sweep(now);
        }
    }

    /// Let go of the rooms of ended streams. A data-channel member of a stream the engine
    /// has not had for the linger cannot have a session any more: its leave was lost (the
    /// engine never waits on the chat thread, and drops what a full channel cannot take), so
    /// it is taken out here rather than holding the room open for ever.
    fn sweep(&mut self, now: Instant) {
        for stream in self.rooms.gone(now) {
            let stale: Vec<String> = self
                .members
                .iter()
                .filter(|(_, m)| m.stream == stream && matches!(m.sink, Sink::Engine))
                .map(|(user, _)| user.clone())
                .collect();
            if !stale.is_empty() {
                tracing::debug!(%stream, members = stale.len(), "chat members of an ended stream's sessions removed");
            }
            for user in stale {
                self.members.remove(&user);
                if let Some(open) = self.rooms.peek_mut(&stream) {
                    open.room.leave(&user, now);
                }
                self.forward_leave(&stream, &user);
            }
            self.drain(&stream);
        }
        for stream in self.rooms.release_idle(now) {
            self.figures.room_closed(&stream, now);
        }
        metrics::gauge!("directo_chat_rooms").set(self.rooms.len() as f64);
    }
}

fn serialize(message: &ChatServerMessage) -> Option<Arc<str>> {
    serde_json::to_string(message).ok().map(Arc::from)
}
