//! The chat service: one thread owning every open stream's chat room and its log ([`hub`]),
//! reached by the media engine (members on WebRTC data channels) and by `/ws` connections
//! (members without WebRTC, such as a moderator's dashboard or a bot), and following the
//! engine's stream snapshot, so members hear when their stream goes live or offline and how
//! many watch it.
//!
//! Every event is appended to the stream's log before it is delivered. A message for many
//! members is serialized once and shared. Each member has a bounded queue: a slow member loses
//! its oldest chat (counted), never anyone else's. The media path is never waited on: the
//! engine's channel is offered messages with `try_send`. A room whose stream has ended is let
//! go with its log file ([`rooms`]) and opened again from the log when the stream is used
//! again.

mod figures;
mod hub;
mod link;
mod rooms;
pub(crate) mod wire;
mod ws_member;

use directo_chat::ChatLog;
use directo_media::{ChatService, EngineHandle};
use signaling_proto::{ChatErrorCode, ChatRole};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Instant;
use tokio::sync::{mpsc, oneshot};

pub use figures::ChatStats;
pub use ws_member::WsMember;

use hub::Hub;

/// What `/ws` connections and HTTP handlers ask the chat thread.
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
    /// From this node's cluster side (`cluster/chat.rs`).
    Link(wire::LinkCommand),
}

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

    /// Hands the chat thread something from this node's cluster side.
    pub(crate) async fn link(&self, command: wire::LinkCommand) -> Result<(), ChatErrorCode> {
        self.commands
            .send(Command::Link(command))
            .await
            .map_err(|_| ChatErrorCode::Internal)
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

/// Start the chat service on its own thread, serving the engine's chat channels and
/// following `engine`'s streams.
pub fn start(
    data_dir: PathBuf,
    service: ChatService,
    engine: &EngineHandle,
) -> std::io::Result<ChatHandle> {
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
    let mut streams = engine.watch_streams();
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
            let snapshot = Arc::clone(&streams.borrow_and_update());
            let mut hub = Hub::new(data_dir, snapshot, to_engine, engine_dropped);
            runtime.block_on(async move {
                // Until the engine stops publishing (its thread ended at shutdown).
                let mut following = true;
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
                        changed = streams.changed(), if following => match changed {
                            Ok(()) => {
                                let snapshot = Arc::clone(&streams.borrow_and_update());
                                hub.on_streams(snapshot, Instant::now());
                            }
                            Err(_) => following = false,
                        },
                        _ = sleep => hub.on_timeout(Instant::now()),
                    }
                }
            });
        })?;
    Ok(handle)
}
