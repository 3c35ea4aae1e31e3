//! The media engine as the rest of the server sees it: a cloneable handle that sends commands
//! to the engine's thread and awaits the replies, the streams as the engine last published
//! them (read without asking the engine), a feed of stream events, and each session's own
//! events.

pub use directo_sfu::Quality;
use signaling_proto::StreamInfo;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{broadcast, mpsc, oneshot, watch};

use crate::analytics::AudienceStats;
use crate::chat_port::Identity;
use crate::error::MediaError;
use crate::relay::RelayFeed;

/// Whether a stream is recorded when it goes live. One owner answers (the server's stream
/// settings, which know the server's default); the engine asks, it keeps no copy.
pub trait RecordingPolicy: Send + Sync + 'static {
    /// Whether `stream` is recorded.
    fn records(&self, stream: &str) -> bool;
}

/// The same answer for every stream.
impl RecordingPolicy for bool {
    fn records(&self, _stream: &str) -> bool {
        *self
    }
}

/// How the engine listens and what it tells peers.
#[derive(Clone)]
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
    /// Whether a stream is recorded (asked when it goes live and when the engine is told the
    /// policy changed).
    pub recording_policy: Arc<dyn RecordingPolicy>,
    /// Whether and where live streams are restreamed (`None`: never).
    pub restream: Option<Arc<dyn crate::restream::RestreamPort>>,
    /// Capacity limits.
    pub limits: Limits,
    /// Threads a stream's fan-out is sharded over, the engine thread included; 0 means one
    /// per core the process may run on.
    pub fanout_threads: usize,
    /// Release a viewer's WebRTC connection once it is set up, keeping only what watching
    /// needs (its SRTP contexts, address, RTCP handling and ICE consent): viewers that signal
    /// over nothing after their answer (WHEP) and opened no data channel. Off keeps every
    /// connection whole, as before.
    pub release_viewer_connections: bool,
    /// Record every (SSRC, index) pair protected toward viewers and count reuses (a check of
    /// the SRTP invariant, for tests; it costs a hash insert per forwarded packet).
    pub srtp_audit: bool,
}

impl std::fmt::Debug for MediaConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MediaConfig")
            .field("bind", &self.bind)
            .field("public_ips", &self.public_ips)
            .field("handshake_timeout", &self.handshake_timeout)
            .field("idle_timeout", &self.idle_timeout)
            .field("recordings", &self.recordings)
            .field("limits", &self.limits)
            .field("fanout_threads", &self.fanout_threads)
            .field(
                "release_viewer_connections",
                &self.release_viewer_connections,
            )
            .field("srtp_audit", &self.srtp_audit)
            .finish_non_exhaustive()
    }
}

/// Capacity limits; over one, a request is refused and nobody else is affected.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Streams with a publisher or viewers at once.
    pub max_streams: usize,
    /// Viewer sessions of one stream.
    pub max_viewers_per_stream: usize,
    /// Publisher sessions from one client address (viewers are not limited per address).
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
            recording_policy: Arc::new(true),
            restream: None,
            limits: Limits::default(),
            fanout_threads: 0,
            release_viewer_connections: true,
            srtp_audit: false,
        }
    }
}

/// A session the engine created: its id, the SDP answer for the client, and the session's
/// own events.
#[derive(Debug)]
pub struct SessionAnswer {
    /// The session id (goes in `Location`).
    pub session: String,
    /// The SDP answer, with every server candidate in it.
    pub sdp: String,
    /// What happens to this session later (a signaling client relays it; WHIP/WHEP have no
    /// channel back and drop it).
    pub events: mpsc::Receiver<SessionEvent>,
}

/// Events of one session waiting to be taken before the engine gives up on the listener.
pub(crate) const SESSION_EVENT_QUEUE: usize = 16;

/// Something that happened to one session, for its signaling client. A listener that leaves
/// [`SESSION_EVENT_QUEUE`] events untaken gets [`SessionEvent::Closed`] as the last one and its
/// session is ended: an event is never silently lost.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionEvent {
    /// The server wants to renegotiate (the publisher added a kind the viewer's first offer
    /// lacked); the client answers with [`EngineHandle::answer`].
    Offer {
        /// The server's SDP offer.
        sdp: String,
    },
    /// The session was refused something after it was set up (e.g. codec mismatch).
    Error {
        /// The wire code.
        code: signaling_proto::ErrorCode,
        /// What went wrong.
        message: String,
    },
    /// The engine ended the session for this reason (not sent when the client ended it).
    Closed {
        /// Why, for the client.
        reason: String,
    },
}

/// Something that happened to a stream, for everyone following it.
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
        /// The client ended it on purpose (a publisher's recording is finished at once).
        deliberate: bool,
        reply: Reply<Result<String, MediaError>>,
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
    ApplyRecording {
        stream: String,
        reply: Reply<()>,
    },
    OpenRelay {
        stream: String,
        reply: Reply<Result<RelayFeed, MediaError>>,
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
    pub(crate) streams: watch::Receiver<Arc<Vec<StreamInfo>>>,
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

    /// Makes a relay from another node the source of `stream` here (see [`crate::relay`]).
    /// A live local publisher keeps the stream (`StreamBusy`).
    pub async fn open_relay(&self, stream: &str) -> Result<RelayFeed, MediaError> {
        let stream = stream.to_owned();
        self.ask(|reply| Command::OpenRelay { stream, reply })
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

    /// End a session because its client said so (WHIP/WHEP `DELETE`, a `leave`): a
    /// publisher's recording is finished at once. Returns the stream it belonged to.
    pub async fn close(&self, session: &str) -> Result<String, MediaError> {
        let session = session.to_owned();
        self.ask(|reply| Command::Close {
            session,
            deliberate: true,
            reply,
        })
        .await?
    }

    /// End a session whose client is gone or replaced it (a lost signaling connection, a new
    /// offer): a publisher's recording waits the grace for it to come back.
    pub async fn drop_session(&self, session: &str) -> Result<String, MediaError> {
        let session = session.to_owned();
        self.ask(|reply| Command::Close {
            session,
            deliberate: false,
            reply,
        })
        .await?
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

    /// Every stream with a publisher or a viewer, by name, as the engine last published them
    /// (at most a fraction of a second old; read without asking the engine).
    pub fn streams(&self) -> Arc<Vec<StreamInfo>> {
        Arc::clone(&self.streams.borrow())
    }

    /// One stream, if it has a publisher or a viewer.
    pub fn stream(&self, name: &str) -> Option<StreamInfo> {
        let streams = self.streams.borrow();
        streams
            .binary_search_by(|s| s.name.as_str().cmp(name))
            .ok()
            .map(|i| streams[i].clone())
    }

    /// The stream snapshot as a `watch`, for a follower that reacts to every new one (the
    /// chat service tells each room's members when their stream goes live or offline).
    pub fn watch_streams(&self) -> watch::Receiver<Arc<Vec<StreamInfo>>> {
        self.streams.clone()
    }

    /// The audience figures of `stream` (kept for a day after its last viewer left), if it
    /// had a viewer.
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

    /// The recording policy of `stream` changed: start recording it now if it is live and
    /// the policy says so, or stop.
    pub async fn apply_recording(&self, stream: &str) -> Result<(), MediaError> {
        let stream = stream.to_owned();
        self.ask(|reply| Command::ApplyRecording { stream, reply })
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
