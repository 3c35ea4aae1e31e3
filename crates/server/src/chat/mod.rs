//! The chat service: one thread owning every stream's [`Room`] and its log, reached by the
//! media engine (members on WebRTC data channels) and by `/ws` connections (members without
//! WebRTC, such as a moderator's dashboard or a bot).
//!
//! Every event is appended to the stream's log before it is delivered. A message for many
//! members is serialized once and shared. Each member has a bounded queue: a slow member loses
//! its oldest chat (counted), never anyone else's. The media path is never waited on: the
//! engine's channel is offered messages with `try_send`.

use directo_chat::{ChatLog, Durability, MEMBER_QUEUE_CAPACITY, MemberQueue, Output, Room};
use directo_media::{ChatIn, ChatOut, ChatRole as MediaRole, ChatService};
use signaling_proto::{ChatErrorCode, ChatRole, ChatServerMessage};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime};
use tokio::sync::{Notify, mpsc, oneshot};

/// The outgoing queue of one `/ws` chat member.
#[derive(Debug)]
pub struct WsMember {
    queue: Mutex<MemberQueue<Arc<str>>>,
    notify: Notify,
    closed: AtomicBool,
}

impl WsMember {
    fn new() -> Arc<Self> {
        Arc::new(WsMember {
            queue: Mutex::new(MemberQueue::new(MEMBER_QUEUE_CAPACITY)),
            notify: Notify::new(),
            closed: AtomicBool::new(false),
        })
    }

    fn push(&self, text: Arc<str>) {
        if let Ok(mut queue) = self.queue.lock() {
            queue.push(text);
        }
        self.notify.notify_one();
    }

    fn close(&self) {
        self.closed.store(true, Ordering::Release);
        self.notify.notify_one();
    }

    /// The next message for this member; `None` once the chat closed it (a ban).
    pub async fn next(&self) -> Option<Arc<str>> {
        loop {
            if let Some(text) = self.queue.lock().ok().and_then(|mut q| q.pop()) {
                return Some(text);
            }
            if self.closed.load(Ordering::Acquire) {
                return None;
            }
            self.notify.notified().await;
        }
    }
}

enum Sink {
    /// A WebRTC data channel, reached through the media engine by session id.
    Engine,
    /// A `/ws` connection.
    Ws(Arc<WsMember>),
}

struct Member {
    stream: String,
    sink: Sink,
}

/// Who joins a room.
struct Joiner<'a> {
    user: &'a str,
    stream: &'a str,
    name: &'a str,
    role: ChatRole,
    origin: Option<&'a str>,
}

enum Command {
    Join {
        user: String,
        stream: String,
        name: String,
        role: ChatRole,
        origin: Option<String>,
        reply: oneshot::Sender<Result<Arc<WsMember>, ChatErrorCode>>,
    },
    Message {
        user: String,
        text: String,
    },
    Leave {
        user: String,
    },
    Stats {
        stream: String,
        reply: oneshot::Sender<ChatStats>,
    },
    Admin {
        stream: String,
        text: String,
    },
    IsBanned {
        stream: String,
        name: Option<String>,
        origin: Option<String>,
        reply: oneshot::Sender<bool>,
    },
}

/// A stream's chat figures for the stats API.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct ChatStats {
    /// Chat messages sent since the server started.
    pub chat_messages: u64,
    /// Distinct members who sent at least one message.
    pub chatters: usize,
}

/// The member id the admin API moderates as.
const ADMIN_USER: &str = "admin-api";

/// A handle to the chat service for `/ws` connections and HTTP handlers.
#[derive(Clone)]
pub struct ChatHandle {
    commands: mpsc::Sender<Command>,
    data_dir: PathBuf,
    /// Chat messages dropped because the engine's channel was full.
    pub engine_dropped: Arc<AtomicU64>,
}

impl ChatHandle {
    /// Join `stream`'s chat as a `/ws` member; returns the member's queue.
    pub async fn join(
        &self,
        user: &str,
        stream: &str,
        name: &str,
        role: ChatRole,
        origin: Option<String>,
    ) -> Result<Arc<WsMember>, ChatErrorCode> {
        let (reply, rx) = oneshot::channel();
        self.commands
            .send(Command::Join {
                user: user.to_owned(),
                stream: stream.to_owned(),
                name: name.to_owned(),
                role,
                origin,
                reply,
            })
            .await
            .map_err(|_| ChatErrorCode::Internal)?;
        rx.await.map_err(|_| ChatErrorCode::Internal)?
    }

    /// A raw chat message from a `/ws` member.
    pub async fn message(&self, user: &str, text: String) {
        let _ = self
            .commands
            .send(Command::Message {
                user: user.to_owned(),
                text,
            })
            .await;
    }

    /// A `/ws` member left.
    pub async fn leave(&self, user: &str) {
        let _ = self
            .commands
            .send(Command::Leave {
                user: user.to_owned(),
            })
            .await;
    }

    /// The stream's chat figures.
    pub async fn stats(&self, stream: &str) -> ChatStats {
        let (reply, rx) = oneshot::channel();
        let sent = self
            .commands
            .send(Command::Stats {
                stream: stream.to_owned(),
                reply,
            })
            .await;
        if sent.is_err() {
            return ChatStats::default();
        }
        rx.await.unwrap_or_default()
    }

    /// Run a moderation message (e.g. `chat.delete`) on `stream` as the admin API.
    pub async fn admin(&self, stream: &str, text: String) {
        let _ = self
            .commands
            .send(Command::Admin {
                stream: stream.to_owned(),
                text,
            })
            .await;
    }

    /// Whether `stream` banned this name or origin (so a banned user cannot rejoin).
    pub async fn is_banned(&self, stream: &str, name: Option<&str>, origin: Option<&str>) -> bool {
        let (reply, rx) = oneshot::channel();
        let sent = self
            .commands
            .send(Command::IsBanned {
                stream: stream.to_owned(),
                name: name.map(str::to_owned),
                origin: origin.map(str::to_owned),
                reply,
            })
            .await;
        sent.is_ok() && rx.await.unwrap_or(false)
    }

    /// The stream's chat log for export (read from disk).
    pub async fn export(
        &self,
        stream: &str,
    ) -> Result<Vec<signaling_proto::ExportedChatMessage>, String> {
        let dir = self.data_dir.clone();
        let stream = stream.to_owned();
        tokio::task::spawn_blocking(move || ChatLog::export(&dir, &stream))
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())
    }
}

struct Hub {
    stats: HashMap<String, (u64, std::collections::HashSet<String>)>,
    data_dir: PathBuf,
    rooms: HashMap<String, (Room, ChatLog)>,
    members: HashMap<String, Member>,
    to_engine: mpsc::Sender<ChatOut>,
    engine_dropped: Arc<AtomicU64>,
}

fn role_of(role: MediaRole) -> ChatRole {
    match role {
        MediaRole::Presenter => ChatRole::Presenter,
        MediaRole::Viewer => ChatRole::Viewer,
        MediaRole::Moderator => ChatRole::Moderator,
    }
}

impl Hub {
    fn room(&mut self, stream: &str, now: Instant) -> Option<&mut (Room, ChatLog)> {
        if !self.rooms.contains_key(stream) {
            match ChatLog::open(&self.data_dir, stream, Durability::Flush) {
                Ok((log, records)) => {
                    let room = Room::restore(records, now, SystemTime::now());
                    self.rooms.insert(stream.to_owned(), (room, log));
                }
                Err(e) => {
                    tracing::error!(%stream, error = %e, "cannot open the chat log");
                    return None;
                }
            }
        }
        self.rooms.get_mut(stream)
    }

    fn join(&mut self, who: Joiner<'_>, sink: Sink, now: Instant) -> Result<(), ChatErrorCode> {
        let Joiner {
            user,
            stream,
            name,
            role,
            origin,
        } = who;
        let (room, _) = self.room(stream, now).ok_or(ChatErrorCode::Internal)?;
        room.join(user, name, role, origin, now)
            .map_err(|e| e.code())?;
        self.members.insert(
            user.to_owned(),
            Member {
                stream: stream.to_owned(),
                sink,
            },
        );
        self.drain(stream);
        Ok(())
    }

    fn message(&mut self, user: &str, text: &str, now: Instant) {
        let Some(stream) = self.members.get(user).map(|m| m.stream.clone()) else {
            return;
        };
        if let Some((room, _)) = self.rooms.get_mut(&stream) {
            room.handle_raw(user, text.as_bytes(), now);
        }
        self.drain(&stream);
    }

    fn leave(&mut self, user: &str, now: Instant) {
        let Some(member) = self.members.remove(user) else {
            return;
        };
        if let Some((room, _)) = self.rooms.get_mut(&member.stream) {
            room.leave(user, now);
        }
        self.drain(&member.stream);
    }

    fn deliver(&self, user: &str, text: &Arc<str>) {
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
            None => {}
        }
    }

    /// Apply everything the room emitted: persist first, then deliver.
    fn drain(&mut self, stream: &str) {
        let mut outputs = Vec::new();
        if let Some((room, log)) = self.rooms.get_mut(stream) {
            while let Some(output) = room.poll_output() {
                if let Output::Persist(record) = &output {
                    if let Err(e) = log.append(record) {
                        // Not on disk means not delivered: a restart would not know it.
                        tracing::error!(%stream, error = %e, "chat log append failed; dropping the event");
                        outputs.clear();
                        break;
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
                        let entry = self.stats.entry(stream.to_owned()).or_default();
                        entry.0 += 1;
                        entry.1.insert(chat.from.id.clone());
                    }
                    let Some(text) = serialize(&message) else {
                        continue;
                    };
                    let users: Vec<&String> = self
                        .members
                        .iter()
                        .filter(|(_, m)| m.stream == stream)
                        .map(|(u, _)| u)
                        .collect();
                    for user in users {
                        self.deliver(user, &text);
                    }
                }
                Output::Send { to, message } => {
                    if let Some(text) = serialize(&message) {
                        self.deliver(&to, &text);
                    }
                }
                Output::Disconnect { user } => {
                    if let Some(member) = self.members.remove(&user) {
                        match member.sink {
                            Sink::Engine => {
                                let _ = self.to_engine.try_send(ChatOut::Disconnect {
                                    session: user.clone(),
                                });
                            }
                            Sink::Ws(ws) => ws.close(),
                        }
                    }
                }
                Output::Persist(_) => {}
            }
        }
    }

    fn on_engine(&mut self, msg: ChatIn, now: Instant) {
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

    fn on_command(&mut self, cmd: Command, now: Instant) {
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
                let stats = self
                    .stats
                    .get(&stream)
                    .map(|(messages, chatters)| ChatStats {
                        chat_messages: *messages,
                        chatters: chatters.len(),
                    })
                    .unwrap_or_default();
                let _ = reply.send(stats);
            }
            Command::Admin { stream, text } => {
                if let Some((room, _)) = self.room(&stream, now) {
                    if !room.is_member(ADMIN_USER) {
                        let _ = room.join(ADMIN_USER, "Admin", ChatRole::Moderator, None, now);
                    }
                    room.handle_raw(ADMIN_USER, text.as_bytes(), now);
                }
                self.drain(&stream);
            }
            Command::IsBanned {
                stream,
                name,
                origin,
                reply,
            } => {
                let banned = self.room(&stream, now).is_some_and(|(room, _)| {
                    room.is_banned("", name.as_deref().unwrap_or(""), origin.as_deref())
                });
                let _ = reply.send(banned);
            }
        }
    }

    fn next_timeout(&self) -> Option<Instant> {
        self.rooms
            .values()
            .filter_map(|(r, _)| r.poll_timeout())
            .min()
    }

    fn on_timeout(&mut self, now: Instant) {
        let due: Vec<String> = self
            .rooms
            .iter()
            .filter(|(_, (r, _))| r.poll_timeout().is_some_and(|t| t <= now))
            .map(|(s, _)| s.clone())
            .collect();
        for stream in due {
            if let Some((room, _)) = self.rooms.get_mut(&stream) {
                room.handle_timeout(now);
            }
            self.drain(&stream);
        }
    }
}

fn serialize(message: &ChatServerMessage) -> Option<Arc<str>> {
    serde_json::to_string(message).ok().map(Arc::from)
}

/// Start the chat service on its own thread, serving the engine's chat channels.
pub fn start(data_dir: PathBuf, service: ChatService) -> std::io::Result<ChatHandle> {
    let (commands_tx, mut commands) = mpsc::channel::<Command>(4096);
    let engine_dropped = Arc::new(AtomicU64::new(0));
    let handle = ChatHandle {
        commands: commands_tx,
        data_dir: data_dir.clone(),
        engine_dropped: Arc::clone(&engine_dropped),
    };
    let ChatService {
        mut from_engine,
        to_engine,
    } = service;
    std::thread::Builder::new()
        .name("directo-chat".into())
        .spawn(move || {
            crate::priority::deprioritize_current_thread();
            let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                tracing::error!("cannot start the chat runtime");
                return;
            };
            let mut hub = Hub {
                stats: HashMap::new(),
                data_dir,
                rooms: HashMap::new(),
                members: HashMap::new(),
                to_engine,
                engine_dropped,
            };
            runtime.block_on(async move {
                loop {
                    let timeout = hub.next_timeout();
                    let sleep = async {
                        match timeout {
                            Some(t) => tokio::time::sleep_until(t.into()).await,
                            None => std::future::pending().await,
                        }
                    };
                    tokio::select! {
                        msg = from_engine.recv() => match msg {
                            Some(msg) => hub.on_engine(msg, Instant::now()),
                            None => break,
                        },
                        cmd = commands.recv() => match cmd {
                            Some(cmd) => hub.on_command(cmd, Instant::now()),
                            None => break,
                        },
                        _ = sleep => hub.on_timeout(Instant::now()),
                    }
                }
            });
        })?;
    Ok(handle)
}
