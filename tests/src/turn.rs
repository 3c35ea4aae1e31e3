//! TURN for tests: a loopback-only `coturn` with one static user, and a WHEP viewer that may
//! only use relay candidates (`iceTransportPolicy: "relay"`), so every packet it receives
//! came through the TURN server.
//!
//! `coturn` is Debian's package (`turnserver`); [`TurnServer::ensure_installed`] installs it
//! with apt when it is missing.

use crate::error::{ClientError, Result};
use crate::http::{Session, post_offer};
use crate::peer::default_codecs;
use crate::rtp_log::MediaKind;
use crate::settling_runtime::SettlingRuntime;
use reqwest::Client;
use rtc::rtp_transceiver::rtp_sender::{RTCRtpCodecParameters, RtpCodecKind};
use rtc::rtp_transceiver::{RTCRtpTransceiverDirection, RTCRtpTransceiverInit};
use std::net::UdpSocket;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::watch;
use webrtc::media_stream::track_remote::{TrackRemote, TrackRemoteEvent};
use webrtc::peer_connection::{
    MediaEngine, PeerConnection, PeerConnectionBuilder, PeerConnectionEventHandler,
    RTCConfigurationBuilder, RTCIceGatheringState, RTCIceServer, RTCIceTransportPolicy,
    RTCPeerConnectionState, RTCSessionDescription, Registry, register_default_interceptors,
};

/// The TURN user every test server has.
pub const TURN_USER: &str = "directo";
/// Its password.
pub const TURN_PASSWORD: &str = "relay-only";
/// The realm.
pub const TURN_REALM: &str = "directo";

/// A running `turnserver` on 127.0.0.1, killed on drop.
pub struct TurnServer {
    child: Child,
    port: u16,
    relay_ports: std::ops::RangeInclusive<u16>,
    log: PathBuf,
}

impl TurnServer {
    /// Installs Debian's `coturn` (apt) unless `turnserver` is already on the `PATH`.
    pub fn ensure_installed() -> Result<()> {
        // Tests run in parallel: one apt-get at a time (dpkg takes a lock and the second fails).
        static INSTALL: std::sync::Mutex<()> = std::sync::Mutex::new(());
        let _one_at_a_time = INSTALL
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if turnserver_exists() {
            return Ok(());
        }
        let run = |args: &[&str]| {
            Command::new("apt-get")
                .args(args)
                .env("DEBIAN_FRONTEND", "noninteractive")
                .stdin(Stdio::null())
                .output()
                .map_err(|e| ClientError::Server(format!("cannot run apt-get: {e}")))
        };
        run(&["update"])?;
        let output = run(&["install", "-y", "coturn"])?;
        if !output.status.success() || !turnserver_exists() {
            return Err(ClientError::Server(format!(
                "apt-get install coturn failed: {}",
                String::from_utf8_lossy(&output.stderr)
            )));
        }
        Ok(())
    }

    /// Starts `turnserver` on a free loopback port, relaying on loopback only, with the
    /// long-term credential [`TURN_USER`]:[`TURN_PASSWORD`]; its log goes to `dir`.
    ///
    /// The port is free when chosen but another process may take it before coturn binds it
    /// (coturn then retries the bind silently instead of exiting): a server that does not
    /// answer is killed and started again on another port.
    pub async fn start(dir: &Path) -> Result<Self> {
        let mut last_error = None;
        for _ in 0..3 {
            let mut server = Self::spawn(dir)?;
            match server.wait_listening().await {
                Ok(()) => return Ok(server),
                Err(e) => {
                    last_error = Some(ClientError::Server(format!(
                        "{e}; its log:\n{}",
                        server.log()
                    )))
                }
            }
        }
        Err(last_error.unwrap_or_else(|| ClientError::Server("turnserver did not start".into())))
    }

    fn spawn(dir: &Path) -> Result<Self> {
        let port = UdpSocket::bind("127.0.0.1:0")
            .and_then(|s| s.local_addr())
            .map(|a| a.port())
            .map_err(|e| ClientError::Server(format!("no free UDP port: {e}")))?;
        let log = dir.join(format!("turnserver-{port}.log"));
        // Relay ports from a range of their own, away from the ephemeral ones tests use.
        let relay_min = 40_000 + (port % 200) * 100;
        // UDP only, no second (RFC 5780) port and a user database of its own: nothing that
        // another test's sockets or another coturn could be holding.
        let child = Command::new("turnserver")
            .args(["-n", "--no-cli", "--no-tls", "--no-dtls", "--fingerprint"])
            .args(["--no-tcp", "--no-tcp-relay", "--no-rfc5780"])
            .args(["--listening-ip", "127.0.0.1", "--relay-ip", "127.0.0.1"])
            .args(["--listening-port", &port.to_string()])
            .args(["--min-port", &relay_min.to_string()])
            .args(["--max-port", &(relay_min + 99).to_string()])
            .args(["--lt-cred-mech", "--realm", TURN_REALM])
            .args(["--user", &format!("{TURN_USER}:{TURN_PASSWORD}")])
            .arg("--allow-loopback-peers")
            .arg("--userdb")
            .arg(dir.join(format!("turndb-{port}")))
            .arg("--pidfile")
            .arg(dir.join(format!("turnserver-{port}.pid")))
            .args(["--simple-log", "--log-file"])
            .arg(&log)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| ClientError::Server(format!("cannot run turnserver: {e}")))?;
        Ok(TurnServer {
            child,
            port,
            relay_ports: relay_min..=relay_min + 99,
            log,
        })
    }

    /// The `turn:` URL of the server (UDP).
    pub fn url(&self) -> String {
        format!("turn:127.0.0.1:{}?transport=udp", self.port)
    }

    /// The ports the server allocates relayed addresses from (on 127.0.0.1).
    pub fn relay_ports(&self) -> std::ops::RangeInclusive<u16> {
        self.relay_ports.clone()
    }

    /// What the server logged (its log file has the port in its name: coturn adds a date).
    pub fn log(&self) -> String {
        let Some(dir) = self.log.parent() else {
            return String::new();
        };
        let stem = format!("turnserver-{}", self.port);
        std::fs::read_dir(dir)
            .map(|entries| {
                entries
                    .filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|p| {
                        p.file_name()
                            .and_then(|n| n.to_str())
                            .is_some_and(|n| n.starts_with(&stem))
                    })
                    .filter_map(|p| std::fs::read_to_string(p).ok())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Waits until the server answers a STUN binding request (coturn logs nothing when its
    /// listener is up).
    async fn wait_listening(&mut self) -> Result<()> {
        let socket = tokio::net::UdpSocket::bind("127.0.0.1:0")
            .await
            .map_err(|e| ClientError::Server(format!("no UDP socket: {e}")))?;
        // A STUN Binding request: type, length 0, the magic cookie, a transaction id.
        let mut request = vec![0x00, 0x01, 0x00, 0x00, 0x21, 0x12, 0xa4, 0x42];
        request.extend_from_slice(&rand::random::<[u8; 12]>());
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        let mut buf = [0u8; 1500];
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(ClientError::Server(format!(
                    "turnserver exited with {status}: {}",
                    self.log()
                )));
            }
            let _ = socket.send_to(&request, ("127.0.0.1", self.port)).await;
            let reply =
                tokio::time::timeout(Duration::from_millis(200), socket.recv_from(&mut buf)).await;
            if let Ok(Ok((n, _))) = reply
                && n >= 20
                && buf[..2] == [0x01, 0x01]
            {
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(ClientError::timeout(
                    "turnserver to answer STUN",
                    Duration::from_secs(10),
                ));
            }
        }
    }
}

impl Drop for TurnServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn turnserver_exists() -> bool {
    Command::new("turnserver")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
}

/// Connection state, gathering state and packet counts, written by the peer's handler.
struct Shared {
    state: watch::Sender<RTCPeerConnectionState>,
    gathering: watch::Sender<RTCIceGatheringState>,
    connected: Arc<AtomicBool>,
    audio: AtomicU64,
    video: AtomicU64,
}

struct Handler(Arc<Shared>);

#[async_trait::async_trait]
impl PeerConnectionEventHandler for Handler {
    async fn on_ice_gathering_state_change(&self, state: RTCIceGatheringState) {
        self.0.gathering.send_replace(state);
    }

    async fn on_connection_state_change(&self, state: RTCPeerConnectionState) {
        if state == RTCPeerConnectionState::Connected {
            self.0.connected.store(true, Ordering::Release);
        }
        self.0.state.send_replace(state);
    }

    async fn on_track(&self, track: Arc<dyn TrackRemote>) {
        tokio::spawn(count_packets(track, Arc::clone(&self.0)));
    }
}

async fn count_packets(track: Arc<dyn TrackRemote>, shared: Arc<Shared>) {
    let counter = match track.kind().await {
        RtpCodecKind::Audio => &shared.audio,
        _ => &shared.video,
    };
    while let Some(event) = track.poll().await {
        match event {
            TrackRemoteEvent::OnRtpPacket(_) => {
                counter.fetch_add(1, Ordering::Relaxed);
            }
            TrackRemoteEvent::OnEnded => break,
            _ => {}
        }
    }
}

/// A recvonly audio + video WHEP viewer that uses only relay candidates of one TURN server.
pub struct RelayViewer {
    pc: Arc<dyn PeerConnection>,
    shared: Arc<Shared>,
    offer: String,
    session: Session,
}

impl RelayViewer {
    /// Gathers relay candidates at `turn_url` (with `username`/`credential`) and watches
    /// `endpoint` over WHEP; returns once the answer is applied.
    pub async fn connect(
        http: &Client,
        endpoint: &str,
        turn_url: &str,
        username: &str,
        credential: &str,
    ) -> Result<Self> {
        let mut media_engine = MediaEngine::default();
        for spec in default_codecs() {
            media_engine.register_codec(
                RTCRtpCodecParameters {
                    rtp_codec: spec.codec,
                    payload_type: spec.payload_type,
                },
                spec.kind,
            )?;
        }
        let registry = register_default_interceptors(Registry::new(), &mut media_engine)?;
        let configuration = RTCConfigurationBuilder::new()
            .with_ice_servers(vec![RTCIceServer {
                urls: vec![turn_url.to_owned()],
                username: username.to_owned(),
                credential: credential.to_owned(),
            }])
            .with_ice_transport_policy(RTCIceTransportPolicy::Relay)
            .build();
        let connected = Arc::new(AtomicBool::new(false));
        let shared = Arc::new(Shared {
            state: watch::channel(RTCPeerConnectionState::New).0,
            gathering: watch::channel(RTCIceGatheringState::New).0,
            connected: Arc::clone(&connected),
            audio: AtomicU64::new(0),
            video: AtomicU64::new(0),
        });
        let runtime = webrtc::runtime::default_runtime()
            .ok_or_else(|| ClientError::Protocol("webrtc has no async runtime".into()))?;
        let pc: Arc<dyn PeerConnection> = Arc::new(
            PeerConnectionBuilder::new()
                .with_configuration(configuration)
                .with_media_engine(media_engine)
                .with_interceptor_registry(registry)
                .with_handler(Arc::new(Handler(Arc::clone(&shared))))
                .with_runtime(Arc::new(SettlingRuntime::new(runtime, connected)))
                .with_udp_addrs(vec!["127.0.0.1:0".to_owned()])
                .build()
                .await?,
        );
        for kind in [RtpCodecKind::Audio, RtpCodecKind::Video] {
            pc.add_transceiver_from_kind(
                kind,
                Some(RTCRtpTransceiverInit {
                    direction: RTCRtpTransceiverDirection::Recvonly,
                    ..Default::default()
                }),
            )
            .await?;
        }
        let offer = pc.create_offer(None).await?;
        let mut gathering = shared.gathering.subscribe();
        pc.set_local_description(offer).await?;
        tokio::time::timeout(
            Duration::from_secs(20),
            gathering.wait_for(|s| *s == RTCIceGatheringState::Complete),
        )
        .await
        .map_err(|_| ClientError::timeout("relay candidate gathering", Duration::from_secs(20)))?
        .map_err(|_| ClientError::Protocol("peer connection dropped".into()))?;
        let offer = pc
            .local_description()
            .await
            .map(|d| d.sdp)
            .ok_or_else(|| ClientError::Protocol("no local description".into()))?;
        let session = post_offer(http, endpoint, &offer, None).await?;
        pc.set_remote_description(RTCSessionDescription::answer(session.answer.clone())?)
            .await?;
        Ok(RelayViewer {
            pc,
            shared,
            offer,
            session,
        })
    }

    /// The offer it sent, with its candidates.
    pub fn offer(&self) -> &str {
        &self.offer
    }

    /// The WHEP session.
    pub fn session(&self) -> &Session {
        &self.session
    }

    /// Packets received of one kind.
    pub fn packets(&self, kind: MediaKind) -> u64 {
        match kind {
            MediaKind::Audio => self.shared.audio.load(Ordering::Relaxed),
            MediaKind::Video => self.shared.video.load(Ordering::Relaxed),
        }
    }

    /// Waits until the connection is up; fails early if it fails.
    pub async fn wait_connected(&self, timeout: Duration) -> Result<()> {
        let mut state = self.shared.state.subscribe();
        let reached = tokio::time::timeout(
            timeout,
            state.wait_for(|s| {
                matches!(
                    s,
                    RTCPeerConnectionState::Connected
                        | RTCPeerConnectionState::Failed
                        | RTCPeerConnectionState::Closed
                )
            }),
        )
        .await
        .map_err(|_| ClientError::timeout("the relayed connection", timeout))?
        .map(|s| *s)
        .map_err(|_| ClientError::Protocol("peer connection dropped".into()))?;
        match reached {
            RTCPeerConnectionState::Connected => Ok(()),
            other => Err(ClientError::Protocol(format!(
                "the relayed connection ended as {other}"
            ))),
        }
    }

    /// Waits until at least `audio` and `video` packets have arrived.
    pub async fn wait_for_packets(&self, audio: u64, video: u64, timeout: Duration) -> Result<()> {
        crate::wait::wait_until(
            &format!("{audio} audio and {video} video packets over TURN"),
            timeout,
            || self.packets(MediaKind::Audio) >= audio && self.packets(MediaKind::Video) >= video,
        )
        .await
    }

    /// Closes the peer.
    pub async fn close(self) -> Result<()> {
        self.pc.close().await?;
        Ok(())
    }
}
