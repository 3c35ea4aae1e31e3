//! A chat member as tests drive one: over a peer's `chat` data channel (a [`crate::Viewer`]
//! or [`crate::Publisher`] built with `chat: true`), or over `/ws` without WebRTC.
//!
//! Everything the server sends is kept in arrival order, parsed as `ChatServerMessage`;
//! frames that are not chat (signaling on `/ws`, or a malformed message) are kept apart, so
//! a test can tell a wrong shape from a missing message. Reading never consumes: a test
//! takes [`ChatMember::len`] before it acts and waits for what arrives after that index,
//! while "did everyone see X" looks at the whole log. A member costs one task and a `Vec`,
//! so hundreds are cheap.

use crate::error::{ClientError, Result};
use futures::stream::{SplitSink, SplitStream};
use futures::{SinkExt, StreamExt};
use signaling_proto::{
    ChatClientMessage, ChatErrorCode, ChatMessage, ChatServerMessage, ClientMessage, MessageId,
    Role, ServerMessage,
};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream, connect_async};
use webrtc::data_channel::{DataChannel, DataChannelEvent};

/// The data channel label Directo's chat rides on.
pub const CHAT_LABEL: &str = "chat";

type WsSink = SplitSink<WebSocketStream<MaybeTlsStream<TcpStream>>, Message>;
type WsSource = SplitStream<WebSocketStream<MaybeTlsStream<TcpStream>>>;

/// Where a member's link to the chat is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChatLinkState {
    /// The data channel is not open yet.
    Connecting,
    /// Messages flow.
    Open,
    /// The channel or socket closed (by either side).
    Closed,
}

/// The `chat.history` a member got when it joined.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatHistory {
    /// The messages, oldest first.
    pub messages: Vec<ChatMessage>,
    /// The pinned message, if any.
    pub pinned: Option<ChatMessage>,
    /// The slow-mode interval in seconds; 0 when off.
    pub slow_seconds: u32,
}

/// What the reader task writes and the member reads.
#[derive(Default)]
struct Received {
    chat: Vec<ChatServerMessage>,
    other: Vec<String>,
}

struct Inbox {
    received: Mutex<Received>,
    /// Bumped on every arrival, so waiters wake without polling.
    arrivals: watch::Sender<u64>,
    link: watch::Sender<ChatLinkState>,
}

impl Inbox {
    fn new(link: ChatLinkState) -> Arc<Self> {
        Arc::new(Inbox {
            received: Mutex::new(Received::default()),
            arrivals: watch::channel(0).0,
            link: watch::channel(link).0,
        })
    }

    fn received(&self) -> MutexGuard<'_, Received> {
        // A reader that panicked mid-push leaves a still-usable log behind.
        self.received.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn push_text(&self, text: &str) {
        match serde_json::from_str::<ChatServerMessage>(text) {
            Ok(message) => self.received().chat.push(message),
            Err(_) => self.received().other.push(text.to_owned()),
        }
        self.arrivals.send_modify(|n| *n += 1);
    }

    fn set_link(&self, state: ChatLinkState) {
        self.link.send_if_modified(|s| {
            // Closed is final: a late event must not reopen it.
            let changed = *s != state && *s != ChatLinkState::Closed;
            if changed {
                *s = state;
            }
            changed
        });
        // Waiters for a message give up once the link is closed; wake them to look.
        self.arrivals.send_modify(|n| *n += 1);
    }
}

/// How a member sends.
enum Outbox {
    DataChannel(Arc<dyn DataChannel>),
    Ws(tokio::sync::Mutex<WsSink>),
}

/// One member of a stream's chat.
pub struct ChatMember {
    inbox: Arc<Inbox>,
    outbox: Outbox,
    reader: JoinHandle<()>,
}

impl ChatMember {
    /// Wraps a `chat` data channel this side created (before its offer); reads it from now on.
    pub(crate) fn from_data_channel(channel: Arc<dyn DataChannel>) -> Self {
        let inbox = Inbox::new(ChatLinkState::Connecting);
        let reader = tokio::spawn(read_data_channel(Arc::clone(&channel), Arc::clone(&inbox)));
        ChatMember {
            inbox,
            outbox: Outbox::DataChannel(channel),
            reader,
        }
    }

    /// Joins `stream`'s chat over `/ws` (`ws://host/ws`) as a viewer, without WebRTC: a
    /// `join` with no SDP. `key` is a moderator key or token (making the member a moderator),
    /// or a viewer token. Returns once the server answered `joined`; a refusal is a
    /// [`ClientError::Protocol`] carrying the server's error.
    pub async fn join_ws(
        url: &str,
        stream: &str,
        name: Option<&str>,
        key: Option<&str>,
    ) -> Result<Self> {
        let (socket, _) = connect_async(url).await?;
        let (mut sink, mut source) = socket.split();
        let join = ClientMessage::Join {
            stream: stream.to_owned(),
            role: Role::Viewer,
            key: key.map(str::to_owned),
            name: name.map(str::to_owned),
            sdp: None,
        };
        let text = serde_json::to_string(&join)
            .map_err(|e| ClientError::Protocol(format!("cannot encode {join:?}: {e}")))?;
        sink.send(Message::text(text)).await?;

        let inbox = Inbox::new(ChatLinkState::Open);
        tokio::time::timeout(WS_JOIN_TIMEOUT, await_joined(&mut source, &inbox))
            .await
            .map_err(|_| {
                ClientError::timeout("`joined` after a chat join on /ws", WS_JOIN_TIMEOUT)
            })??;
        let reader = tokio::spawn(read_ws(source, Arc::clone(&inbox)));
        Ok(ChatMember {
            inbox,
            outbox: Outbox::Ws(tokio::sync::Mutex::new(sink)),
            reader,
        })
    }

    /// Where the link is now.
    pub fn link_state(&self) -> ChatLinkState {
        *self.inbox.link.borrow()
    }

    /// Waits until the data channel is open (at once for a `/ws` member).
    pub async fn wait_open(&self, timeout: Duration) -> Result<()> {
        match self
            .wait_link(timeout, |s| s != ChatLinkState::Connecting)
            .await?
        {
            ChatLinkState::Open => Ok(()),
            state => Err(ClientError::Protocol(format!(
                "the chat link ended as {state:?} instead of opening"
            ))),
        }
    }

    /// Waits until the server closed the channel or socket (or it closed for another reason).
    pub async fn wait_closed(&self, timeout: Duration) -> Result<()> {
        self.wait_link(timeout, |s| s == ChatLinkState::Closed)
            .await
            .map(|_| ())
    }

    async fn wait_link(
        &self,
        timeout: Duration,
        done: impl Fn(ChatLinkState) -> bool,
    ) -> Result<ChatLinkState> {
        let mut link = self.inbox.link.subscribe();
        match tokio::time::timeout(timeout, link.wait_for(|s| done(*s))).await {
            Ok(Ok(state)) => Ok(*state),
            Ok(Err(_)) => Err(ClientError::Protocol("the chat member is gone".into())),
            Err(_) => Err(ClientError::timeout(
                format!("the chat link (now {:?})", self.link_state()),
                timeout,
            )),
        }
    }

    /// Waits for the `chat.history` the server sends when a member joins: the sign that the
    /// server counts this member in.
    pub async fn wait_history(&self, timeout: Duration) -> Result<ChatHistory> {
        self.wait_for("chat.history", timeout, |m| match m {
            ChatServerMessage::History {
                messages,
                pinned,
                slow_seconds,
            } => Some(ChatHistory {
                messages: messages.clone(),
                pinned: pinned.clone(),
                slow_seconds: *slow_seconds,
            }),
            _ => None,
        })
        .await
    }

    /// Sends one client message as JSON.
    pub async fn send(&self, message: &ChatClientMessage) -> Result<()> {
        let text = serde_json::to_string(message)
            .map_err(|e| ClientError::Protocol(format!("cannot encode {message:?}: {e}")))?;
        self.send_raw(&text).await
    }

    /// Sends any text, valid or not (for tests of refusals).
    pub async fn send_raw(&self, text: &str) -> Result<()> {
        match &self.outbox {
            Outbox::DataChannel(channel) => channel.send_text(text).await?,
            Outbox::Ws(sink) => sink.lock().await.send(Message::text(text)).await?,
        }
        Ok(())
    }

    /// Posts `text` (`chat.send`).
    pub async fn say(&self, text: &str) -> Result<()> {
        self.send(&ChatClientMessage::Send {
            text: text.to_owned(),
            reply_to: None,
        })
        .await
    }

    /// Posts `text` as a reply to message `to`.
    pub async fn reply(&self, text: &str, to: &MessageId) -> Result<()> {
        self.send(&ChatClientMessage::Send {
            text: text.to_owned(),
            reply_to: Some(to.clone()),
        })
        .await
    }

    /// How many chat messages have arrived: the index later arrivals start at.
    pub fn len(&self) -> usize {
        self.inbox.received().chat.len()
    }

    /// Whether no chat message has arrived yet.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every chat message received, in arrival order.
    pub fn received(&self) -> Vec<ChatServerMessage> {
        self.inbox.received().chat.clone()
    }

    /// The `chat.message`s received live (not those in the history), in arrival order.
    pub fn messages(&self) -> Vec<ChatMessage> {
        self.inbox
            .received()
            .chat
            .iter()
            .filter_map(|m| match m {
                ChatServerMessage::Message(message) => Some(message.clone()),
                _ => None,
            })
            .collect()
    }

    /// The last viewer count a `presence` announced.
    pub fn presence(&self) -> Option<usize> {
        self.inbox
            .received()
            .chat
            .iter()
            .rev()
            .find_map(|m| match m {
                ChatServerMessage::Presence { viewers, .. } => Some(*viewers),
                _ => None,
            })
    }

    /// The last number of media viewers a `presence` announced.
    pub fn watching(&self) -> Option<usize> {
        self.inbox
            .received()
            .chat
            .iter()
            .rev()
            .find_map(|m| match m {
                ChatServerMessage::Presence { watching, .. } => *watching,
                _ => None,
            })
    }

    /// Waits for a `stream.status` saying `live` at index `from` or later; returns its
    /// tracks' kinds and whether the stream is recorded.
    pub async fn wait_stream_status_from(
        &self,
        from: usize,
        live: bool,
        timeout: Duration,
    ) -> Result<(Vec<String>, bool)> {
        let what = format!("a `stream.status` saying live: {live}");
        self.wait_for_from(from, &what, timeout, |m| match m {
            ChatServerMessage::StreamStatus {
                live: said,
                tracks,
                recording,
            } if *said == live => {
                Some((tracks.iter().map(|t| t.kind.clone()).collect(), *recording))
            }
            _ => None,
        })
        .await
    }

    /// Frames that did not parse as a chat message (signaling frames on `/ws`).
    pub fn other(&self) -> Vec<String> {
        self.inbox.received().other.clone()
    }

    /// Waits until a chat message for which `pick` returns `Some` has arrived (at any time).
    pub async fn wait_for<T>(
        &self,
        what: &str,
        timeout: Duration,
        pick: impl FnMut(&ChatServerMessage) -> Option<T>,
    ) -> Result<T> {
        self.wait_for_from(0, what, timeout, pick).await
    }

    /// Waits until a chat message at index `from` or later makes `pick` return `Some`.
    pub async fn wait_for_from<T>(
        &self,
        from: usize,
        what: &str,
        timeout: Duration,
        mut pick: impl FnMut(&ChatServerMessage) -> Option<T>,
    ) -> Result<T> {
        let mut arrivals = self.inbox.arrivals.subscribe();
        let deadline = tokio::time::Instant::now() + timeout;
        let mut seen = from;
        loop {
            // Marked before the scan, so an arrival during it wakes the wait below.
            arrivals.mark_unchanged();
            // Read before the scan: the reader stores every message before it marks the
            // link closed, so a link closed now has nothing left that the scan would miss.
            let closed = self.link_state() == ChatLinkState::Closed;
            {
                let received = self.inbox.received();
                for message in received.chat.iter().skip(seen) {
                    if let Some(value) = pick(message) {
                        return Ok(value);
                    }
                }
                seen = seen.max(received.chat.len());
            }
            if closed {
                return Err(ClientError::Protocol(format!(
                    "the chat link closed before {what} arrived; after index {from} came {:?}",
                    self.received().get(from..).unwrap_or_default()
                )));
            }
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if left.is_zero() {
                return Err(ClientError::Timeout {
                    what: format!(
                        "{what}; after index {from} came {:?}",
                        self.received().get(from..).unwrap_or_default()
                    ),
                    after: timeout,
                });
            }
            let changed = tokio::time::timeout(left.min(RESCAN), arrivals.changed()).await;
            if matches!(changed, Ok(Err(_))) {
                return Err(ClientError::Protocol("the chat member is gone".into()));
            }
        }
    }

    /// Waits for the first `error` at index `from` or later; returns its code and message.
    pub async fn wait_error_from(
        &self,
        from: usize,
        timeout: Duration,
    ) -> Result<(ChatErrorCode, String)> {
        self.wait_for_from(from, "an `error` reply", timeout, |m| match m {
            ChatServerMessage::Error { code, message } => Some((*code, message.clone())),
            _ => None,
        })
        .await
    }

    /// Waits for a `chat.message` with exactly `text`; returns it.
    pub async fn wait_message(&self, text: &str, timeout: Duration) -> Result<ChatMessage> {
        self.wait_for(
            &format!("the chat message {text:?}"),
            timeout,
            |m| match m {
                ChatServerMessage::Message(message) if message.text == text => {
                    Some(message.clone())
                }
                _ => None,
            },
        )
        .await
    }

    /// Closes the data channel or the socket.
    pub async fn close(&self) -> Result<()> {
        match &self.outbox {
            Outbox::DataChannel(channel) => channel.close().await?,
            Outbox::Ws(sink) => sink.lock().await.close().await?,
        }
        Ok(())
    }
}

impl Drop for ChatMember {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

/// How long a `/ws` chat join may take to be answered.
const WS_JOIN_TIMEOUT: Duration = Duration::from_secs(20);
/// Waiters also wake this often, whatever else happens.
const RESCAN: Duration = Duration::from_millis(500);

async fn read_data_channel(channel: Arc<dyn DataChannel>, inbox: Arc<Inbox>) {
    while let Some(event) = channel.poll().await {
        match event {
            DataChannelEvent::OnOpen => inbox.set_link(ChatLinkState::Open),
            DataChannelEvent::OnMessage(message) => {
                inbox.push_text(&String::from_utf8_lossy(&message.data));
            }
            DataChannelEvent::OnClose => break,
            _ => {}
        }
    }
    inbox.set_link(ChatLinkState::Closed);
}

/// Reads `/ws` frames up to the join's answer; chat that comes first goes to the inbox.
async fn await_joined(source: &mut WsSource, inbox: &Inbox) -> Result<()> {
    loop {
        let text = match source.next().await {
            Some(Ok(Message::Text(text))) => text.as_str().to_owned(),
            Some(Ok(Message::Close(frame))) => {
                return Err(ClientError::Protocol(format!(
                    "server closed /ws during the chat join: {frame:?}"
                )));
            }
            Some(Ok(_)) => continue,
            Some(Err(e)) => return Err(e.into()),
            None => {
                return Err(ClientError::Protocol(
                    "/ws ended during the chat join".into(),
                ));
            }
        };
        match serde_json::from_str::<ServerMessage>(&text) {
            Ok(ServerMessage::Joined { .. }) => return Ok(()),
            Ok(ServerMessage::Error { code, message }) => {
                return Err(ClientError::Protocol(format!(
                    "chat join refused: {code:?}: {message}"
                )));
            }
            _ => inbox.push_text(&text),
        }
    }
}

async fn read_ws(mut source: WsSource, inbox: Arc<Inbox>) {
    while let Some(Ok(frame)) = source.next().await {
        match frame {
            Message::Text(text) => inbox.push_text(text.as_str()),
            Message::Close(_) => break,
            _ => {}
        }
    }
    inbox.set_link(ChatLinkState::Closed);
}
