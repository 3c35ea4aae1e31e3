//! The media engine's side of chat: every peer's `chat` data channel, bridged to a chat
//! service running elsewhere (its own task) through two bounded channels.
//!
//! The engine never waits on chat: inbound messages are offered with `try_send` and counted
//! when the chat service is behind; outbound messages to a member whose SCTP send buffer is
//! over [`MAX_CHAT_BUFFERED`] are dropped and counted, so one slow member never stalls others.

use std::sync::Arc;
use tokio::sync::mpsc;

/// The data channel label chat rides on.
pub const CHAT_LABEL: &str = "chat";
/// Outstanding bytes on a member's chat channel above which new chat is dropped for it.
pub const MAX_CHAT_BUFFERED: usize = 256 * 1024;

/// A peer's role in the chat.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChatRole {
    /// The stream's publisher.
    Presenter,
    /// A viewer.
    Viewer,
    /// A viewer who presented the moderator key.
    Moderator,
}

/// Who a peer is, as the signaling request said.
#[derive(Debug, Clone, Default)]
pub struct Identity {
    /// The display name given when joining (validated by the server).
    pub name: Option<String>,
    /// Whether the peer presented the moderator key.
    pub moderator: bool,
    /// Where the request came from (the client's IP), so a ban also refuses the same origin.
    pub origin: Option<String>,
    /// Another node of a cluster pulling the stream to relay it (not an audience member).
    pub relay: bool,
}

/// What the engine tells the chat service.
#[derive(Debug)]
pub enum ChatIn {
    /// A peer's chat channel opened.
    Open {
        /// The peer's session id (its member id).
        session: String,
        /// The stream.
        stream: String,
        /// The display name.
        name: String,
        /// The role.
        role: ChatRole,
        /// Where the peer's signaling came from.
        origin: Option<String>,
    },
    /// A text message arrived on a peer's chat channel.
    Message {
        /// The peer's session id.
        session: String,
        /// The raw text.
        text: String,
    },
    /// A peer's chat channel or session closed.
    Closed {
        /// The peer's session id.
        session: String,
    },
}

/// What the chat service asks the engine to do.
#[derive(Debug)]
pub enum ChatOut {
    /// Send one text message on a peer's chat channel.
    Send {
        /// The peer's session id.
        session: String,
        /// The JSON text, shared by every recipient.
        text: Arc<str>,
    },
    /// End a peer's session, media and chat (a ban).
    Disconnect {
        /// The peer's session id.
        session: String,
    },
}

/// The engine's ends of the two chat channels.
pub struct ChatPort {
    /// Messages to the chat service.
    pub to_chat: mpsc::Sender<ChatIn>,
    /// Messages from the chat service.
    pub from_chat: mpsc::Receiver<ChatOut>,
}

/// The chat service's ends of the two channels.
pub struct ChatService {
    /// Messages from the engine.
    pub from_engine: mpsc::Receiver<ChatIn>,
    /// Messages to the engine.
    pub to_engine: mpsc::Sender<ChatOut>,
}

/// A connected pair of chat channels, each bounded to `capacity` messages.
pub fn chat_channels(capacity: usize) -> (ChatPort, ChatService) {
    let (to_chat, from_engine) = mpsc::channel(capacity);
    let (to_engine, from_chat) = mpsc::channel(capacity);
    (
        ChatPort { to_chat, from_chat },
        ChatService {
            from_engine,
            to_engine,
        },
    )
}
