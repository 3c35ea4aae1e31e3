//! The media engine as the rest of the server sees it: a cloneable handle that sends commands
//! to the engine's thread and awaits the replies, plus a feed of stream events.

pub use directo_sfu::Quality;
use signaling_proto::StreamInfo;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;
use tokio::sync::{broadcast, mpsc, oneshot};

use crate::analytics::AudienceStats;
use crate::chat_port::Identity;
use crate::error::MediaError;

/// How the engine listens and what it tells peers.
#[derive(Debug, Clone)]
pub struct MediaConfig {
    /// The UDP address every peer shares (default `0.0.0.0:7880`).
    pub bind: SocketAddr,
    /// Addresses to announce as host candidates (NAT 1:1); empty means every interface address.
    pub public_ips: Vec<IpAddr>,
    /// A peer that has not connected (ICE + DTLS) after this long is dropped.
    pub handshake_timeout: Duration,
    /// A connected peer from which nothing arrived for this long is dropped.
    pub idle_timeout: Duration,
    /// Where live streams are recorded (`None`: recording impossible).
    pub recordings: Option<std::path::PathBuf>,
    /// Whether streams are recorded unless the admin switched a stream off (`--no-record`
    /// makes this false; the admin switch can still turn one on).
    pub record_by_default: bool,
    /// Capacity limits.
    pub limits: Limits,
    /// Threads a stream's fan-out is sharded over, the engine thread included; 0 means one
    /// per core the process may run on.
    pub fanout_threads: usize,
}

/// Capacity limits; over one, a request is refused and nobody else is affected.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Streams with a publisher or viewers at once.
    pub max_streams: usize,
    /// Viewer sessions of one stream.
    pub max_viewers_per_stream: usize,
    /// Sessions (publishers and viewers) from one client address.
    pub max_sessions_per_ip: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_streams: 100,
            max_viewers_per_stream: 5000,
            max_sessions_per_ip: 50,
        }
    }
}

impl Default for MediaConfig {
    fn default() -> Self {
        MediaConfig {
            bind: SocketAddr::from(([0, 0, 0, 0], 7880)),
            public_ips: Vec::new(),
            handshake_timeout: Duration::from_secs(15),
            idle_timeout: Duration::from_secs(15),
            recordings: None,
            record_by_default: true,
            limits: Limits::default(),
            fanout_threads: 0,
        }
    }
}

/// A session the engine created: its id and the SDP answer for the client.
#[derive(Debug, Clone)]
pub struct SessionAnswer {
    /// The session id (goes in `Location`).
    pub session: String,
    /// The SDP answer, with every server candidate in it.
    pub sdp: String,
}

/// Something that happened to a stream or a session, for signaling clients.
#[derive(Debug, Clone)]
pub enum EngineEvent {
    /// A stream's publisher is live (or its tracks changed).
    Live(StreamInfo),
    /// A stream's publisher left.
    Offline {
        /// The stream.
        stream: String,
    },
    /// A stream's viewer count changed.
    Viewers {
        /// The stream.
        stream: String,
        /// Viewers connected now.
        count: usize,
    },
    /// A session was refused something after it was set up (e.g. codec mismatch).
    SessionError {
        /// The session.
        session: String,
        /// What went wrong.
        error: String,
        /// The wire code.
        code: signaling_proto::ErrorCode,
    },
    /// The server wants to renegotiate a session (the publisher added a kind the viewer's
    /// first offer lacked); the client answers with [`EngineHandle::answer`].
    SessionOffer {
        /// The session.
        session: String,
        /// The server's SDP offer.
        sdp: String,
    },
    /// A session ended (closed, timed out, replaced).
    SessionClosed {
        /// The session.
        session: String,
    },
}

pub(crate) type Reply<T> = oneshot::Sender<T>;

/// What the handle asks the engine to do.
pub(crate) enum Command {
    Publish {
        stream: String,
        offer: String,
        identity: Identity,
        reply: Reply<Result<SessionAnswer, MediaError>>,
    },
    Watch {
        stream: String,
        offer: String,
        identity: Identity,
        quality: Quality,
        reply: Reply<Result<SessionAnswer, MediaError>>,
    },
    SetQuality {
        session: String,
        quality: Quality,
        reply: Reply<Result<(), MediaError>>,
    },
    Close {
        session: String,
        reply: Reply<Result<String, MediaError>>,
    },
    Streams {
        reply: Reply<Vec<StreamInfo>>,
    },
    Answer {
        session: String,
        sdp: String,
        reply: Reply<Result<(), MediaError>>,
    },
    Audience {
        stream: String,
        reply: Reply<Option<AudienceStats>>,
    },
    Sessions {
        stream: String,
        reply: Reply<Vec<SessionInfo>>,
    },
    EndStream {
        stream: String,
        reply: Reply<usize>,
    },
    SetRecording {
        stream: String,
        enabled: bool,
        reply: Reply<()>,
    },
    Shutdown {
        reply: Reply<()>,
    },
}

/// One session of a stream, for the admin API.
pub use signaling_proto::SessionInfo;

/// A cheap, cloneable handle to the running media engine.
#[derive(Clone)]
pub struct EngineHandle {
    pub(crate) commands: mpsc::Sender<Command>,
    pub(crate) events: broadcast::Sender<EngineEvent>,
    pub(crate) local_addr: SocketAddr,
}

impl EngineHandle {
    async fn ask<T>(&self, make: impl FnOnce(Reply<T>) -> Command) -> Result<T, MediaError> {
        let (tx, rx) = oneshot::channel();
        self.commands
            .send(make(tx))
            .await
            .map_err(|_| MediaError::Unavailable)?;
        rx.await.map_err(|_| MediaError::Unavailable)
    }

    /// Create a publisher session for `stream` from an SDP offer.
    pub async fn publish(
        &self,
        stream: &str,
        offer: String,
        identity: Identity,
    ) -> Result<SessionAnswer, MediaError> {
        let stream = stream.to_owned();
        self.ask(|reply| Command::Publish {
            stream,
            offer,
            identity,
            reply,
        })
        .await?
    }

    /// Create a viewer session for `stream` from an SDP offer.
    pub async fn watch(
        &self,
        stream: &str,
        offer: String,
        identity: Identity,
    ) -> Result<SessionAnswer, MediaError> {
        self.watch_with_quality(stream, offer, identity, Quality::Auto)
            .await
    }

    /// Create a viewer session that starts on the simulcast layer `quality` asks for.
    pub async fn watch_with_quality(
        &self,
        stream: &str,
        offer: String,
        identity: Identity,
        quality: Quality,
    ) -> Result<SessionAnswer, MediaError> {
        let stream = stream.to_owned();
        self.ask(|reply| Command::Watch {
            stream,
            offer,
            identity,
            quality,
            reply,
        })
        .await?
    }

    /// Change a viewer's simulcast layer choice (it switches at the layer's next keyframe).
    pub async fn set_quality(&self, session: &str, quality: Quality) -> Result<(), MediaError> {
        let session = session.to_owned();
        self.ask(|reply| Command::SetQuality {
            session,
            quality,
            reply,
        })
        .await?
    }

    /// End a session; returns the stream it belonged to.
    pub async fn close(&self, session: &str) -> Result<String, MediaError> {
        let session = session.to_owned();
        self.ask(|reply| Command::Close { session, reply }).await?
    }

    /// Apply a client's answer to a server-initiated offer.
    pub async fn answer(&self, session: &str, sdp: String) -> Result<(), MediaError> {
        let session = session.to_owned();
        self.ask(|reply| Command::Answer {
            session,
            sdp,
            reply,
        })
        .await?
    }

    /// Every stream with a publisher or a viewer.
    pub async fn streams(&self) -> Result<Vec<StreamInfo>, MediaError> {
        self.ask(|reply| Command::Streams { reply }).await
    }

    /// One stream, if it has a publisher or a viewer.
    pub async fn stream(&self, name: &str) -> Result<Option<StreamInfo>, MediaError> {
        Ok(self.streams().await?.into_iter().find(|s| s.name == name))
    }

    /// The audience figures of `stream` (kept after it ends), if it ever had a viewer.
    pub async fn audience(&self, stream: &str) -> Result<Option<AudienceStats>, MediaError> {
        let stream = stream.to_owned();
        self.ask(|reply| Command::Audience { stream, reply }).await
    }

    /// The sessions of `stream`.
    pub async fn sessions(&self, stream: &str) -> Result<Vec<SessionInfo>, MediaError> {
        let stream = stream.to_owned();
        self.ask(|reply| Command::Sessions { stream, reply }).await
    }

    /// End a stream: close its publisher and every viewer. Returns how many sessions closed.
    pub async fn end_stream(&self, stream: &str) -> Result<usize, MediaError> {
        let stream = stream.to_owned();
        self.ask(|reply| Command::EndStream { stream, reply }).await
    }

    /// Start or stop recording `stream` (also applies when it next goes live).
    pub async fn set_recording(&self, stream: &str, enabled: bool) -> Result<(), MediaError> {
        let stream = stream.to_owned();
        self.ask(|reply| Command::SetRecording {
            stream,
            enabled,
            reply,
        })
        .await
    }

    /// Close every peer (they get a DTLS close), finish recordings and stop the engine.
    pub async fn shutdown(&self) {
        let _ = self.ask(|reply| Command::Shutdown { reply }).await;
    }

    /// Stream and session events from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<EngineEvent> {
        self.events.subscribe()
    }

    /// The UDP address the engine is bound to.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }
}
