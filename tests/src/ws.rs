//! A `/ws` signaling client: typed `signaling-proto` messages, one per text frame.

use crate::error::{ClientError, Result};
use futures::{SinkExt, StreamExt};
use signaling_proto::{ClientMessage, ServerMessage};
use std::time::Duration;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream, connect_async};

/// One WebSocket connection to `/ws`.
pub struct WsClient {
    socket: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

impl WsClient {
    /// Connects to `ws://host:port/ws`.
    pub async fn connect(url: &str) -> Result<Self> {
        let (socket, _) = connect_async(url).await?;
        Ok(WsClient { socket })
    }

    /// Sends a client message as JSON.
    pub async fn send(&mut self, message: &ClientMessage) -> Result<()> {
        let text = serde_json::to_string(message)
            .map_err(|e| ClientError::Protocol(format!("cannot encode {message:?}: {e}")))?;
        self.send_text(&text).await
    }

    /// Sends any text frame (for malformed-input tests).
    pub async fn send_text(&mut self, text: &str) -> Result<()> {
        self.socket.send(Message::text(text)).await?;
        Ok(())
    }

    /// The next server message; fails if the socket closes, a frame is not a valid
    /// `ServerMessage`, or nothing comes within `timeout`.
    pub async fn recv(&mut self, timeout: Duration) -> Result<ServerMessage> {
        let next = tokio::time::timeout(timeout, self.next_text()).await;
        let text = next.map_err(|_| ClientError::timeout("a /ws message", timeout))??;
        serde_json::from_str(&text)
            .map_err(|e| ClientError::Protocol(format!("not a server message: {text}: {e}")))
    }

    /// Reads messages until `pick` returns `Some`; returns it and the messages skipped.
    pub async fn recv_until<T>(
        &mut self,
        timeout: Duration,
        mut pick: impl FnMut(&ServerMessage) -> Option<T>,
    ) -> Result<(T, Vec<ServerMessage>)> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut skipped = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let message = self.recv(left).await.map_err(|e| match e {
                ClientError::Timeout { after, .. } => ClientError::Timeout {
                    what: format!("the expected /ws message (skipped {skipped:?})"),
                    after,
                },
                other => other,
            })?;
            match pick(&message) {
                Some(value) => return Ok((value, skipped)),
                None => skipped.push(message),
            }
        }
    }

    /// Closes the socket politely.
    pub async fn close(mut self) -> Result<()> {
        self.socket.close(None).await?;
        Ok(())
    }

    async fn next_text(&mut self) -> Result<String> {
        loop {
            match self.socket.next().await {
                Some(Ok(Message::Text(text))) => return Ok(text.as_str().to_owned()),
                Some(Ok(Message::Close(frame))) => {
                    return Err(ClientError::Protocol(format!(
                        "server closed /ws: {frame:?}"
                    )));
                }
                Some(Ok(Message::Binary(_))) => {
                    return Err(ClientError::Protocol("binary frame on /ws".into()));
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(e.into()),
                None => return Err(ClientError::Protocol("/ws ended".into())),
            }
        }
    }
}
