//! `GET /ws`: JSON signaling over a WebSocket, one message per text frame.
//!
//! A client joins a stream as publisher or viewer, sends its SDP offer (with the join or after
//! it) and gets the answer; it then hears the stream's events (`live`, `offline`, `viewers`)
//! until it leaves. A new offer on a joined socket replaces the session (a reconnect without a
//! new socket). A malformed or unknown message gets an `error` reply and the socket stays open.
//!
//! On a node of a cluster a publisher's offer first claims the stream's origin, a
//! publisher's `leave` gives it up, and when the node drains every socket is told
//! `server.move` with the node to go to.
//!
//! Stream events come from one broadcast every socket follows; if a socket falls behind it is
//! sent the stream's current state instead of what it missed. Its session's own events
//! (renegotiation offers, errors) come on the session's own bounded channel: none is lost.

use directo_media::{EngineEvent, EngineHandle, Identity, SessionEvent};
use futures::{SinkExt, StreamExt};
use signaling_proto::{ClientMessage, ErrorCode, Role, ServerMessage};
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::mpsc;
use warp::Filter;
use warp::filters::ws::{Message, WebSocket};

use crate::auth::Access;
use crate::chat::{ChatHandle, WsMember};
use crate::cluster::ClusterNode;
use crate::cluster::directory::Claimed;
use crate::error::ApiError;
use crate::limits::RateLimiter;
use crate::names::{check_name, check_stream_name};
use signaling_proto::{ChatErrorCode, ChatRole, MoveReason};
use std::sync::Arc;

/// The largest signaling message accepted.
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024;

struct Joined {
    stream: String,
    role: Role,
    identity: Identity,
    session: Option<String>,
    /// The session's own events.
    events: Option<mpsc::Receiver<SessionEvent>>,
}

/// The client's address and the limits its failed credentials count against.
struct CredentialGuard {
    limits: RateLimiter,
    remote: Option<std::net::IpAddr>,
}

struct Connection {
    access: Access,
    guard: CredentialGuard,
    engine: EngineHandle,
    chat: ChatHandle,
    cluster: Option<ClusterNode>,
    origin: Option<String>,
    joined: Option<Joined>,
    /// This socket's chat membership (a join without an SDP offer: chat over `/ws`).
    chat_member: Option<(String, Arc<WsMember>)>,
}

impl Connection {
    /// Handle one client message; returns the replies and whether to close the socket.
    async fn on_message(&mut self, msg: ClientMessage) -> (Vec<ServerMessage>, bool) {
        match msg {
            ClientMessage::Join {
                stream,
                role,
                key,
                name,
                sdp,
            } => match self.join(stream, role, key, name, sdp).await {
                Ok(replies) => (replies, false),
                Err(e) => (vec![ServerMessage::error(e.0.code, e.0.message)], false),
            },
            ClientMessage::Offer { sdp } => match self.offer(sdp).await {
                Ok(replies) => (replies, false),
                Err(e) => (vec![ServerMessage::error(e.0.code, e.0.message)], false),
            },
            ClientMessage::Answer { sdp } => match self.answer(sdp).await {
                Ok(()) => (Vec::new(), false),
                Err(e) => (vec![ServerMessage::error(e.0.code, e.0.message)], false),
            },
            ClientMessage::Leave {} => {
                self.leave(true).await;
                (Vec::new(), true)
            }
        }
    }

    async fn join(
        &mut self,
        stream: String,
        role: Role,
        key: Option<String>,
        name: Option<String>,
        sdp: Option<String>,
    ) -> Result<Vec<ServerMessage>, ApiError> {
        if self.joined.is_some() {
            return Err(ApiError::new(
                ErrorCode::BadRequest,
                "this socket already joined a stream; send `leave` first",
            ));
        }
        check_stream_name(&stream)?;
        let credential = key.as_deref().filter(|k| !k.is_empty());
        if credential.is_some() {
            self.guard.limits.check_credential(self.guard.remote)?;
        }
        let authorized = match role {
            Role::Publisher => self
                .access
                .authorize_publish(&stream, credential)
                .map(|name| (name, false)),
            Role::Viewer => self
                .access
                .authorize_view(&stream, credential)
                .map(|grant| (grant.name, grant.moderator)),
        };
        if credential.is_some()
            && let Err(e) = &authorized
            && e.0.code == ErrorCode::Unauthorized
        {
            self.guard.limits.credential_failed(self.guard.remote);
        }
        let (token_name, moderator) = authorized?;
        let name = match name.as_deref() {
            Some(n) => Some(check_name(n)?),
            None => token_name,
        };
        let identity = Identity {
            name,
            moderator,
            origin: self.origin.clone(),
            relay: false,
        };
        self.joined = Some(Joined {
            stream: stream.clone(),
            role,
            identity,
            session: None,
            events: None,
        });
        let mut replies = Vec::new();
        if let Some(sdp) = sdp {
            replies = self.offer(sdp).await?;
        } else {
            // No WebRTC: this socket is the client's chat connection.
            let user = format!("ws-{}", uuid::Uuid::new_v4().simple());
            let chat_role = match (role, moderator) {
                (Role::Publisher, _) => ChatRole::Presenter,
                (Role::Viewer, true) => ChatRole::Moderator,
                (Role::Viewer, false) => ChatRole::Viewer,
            };
            let name = self
                .joined
                .as_ref()
                .and_then(|j| j.identity.name.clone())
                .unwrap_or_else(|| format!("Guest {}", &user[3..9]));
            let member = self
                .chat
                .join(&user, &stream, &name, chat_role, self.origin.clone())
                .await
                .map_err(|code| {
                    let api = match code {
                        ChatErrorCode::Banned => ErrorCode::Forbidden,
                        ChatErrorCode::InvalidName => ErrorCode::InvalidName,
                        _ => ErrorCode::Internal,
                    };
                    ApiError::new(api, format!("cannot join the chat: {code:?}"))
                })?;
            self.chat_member = Some((user, member));
            replies.push(ServerMessage::Joined {
                session: None,
                stream: stream.clone(),
                role,
            });
        }
        replies.extend(self.stream_state(&stream));
        // Joined a node that is already leaving: it says so at once.
        if self.cluster.as_ref().is_some_and(ClusterNode::is_draining) {
            replies.extend(self.move_notice().await);
        }
        Ok(replies)
    }

    /// What a client following `stream` should know of it now: viewers, and live if it is.
    fn stream_state(&self, stream: &str) -> Vec<ServerMessage> {
        let Some(info) = self.engine.stream(stream) else {
            return Vec::new();
        };
        let mut state = vec![ServerMessage::Viewers {
            count: info.viewers,
        }];
        if info.live {
            state.push(ServerMessage::Live { stream: info });
        }
        state
    }

    async fn offer(&mut self, sdp: String) -> Result<Vec<ServerMessage>, ApiError> {
        let Some(joined) = self.joined.as_mut() else {
            return Err(ApiError::new(
                ErrorCode::BadRequest,
                "send `join` before an offer",
            ));
        };
        if let Some(old) = joined.session.take() {
            // Replaced, not ended: a publisher's recording continues with the new session.
            let _ = self.engine.drop_session(&old).await;
        }
        let identity = joined.identity.clone();
        let answer = match (joined.role, &self.cluster) {
            (Role::Publisher, Some(node)) => {
                let claimed = node.claim_for_publisher(&joined.stream).await?;
                let published = self.engine.publish(&joined.stream, sdp, identity).await;
                if published.is_err() && claimed == Claimed::New {
                    node.release(&joined.stream).await;
                }
                published?
            }
            (Role::Publisher, None) => self.engine.publish(&joined.stream, sdp, identity).await?,
            (Role::Viewer, cluster) => {
                if let Some(node) = cluster {
                    node.prepare_viewer(&joined.stream).await?;
                }
                self.engine.watch(&joined.stream, sdp, identity).await?
            }
        };
        joined.session = Some(answer.session.clone());
        joined.events = Some(answer.events);
        Ok(vec![
            ServerMessage::Joined {
                session: Some(answer.session),
                stream: joined.stream.clone(),
                role: joined.role,
            },
            ServerMessage::Answer { sdp: answer.sdp },
        ])
    }

    async fn answer(&mut self, sdp: String) -> Result<(), ApiError> {
        let session = self
            .joined
            .as_ref()
            .and_then(|j| j.session.clone())
            .ok_or_else(|| {
                ApiError::new(
                    ErrorCode::BadRequest,
                    "no server offer is waiting for an answer",
                )
            })?;
        self.engine.answer(&session, sdp).await?;
        Ok(())
    }

    /// Leave the stream: on the client's word (`deliberate`), or because the socket closed.
    async fn leave(&mut self, deliberate: bool) {
        if let Some((user, _)) = self.chat_member.take() {
            self.chat.leave(&user).await;
        }
        if let Some(joined) = self.joined.take()
            && let Some(session) = joined.session
        {
            let _ = if deliberate {
                self.engine.close(&session).await
            } else {
                self.engine.drop_session(&session).await
            };
            // A publisher that leaves on purpose gives the stream up at once.
            if deliberate
                && joined.role == Role::Publisher
                && let Some(node) = &self.cluster
            {
                node.release(&joined.stream).await;
            }
        }
    }

    /// The node is draining: where this socket's client should go, if it joined a stream
    /// and a node has room.
    async fn move_notice(&self) -> Option<ServerMessage> {
        let (joined, node) = (self.joined.as_ref()?, self.cluster.as_ref()?);
        let url = node.move_target(&joined.stream).await.ok()??;
        Some(ServerMessage::Move {
            url,
            reason: MoveReason::Draining,
        })
    }

    /// The session event as this client hears it.
    fn session_event(&mut self, event: SessionEvent) -> ServerMessage {
        match event {
            SessionEvent::Offer { sdp } => ServerMessage::Offer { sdp },
            SessionEvent::Error { code, message } => ServerMessage::error(code, message),
            SessionEvent::Closed { reason } => {
                if let Some(joined) = self.joined.as_mut() {
                    joined.session = None;
                    joined.events = None;
                }
                ServerMessage::error(ErrorCode::SessionClosed, reason)
            }
        }
    }

    /// The engine event as this client should hear it, if at all.
    fn relay(&self, event: EngineEvent) -> Option<ServerMessage> {
        let joined = self.joined.as_ref()?;
        match event {
            EngineEvent::Live(info) if info.name == joined.stream => {
                Some(ServerMessage::Live { stream: info })
            }
            EngineEvent::Offline { stream } if stream == joined.stream => {
                Some(ServerMessage::Offline { stream })
            }
            EngineEvent::Viewers { stream, count } if stream == joined.stream => {
                Some(ServerMessage::Viewers { count })
            }
            _ => None,
        }
    }
}

async fn send(
    ws: &mut futures::stream::SplitSink<WebSocket, Message>,
    msg: &ServerMessage,
) -> bool {
    match serde_json::to_string(msg) {
        Ok(text) => ws.send(Message::text(text)).await.is_ok(),
        Err(_) => true,
    }
}

/// Whether a JSON text is a chat message (`chat.*` or `user.*`) rather than signaling.
fn is_chat(text: &str) -> bool {
    serde_json::from_str::<serde_json::Value>(text)
        .ok()
        .and_then(|v| v.get("type").and_then(|t| t.as_str()).map(str::to_owned))
        .is_some_and(|t| t.starts_with("chat.") || t.starts_with("user."))
}

/// The next event of the socket's session; pending while it has none to listen to.
async fn next_session_event(joined: Option<&mut Joined>) -> Option<SessionEvent> {
    match joined.and_then(|j| j.events.as_mut()) {
        Some(events) => events.recv().await,
        None => std::future::pending().await,
    }
}

async fn next_chat(member: Option<&Arc<WsMember>>) -> Option<Arc<str>> {
    match member {
        Some(m) => m.next().await,
        None => std::future::pending().await,
    }
}

/// Resolves when the node starts draining; pending on a single node or once drained.
async fn draining(signal: Option<&mut tokio::sync::watch::Receiver<bool>>) {
    let drained = match signal {
        Some(signal) => signal.wait_for(|draining| *draining).await.is_ok(),
        None => false,
    };
    if !drained {
        std::future::pending::<()>().await;
    }
}

async fn run(
    socket: WebSocket,
    access: Access,
    engine: EngineHandle,
    chat: ChatHandle,
    cluster: Option<ClusterNode>,
    guard: CredentialGuard,
) {
    let (mut tx, mut rx) = socket.split();
    let mut events = engine.subscribe();
    let mut drain = cluster.as_ref().map(ClusterNode::drain_signal);
    let origin = guard.remote.map(|ip| ip.to_string());
    let mut conn = Connection {
        access,
        guard,
        engine,
        chat,
        cluster,
        origin,
        joined: None,
        chat_member: None,
    };
    loop {
        tokio::select! {
            () = draining(drain.as_mut()) => {
                // Told once; a client that cannot move stays until the node's deadline.
                drain = None;
                if let Some(notice) = conn.move_notice().await
                    && !send(&mut tx, &notice).await
                {
                    break;
                }
            }
            incoming = rx.next() => {
                let Some(Ok(msg)) = incoming else { break };
                if msg.is_close() {
                    break;
                }
                if msg.is_ping() || msg.is_pong() {
                    continue;
                }
                let Ok(text) = msg.to_str() else {
                    let reply = ServerMessage::error(ErrorCode::BadRequest, "messages are JSON text frames");
                    if !send(&mut tx, &reply).await { break; }
                    continue;
                };
                let (replies, close) = match serde_json::from_str::<ClientMessage>(text) {
                    Ok(m) => conn.on_message(m).await,
                    Err(_) if is_chat(text) => match &conn.chat_member {
                        Some((user, _)) => {
                            conn.chat.message(user, text.to_owned()).await;
                            (Vec::new(), false)
                        }
                        None => (vec![ServerMessage::error(
                            ErrorCode::BadRequest,
                            "chat over /ws needs a `join` without an SDP offer first",
                        )], false),
                    },
                    Err(e) => (vec![ServerMessage::error(
                        ErrorCode::BadRequest,
                        format!("not a signaling message: {e}"),
                    )], false),
                };
                for reply in &replies {
                    if !send(&mut tx, reply).await { break; }
                }
                if close { break; }
            }
            chat_text = next_chat(conn.chat_member.as_ref().map(|(_, m)| m)) => match chat_text {
                Some(text) => {
                    if tx.send(Message::text(text.as_ref())).await.is_err() {
                        break;
                    }
                }
                // The chat closed this member (a ban): close the socket.
                None => break,
            },
            event = next_session_event(conn.joined.as_mut()) => match event {
                Some(event) => {
                    let msg = conn.session_event(event);
                    if !send(&mut tx, &msg).await {
                        break;
                    }
                }
                // The session ended and its channel with it: nothing more will come.
                None => {
                    if let Some(joined) = conn.joined.as_mut() {
                        joined.events = None;
                    }
                }
            },
            event = events.recv() => match event {
                Ok(event) => {
                    if let Some(msg) = conn.relay(event)
                        && !send(&mut tx, &msg).await
                    {
                        break;
                    }
                }
                // Fell behind the stream events: what matters is the state now.
                Err(RecvError::Lagged(_)) => {
                    let state = conn
                        .joined
                        .as_ref()
                        .map(|j| conn.stream_state(&j.stream))
                        .unwrap_or_default();
                    for msg in &state {
                        if !send(&mut tx, msg).await { break; }
                    }
                }
                Err(RecvError::Closed) => break,
            }
        }
    }
    conn.leave(false).await;
    let _ = tx.close().await;
}

/// `GET /ws`.
pub fn routes(
    access: Access,
    engine: EngineHandle,
    chat: ChatHandle,
    cluster: Option<ClusterNode>,
    limits: RateLimiter,
) -> impl Filter<Extract = (warp::reply::Response,), Error = warp::Rejection> + Clone {
    use warp::reply::Reply;
    warp::path!("ws")
        .and(warp::ws())
        .and(crate::limits::client_ip())
        .map(move |ws: warp::ws::Ws, remote: Option<std::net::IpAddr>| {
            let access = access.clone();
            let engine = engine.clone();
            let chat = chat.clone();
            let cluster = cluster.clone();
            let guard = CredentialGuard {
                limits: limits.clone(),
                remote,
            };
            ws.max_message_size(MAX_MESSAGE_BYTES)
                .on_upgrade(move |socket| run(socket, access, engine, chat, cluster, guard))
                .into_response()
        })
}
