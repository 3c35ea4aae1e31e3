//! One relay pull: this node as a WHEP client of another node (the stream's origin or a
//! relay of it), feeding what it receives into the local engine as the stream's source.
//!
//! Every simulcast layer is carried: the upstream's `GET /api/streams/{stream}` names the
//! video layers, and each layer is pulled as a WHEP session of its own pinned with
//! `?quality=low|medium|high` (the upstream's forwarding core keeps a pinned viewer on its
//! layer, keyframes and all), so the local core sees a simulcast publisher with the same RIDs
//! and this node's viewers switch layers here. Audio rides on the first session. Each session
//! has the default receive interceptors (NACKs for what the link lost, receiver reports) and
//! hands sender reports through (lip sync); the local core's keyframe requests, already
//! collapsed over every local viewer, go upstream as PLIs on the layer they name.
//!
//! A pull ends when a session fails or closes, a track ends, or the engine lets the relay go;
//! the caller (`relay.rs`) decides whether to pull again.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use directo_media::relay::{KeyframeRequests, RelayFeed, RelaySink};
use directo_media::{Codec, KeyframeRequestKind, MediaKind, PublishedTrack};
use directo_sfu::{RTCP_TAP_SLOT, RtcpTap};
use rtc::rtcp::payload_feedbacks::full_intra_request::{FirEntry, FullIntraRequest};
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::rtcp::sender_report::SenderReport;
use rtc::rtp_transceiver::rtp_sender::{RTCRtpHeaderExtensionCapability, RtpCodecKind};
use rtc::rtp_transceiver::{RTCRtpTransceiverDirection, RTCRtpTransceiverInit};
use tokio::sync::{mpsc, watch};
use webrtc::media_stream::track_remote::{TrackRemote, TrackRemoteEvent};
use webrtc::peer_connection::{
    MediaEngine, PeerConnection, PeerConnectionBuilder, PeerConnectionEventHandler,
    RTCIceGatheringState, RTCPeerConnectionState, RTCSessionDescription, Registry,
    register_default_interceptors,
};

/// How long a session may take to gather, answer and connect.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the first track waits for the others before the stream goes live here.
const TRACKS_GRACE: Duration = Duration::from_millis(1500);
/// How long an upstream request may take.
const HTTP_TIMEOUT: Duration = Duration::from_secs(5);

/// Where and as whom to pull from.
pub(crate) struct Upstream<'a> {
    pub(crate) http: &'a reqwest::Client,
    /// The upstream node's base URL.
    pub(crate) url: &'a str,
    pub(crate) stream: &'a str,
    /// A node token for `stream`.
    pub(crate) token: &'a str,
    /// The local address to bind (an IP the upstream can reach).
    pub(crate) bind: std::net::IpAddr,
}

/// Why a pull ended.
#[derive(Debug, thiserror::Error)]
pub(crate) enum PullError {
    #[error("the upstream answered {0}")]
    Refused(String),
    #[error("cannot reach the upstream: {0}")]
    Http(#[from] reqwest::Error),
    #[error("WebRTC: {0}")]
    WebRtc(String),
    #[error("the upstream has nothing live to pull")]
    NotLive,
    #[error("the connection to the upstream {0}")]
    Lost(&'static str),
}

fn webrtc_error(error: impl std::fmt::Display) -> PullError {
    PullError::WebRtc(error.to_string())
}

/// What the upstream says it publishes: whether audio, and the video layers (RIDs, smallest
/// first; empty without simulcast).
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct UpstreamTracks {
    pub(crate) live: bool,
    pub(crate) audio: bool,
    pub(crate) video: bool,
    pub(crate) layers: Vec<String>,
}

impl UpstreamTracks {
    /// Reads `GET /api/streams/{stream}`'s body.
    pub(crate) fn from_json(value: &serde_json::Value) -> Self {
        let mut tracks = UpstreamTracks {
            live: value["live"].as_bool().unwrap_or(false),
            ..UpstreamTracks::default()
        };
        for track in value["tracks"].as_array().into_iter().flatten() {
            match track["kind"].as_str() {
                Some("audio") => tracks.audio = true,
                Some("video") => {
                    tracks.video = true;
                    tracks.layers = track["layers"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(|l| l.as_str().map(str::to_owned))
                        .collect();
                }
                _ => {}
            }
        }
        tracks
    }

    /// The sessions to open: `(quality, RID)` per video layer, or one unpinned session.
    fn legs(&self) -> Vec<(&'static str, Option<String>)> {
        match self.layers.as_slice() {
            [] | [_] => vec![("high", None)],
            [low, high] => vec![("low", Some(low.clone())), ("high", Some(high.clone()))],
            [low, medium, .., high] => vec![
                ("low", Some(low.clone())),
                ("medium", Some(medium.clone())),
                ("high", Some(high.clone())),
            ],
        }
    }
}

/// Asks the upstream what the stream publishes now.
pub(crate) async fn upstream_tracks(upstream: &Upstream<'_>) -> Result<UpstreamTracks, PullError> {
    let url = format!(
        "{}/api/streams/{}",
        upstream.url.trim_end_matches('/'),
        upstream.stream
    );
    let response = upstream.http.get(url).timeout(HTTP_TIMEOUT).send().await?;
    if !response.status().is_success() {
        return Err(PullError::Refused(response.status().to_string()));
    }
    let value: serde_json::Value = response.json().await?;
    Ok(UpstreamTracks::from_json(&value))
}

/// A track of one session, seen at its first packet.
struct OpenTrack {
    track: Arc<dyn TrackRemote>,
    published: PublishedTrack,
}

/// What a session's tracks report to the pull.
enum TrackNews {
    Open(OpenTrack),
    Ended,
}

struct Handler {
    state: watch::Sender<RTCPeerConnectionState>,
    gathering: watch::Sender<RTCIceGatheringState>,
    tracks: mpsc::Sender<(Arc<dyn TrackRemote>, usize)>,
    leg: usize,
}

#[async_trait::async_trait]
impl PeerConnectionEventHandler for Handler {
    async fn on_ice_gathering_state_change(&self, state: RTCIceGatheringState) {
        self.gathering.send_replace(state);
    }

    async fn on_connection_state_change(&self, state: RTCPeerConnectionState) {
        self.state.send_replace(state);
    }

    async fn on_track(&self, track: Arc<dyn TrackRemote>) {
        let _ = self.tracks.try_send((track, self.leg));
    }
}

/// One WHEP session to the upstream.
struct Leg {
    pc: Arc<dyn PeerConnection>,
    state: watch::Receiver<RTCPeerConnectionState>,
    /// The session's URL on the upstream, for the DELETE at the end.
    location: Option<String>,
    /// Header extensions the upstream's answer accepted, per kind.
    extensions: HashMap<RtpCodecKind, Vec<(u8, String)>>,
    rid: Option<String>,
}

fn only_sender_reports(packet: &dyn rtc::rtcp::Packet) -> bool {
    packet.as_any().is::<SenderReport>()
}

async fn open_leg(
    upstream: &Upstream<'_>,
    quality: &str,
    rid: Option<String>,
    kinds: &[RtpCodecKind],
    leg: usize,
    tracks: mpsc::Sender<(Arc<dyn TrackRemote>, usize)>,
) -> Result<Leg, PullError> {
    let mut media_engine = MediaEngine::default();
    for (codec, kind) in directo_media::relay_codecs() {
        media_engine
            .register_codec(codec, kind)
            .map_err(webrtc_error)?;
    }
    for (uri, kind) in directo_media::relay_extensions() {
        media_engine
            .register_header_extension(
                RTCRtpHeaderExtensionCapability {
                    uri: (*uri).to_owned(),
                },
                *kind,
                None,
            )
            .map_err(webrtc_error)?;
    }
    let registry = register_default_interceptors(Registry::new(), &mut media_engine)
        .map_err(webrtc_error)?
        .with(
            rtc::interceptor::Slot::from(RTCP_TAP_SLOT),
            RtcpTap::delivering(only_sender_reports),
        );
    let (state_tx, state) = watch::channel(RTCPeerConnectionState::New);
    let (gathering_tx, mut gathering) = watch::channel(RTCIceGatheringState::New);
    let runtime = webrtc::runtime::default_runtime()
        .ok_or_else(|| PullError::WebRtc("no async runtime".into()))?;
    let pc = PeerConnectionBuilder::new()
        .with_media_engine(media_engine)
        .with_interceptor_registry(registry)
        .with_handler(Arc::new(Handler {
            state: state_tx,
            gathering: gathering_tx,
            tracks,
            leg,
        }))
        .with_runtime(runtime)
        .with_udp_addrs(vec![format!("{}:0", upstream.bind)])
        .build()
        .await
        .map_err(webrtc_error)?;
    let pc: Arc<dyn PeerConnection> = Arc::new(pc);
    for kind in kinds {
        pc.add_transceiver_from_kind(
            *kind,
            Some(RTCRtpTransceiverInit {
                direction: RTCRtpTransceiverDirection::Recvonly,
                ..Default::default()
            }),
        )
        .await
        .map_err(webrtc_error)?;
    }
    let offer = pc.create_offer(None).await.map_err(webrtc_error)?;
    pc.set_local_description(offer)
        .await
        .map_err(webrtc_error)?;
    let gathered = gathering.wait_for(|s| *s == RTCIceGatheringState::Complete);
    if !matches!(
        tokio::time::timeout(CONNECT_TIMEOUT, gathered).await,
        Ok(Ok(_))
    ) {
        let _ = pc.close().await;
        return Err(PullError::Lost("gathered no candidates"));
    }
    let offer = match pc.local_description().await {
        Some(description) => description.sdp,
        None => return Err(PullError::WebRtc("no local description".into())),
    };
    let url = format!(
        "{}/whep/{}?quality={quality}",
        upstream.url.trim_end_matches('/'),
        upstream.stream
    );
    let response = upstream
        .http
        .post(&url)
        .timeout(HTTP_TIMEOUT)
        .bearer_auth(upstream.token)
        .header("content-type", "application/sdp")
        .body(offer)
        .send()
        .await;
    let response = match response {
        Ok(response) => response,
        Err(error) => {
            let _ = pc.close().await;
            return Err(error.into());
        }
    };
    let status = response.status();
    let location = response
        .headers()
        .get("location")
        .and_then(|l| l.to_str().ok())
        .map(|l| absolute(upstream.url, l));
    let answer = response.text().await.unwrap_or_default();
    if !status.is_success() {
        let _ = pc.close().await;
        return Err(PullError::Refused(format!("{status}: {answer}")));
    }
    let extensions = answer_extensions(&answer);
    let description = RTCSessionDescription::answer(answer).map_err(webrtc_error)?;
    pc.set_remote_description(description)
        .await
        .map_err(webrtc_error)?;
    Ok(Leg {
        pc,
        state,
        location,
        extensions,
        rid,
    })
}

/// A `Location` as an absolute URL on the upstream.
fn absolute(base: &str, location: &str) -> String {
    if location.starts_with("http://") || location.starts_with("https://") {
        location.to_owned()
    } else {
        format!("{}{location}", base.trim_end_matches('/'))
    }
}

/// The header extensions (`a=extmap:ID URI`) of each media section of an SDP answer.
fn answer_extensions(sdp: &str) -> HashMap<RtpCodecKind, Vec<(u8, String)>> {
    let mut out: HashMap<RtpCodecKind, Vec<(u8, String)>> = HashMap::new();
    let mut kind = None;
    for line in sdp.lines() {
        if let Some(media) = line.strip_prefix("m=") {
            kind = match media.split(' ').next() {
                Some("audio") => Some(RtpCodecKind::Audio),
                Some("video") => Some(RtpCodecKind::Video),
                _ => None,
            };
        } else if let (Some(kind), Some(extmap)) = (kind, line.strip_prefix("a=extmap:")) {
            let mut parts = extmap.split_whitespace();
            let id = parts
                .next()
                .and_then(|id| id.split('/').next())
                .and_then(|id| id.parse().ok());
            if let (Some(id), Some(uri)) = (id, parts.next()) {
                out.entry(kind).or_default().push((id, uri.to_owned()));
            }
        }
    }
    out
}

/// Reads one track: its first packet makes it known to the pull, every packet and sender
/// report goes to the engine.
async fn read_track(
    track: Arc<dyn TrackRemote>,
    rid: Option<String>,
    extensions: Vec<(u8, String)>,
    sink: RelaySink,
    news: mpsc::Sender<TrackNews>,
) {
    let kind = match track.kind().await {
        RtpCodecKind::Audio => MediaKind::Audio,
        RtpCodecKind::Video => MediaKind::Video,
        _ => return,
    };
    let mut announced = false;
    while let Some(event) = track.poll().await {
        match event {
            TrackRemoteEvent::OnRtpPacket(packet) => {
                if !announced {
                    announced = true;
                    let ssrc = packet.header.ssrc;
                    let codec = track
                        .codec(ssrc)
                        .await
                        .and_then(|c| Codec::from_mime(&c.mime_type));
                    let Some(codec) = codec else {
                        tracing::warn!("a relayed track in a codec Directo does not forward");
                        break;
                    };
                    let published = PublishedTrack {
                        kind,
                        codec,
                        ssrc,
                        keyframe_request: KeyframeRequestKind::Pli,
                        extensions: extensions.clone(),
                        rid: rid.clone().filter(|_| kind == MediaKind::Video),
                    };
                    let open = OpenTrack {
                        track: Arc::clone(&track),
                        published,
                    };
                    if news.send(TrackNews::Open(open)).await.is_err() {
                        return;
                    }
                }
                if !sink.rtp(packet).await {
                    return;
                }
            }
            TrackRemoteEvent::OnRtcpPacket(packets) => {
                for packet in packets {
                    if let Some(sr) = packet.as_any().downcast_ref::<SenderReport>()
                        && !sink.sender_report(sr.ssrc, sr.ntp_time, sr.rtp_time).await
                    {
                        return;
                    }
                }
            }
            TrackRemoteEvent::OnEnded => break,
            _ => {}
        }
    }
    let _ = news.send(TrackNews::Ended).await;
}

/// Pulls the stream from `upstream` into `feed` until the pull breaks or `stop` turns true.
/// The relay is ended (`RelaySink::end`) on the way out, and every session deleted upstream.
pub(crate) async fn pull(
    upstream: &Upstream<'_>,
    feed: RelayFeed,
    mut stop: watch::Receiver<bool>,
) -> Result<(), PullError> {
    let RelayFeed {
        sink,
        keyframe_requests,
    } = feed;
    let result = run(upstream, &sink, keyframe_requests, &mut stop).await;
    sink.end().await;
    result
}

async fn run(
    upstream: &Upstream<'_>,
    sink: &RelaySink,
    mut requests: KeyframeRequests,
    stop: &mut watch::Receiver<bool>,
) -> Result<(), PullError> {
    let tracks = upstream_tracks(upstream).await?;
    if !tracks.live {
        return Err(PullError::NotLive);
    }
    let (track_tx, mut track_rx) = mpsc::channel(8);
    let mut legs = Vec::new();
    let plan = tracks.legs();
    for (index, (quality, rid)) in plan.into_iter().enumerate() {
        let mut kinds = Vec::new();
        if index == 0 && tracks.audio {
            kinds.push(RtpCodecKind::Audio);
        }
        if tracks.video {
            kinds.push(RtpCodecKind::Video);
        }
        if kinds.is_empty() {
            break;
        }
        match open_leg(upstream, quality, rid, &kinds, index, track_tx.clone()).await {
            Ok(leg) => legs.push(leg),
            Err(error) => {
                close_legs(upstream, &legs).await;
                return Err(error);
            }
        }
    }
    drop(track_tx);
    let expected = usize::from(tracks.audio) + if tracks.video { legs.len() } else { 0 };
    let result = serve(&legs, sink, &mut track_rx, &mut requests, stop, expected).await;
    close_legs(upstream, &legs).await;
    result
}

/// Runs the pull's sessions: tracks as they open (live once all are open or after a grace),
/// keyframe requests upstream, until something ends.
async fn serve(
    legs: &[Leg],
    sink: &RelaySink,
    track_rx: &mut mpsc::Receiver<(Arc<dyn TrackRemote>, usize)>,
    requests: &mut KeyframeRequests,
    stop: &mut watch::Receiver<bool>,
    expected: usize,
) -> Result<(), PullError> {
    let (news_tx, mut news) = mpsc::channel(16);
    let mut open: Vec<OpenTrack> = Vec::new();
    let mut announced = 0;
    let mut grace: Option<tokio::time::Instant> = None;
    let connect_deadline = tokio::time::Instant::now() + CONNECT_TIMEOUT;
    let mut states: Vec<watch::Receiver<RTCPeerConnectionState>> =
        legs.iter().map(|leg| leg.state.clone()).collect();
    let mut readers = Vec::new();
    loop {
        let deadline = match (announced, grace) {
            (0, Some(grace)) => grace,
            (0, None) => connect_deadline,
            _ => tokio::time::Instant::now() + Duration::from_secs(3600),
        };
        let state_changed = async {
            let changes = states.iter_mut().map(|s| Box::pin(s.changed()));
            futures::future::select_all(changes).await.0
        };
        tokio::select! {
            changed = state_changed => {
                if changed.is_err() {
                    return Err(PullError::Lost("closed"));
                }
                for state in &states {
                    match *state.borrow() {
                        RTCPeerConnectionState::Failed => return Err(PullError::Lost("failed")),
                        RTCPeerConnectionState::Closed => return Err(PullError::Lost("closed")),
                        _ => {}
                    }
                }
            }
            Some((track, leg)) = track_rx.recv() => {
                let Some(session) = legs.get(leg) else { continue };
                let kind = track.kind().await;
                let extensions = session.extensions.get(&kind).cloned().unwrap_or_default();
                readers.push(tokio::spawn(read_track(
                    track,
                    session.rid.clone(),
                    extensions,
                    sink.clone(),
                    news_tx.clone(),
                )));
            }
            Some(item) = news.recv() => match item {
                TrackNews::Open(track) => {
                    open.push(track);
                    grace.get_or_insert(tokio::time::Instant::now() + TRACKS_GRACE);
                    if open.len() >= expected || announced > 0 {
                        announced = open.len();
                        let tracks = open.iter().map(|t| t.published.clone()).collect();
                        if !sink.set_tracks(tracks).await {
                            return Ok(());
                        }
                    }
                }
                TrackNews::Ended => return Err(PullError::Lost("ended a track")),
            },
            request = requests.next() => {
                let Some(request) = request else { return Ok(()) };
                if let Some(track) = open.iter().find(|t| t.published.ssrc == request.ssrc) {
                    let _ = track.track.write_rtcp(vec![keyframe_request(request)]).await;
                }
            }
            _ = tokio::time::sleep_until(deadline) => {
                if open.is_empty() {
                    return Err(PullError::Lost("brought no media in time"));
                }
                announced = open.len();
                let tracks = open.iter().map(|t| t.published.clone()).collect();
                if !sink.set_tracks(tracks).await {
                    return Ok(());
                }
            }
            () = stopped(stop) => return Ok(()),
        }
    }
}

/// Resolves once `stop` turns true (or its sender is gone).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|stop| *stop).await;
}

fn keyframe_request(request: directo_media::relay::KeyframeRequest) -> Box<dyn rtc::rtcp::Packet> {
    match request.kind {
        KeyframeRequestKind::Pli => Box::new(PictureLossIndication {
            sender_ssrc: 0,
            media_ssrc: request.ssrc,
        }),
        KeyframeRequestKind::Fir => Box::new(FullIntraRequest {
            sender_ssrc: 0,
            media_ssrc: request.ssrc,
            fir: vec![FirEntry {
                ssrc: request.ssrc,
                sequence_number: 0,
            }],
        }),
    }
}

/// Closes every session, telling the upstream (WHEP DELETE) so it does not wait for them to
/// time out.
async fn close_legs(upstream: &Upstream<'_>, legs: &[Leg]) {
    for leg in legs {
        let _ = leg.pc.close().await;
        if let Some(location) = &leg.location {
            let _ = upstream
                .http
                .delete(location)
                .timeout(HTTP_TIMEOUT)
                .bearer_auth(upstream.token)
                .send()
                .await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pulls_one_session_per_layer_with_the_upstreams_rids() {
        let tracks = UpstreamTracks::from_json(&serde_json::json!({
            "name": "launch", "live": true, "viewers": 3, "bitrate_bps": 0, "recording": false,
            "tracks": [
                {"kind": "audio", "codec": "audio/opus", "layers": []},
                {"kind": "video", "codec": "video/VP8", "layers": ["q", "h", "f"]}
            ]
        }));
        assert!(tracks.live && tracks.audio && tracks.video);
        assert_eq!(
            tracks.legs(),
            vec![
                ("low", Some("q".to_owned())),
                ("medium", Some("h".to_owned())),
                ("high", Some("f".to_owned())),
            ]
        );
        let single = UpstreamTracks::from_json(&serde_json::json!({
            "live": true, "tracks": [{"kind": "video", "codec": "video/VP8", "layers": []}]
        }));
        assert_eq!(single.legs(), vec![("high", None)]);
        assert!(!single.audio);
    }

    #[test]
    fn reads_each_sections_header_extensions_from_the_answer() {
        let sdp = "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\n\
                   a=extmap:1 urn:ietf:params:rtp-hdrext:ssrc-audio-level\r\n\
                   m=video 9 UDP/TLS/RTP/SAVPF 96\r\n\
                   a=extmap:3/sendonly urn:3gpp:video-orientation\r\n\
                   a=extmap:5 http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time\r\n";
        let extensions = answer_extensions(sdp);
        assert_eq!(
            extensions[&RtpCodecKind::Audio],
            vec![(1, "urn:ietf:params:rtp-hdrext:ssrc-audio-level".to_owned())]
        );
        assert_eq!(extensions[&RtpCodecKind::Video].len(), 2);
        assert_eq!(extensions[&RtpCodecKind::Video][0].0, 3);
    }
}
