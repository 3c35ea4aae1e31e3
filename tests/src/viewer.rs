//! A WHEP viewer: recvonly audio and video, recording what arrives.
//!
//! Per kind it keeps every RTP header (sequence number, timestamp, SSRC, marker) in arrival
//! order, whether each video packet starts a VP8 keyframe, and when the first keyframe came.
//! Recording headers can be turned off for load tests, leaving only counters. With `chat` on,
//! the offer also carries a `chat` data channel, read by a [`ChatMember`]. Like a browser it
//! offers RTX for VP8 (unless told not to); `webrtc` puts packets that come back over RTX
//! into the video track under their original sequence numbers.

use crate::chat::ChatMember;
use crate::error::{ClientError, Result};
use crate::http::{Session, delete_session, post_offer, with_name};
use crate::peer::{
    PeerEvents, PeerSetup, build_peer, default_codecs, local_answer, local_offer,
    open_chat_channel, remote_answer, rtx_codec,
};
use crate::rtp_log::{MediaKind, RtpRecord, TrackLog};
use crate::vp8::{is_keyframe_start, parse_descriptor};
use reqwest::Client;
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::rtp_transceiver::rtp_sender::RtpCodecKind;
use rtc::rtp_transceiver::{RTCRtpTransceiverDirection, RTCRtpTransceiverInit};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use webrtc::media_stream::track_remote::{TrackRemote, TrackRemoteEvent};
use webrtc::peer_connection::{PeerConnection, RTCPeerConnectionState};

/// How a viewer records, and who it says it is.
#[derive(Debug, Clone)]
pub struct ViewerConfig {
    /// Keep every RTP header (off: counters and first packets only).
    pub record_headers: bool,
    /// Offer a `chat` data channel too.
    pub chat: bool,
    /// The display name, sent as `?name=` on WHEP.
    pub name: Option<String>,
    /// The `Authorization: Bearer` credential on WHEP: a moderator key or an access token.
    pub bearer: Option<String>,
    /// Offer RTX for VP8, as browsers do (off: a client that did not).
    pub rtx: bool,
    /// Lose every n-th VP8 packet on the way in, before the client's NACK generator sees it.
    pub lose_every_nth_video: Option<u64>,
}

impl Default for ViewerConfig {
    fn default() -> Self {
        ViewerConfig {
            record_headers: true,
            chat: false,
            name: None,
            bearer: None,
            rtx: true,
            lose_every_nth_video: None,
        }
    }
}

impl ViewerConfig {
    /// A chat member named `name`: the chat channel on, headers not kept (cheap by the dozen).
    pub fn chat_as(name: &str) -> Self {
        ViewerConfig {
            record_headers: false,
            chat: true,
            name: Some(name.to_owned()),
            ..ViewerConfig::default()
        }
    }
}

/// What a viewer has received, per kind.
#[derive(Debug, Clone)]
pub struct ViewerReport {
    /// The audio track's log.
    pub audio: TrackLog,
    /// The video track's log.
    pub video: TrackLog,
}

impl ViewerReport {
    /// The log of one kind.
    pub fn track(&self, kind: MediaKind) -> &TrackLog {
        match kind {
            MediaKind::Audio => &self.audio,
            MediaKind::Video => &self.video,
        }
    }
}

/// State the track readers write and the viewer reads.
struct Shared {
    report: Mutex<ViewerReport>,
    video_track: Mutex<Option<Arc<dyn TrackRemote>>>,
    record_headers: bool,
}

impl Shared {
    fn report(&self) -> MutexGuard<'_, ViewerReport> {
        // A reader that panicked mid-push leaves a still-usable log behind.
        self.report.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A recvonly audio + video peer that records what it receives.
pub struct Viewer {
    pc: Arc<dyn PeerConnection>,
    events: PeerEvents,
    shared: Arc<Shared>,
    session: Option<Session>,
    created: Instant,
    chat: Option<ChatMember>,
    config: ViewerConfig,
    /// VP8 packets its lossy link dropped.
    video_lost: Arc<AtomicU64>,
    /// RTCP sender reports that reached it.
    sender_reports: Arc<AtomicU64>,
}

impl Viewer {
    /// A viewer with no transceivers yet.
    pub async fn new(config: ViewerConfig) -> Result<Self> {
        let shared = Arc::new(Shared {
            report: Mutex::new(ViewerReport {
                audio: TrackLog::new(MediaKind::Audio),
                video: TrackLog::new(MediaKind::Video),
            }),
            video_track: Mutex::new(None),
            record_headers: config.record_headers,
        });
        let sink_shared = Arc::clone(&shared);
        let chat = config.chat;
        let mut codecs = default_codecs();
        if config.rtx {
            codecs.push(rtx_codec());
        }
        let video_lost = Arc::new(AtomicU64::new(0));
        let sender_reports = Arc::new(AtomicU64::new(0));
        let (pc, events) = build_peer(PeerSetup {
            codecs,
            lossy_link: Some((
                config.lose_every_nth_video.unwrap_or(0),
                Arc::clone(&video_lost),
                Arc::clone(&sender_reports),
            )),
            keyframe_requests: false,
            on_track: Some(Box::new(move |track| {
                tokio::spawn(read_track(track, Arc::clone(&sink_shared)));
            })),
            skewed_reports: None,
        })
        .await?;
        // Created before the offer, so the offer carries it (after the media sections).
        let chat = match chat {
            true => Some(open_chat_channel(&pc).await?),
            false => None,
        };
        Ok(Viewer {
            pc,
            events,
            shared,
            session: None,
            created: Instant::now(),
            chat,
            config,
            video_lost,
            sender_reports,
        })
    }

    /// Watches a WHEP endpoint (`http://host/whep/{stream}`) with the config's name and
    /// credential; returns once the answer is applied.
    pub async fn connect_whep(http: &Client, endpoint: &str, config: ViewerConfig) -> Result<Self> {
        let mut viewer = Viewer::new(config).await?;
        let offer = viewer.create_offer().await?;
        let endpoint = with_name(endpoint, viewer.config.name.as_deref())?;
        let bearer = viewer.config.bearer.clone();
        let session = post_offer(http, &endpoint, &offer, bearer.as_deref()).await?;
        viewer.accept_answer(session.answer.clone()).await?;
        viewer.session = Some(session);
        Ok(viewer)
    }

    /// Adds recvonly audio and video and returns the offer, with every candidate in it.
    pub async fn create_offer(&self) -> Result<String> {
        self.create_offer_for(&[MediaKind::Audio, MediaKind::Video])
            .await
    }

    /// Adds a recvonly transceiver for each of `kinds` and returns the offer.
    pub async fn create_offer_for(&self, kinds: &[MediaKind]) -> Result<String> {
        for kind in kinds.iter().map(|k| match k {
            MediaKind::Audio => RtpCodecKind::Audio,
            MediaKind::Video => RtpCodecKind::Video,
        }) {
            self.pc
                .add_transceiver_from_kind(
                    kind,
                    Some(RTCRtpTransceiverInit {
                        direction: RTCRtpTransceiverDirection::Recvonly,
                        ..Default::default()
                    }),
                )
                .await?;
        }
        local_offer(&self.pc, &self.events).await
    }

    /// Applies the answer to [`Viewer::create_offer`].
    pub async fn accept_answer(&self, answer: String) -> Result<()> {
        remote_answer(&self.pc, answer).await
    }

    /// Answers an offer: a remote peer's first one (loopback) or a renegotiation.
    pub async fn answer_offer(&self, offer: String) -> Result<String> {
        local_answer(&self.pc, &self.events, offer).await
    }

    /// Waits until ICE and DTLS are up.
    pub async fn wait_connected(&self, timeout: Duration) -> Result<()> {
        self.events.connected(timeout).await
    }

    /// The connection state now.
    pub fn state(&self) -> RTCPeerConnectionState {
        self.events.state()
    }

    /// Every connection state so far, in order.
    pub fn state_history(&self) -> Vec<RTCPeerConnectionState> {
        self.events.history()
    }

    /// The WHEP session, when watching over WHEP.
    pub fn session(&self) -> Option<&Session> {
        self.session.as_ref()
    }

    /// The chat member on this viewer's `chat` data channel; an error without `chat: true`.
    pub fn chat(&self) -> Result<&ChatMember> {
        self.chat
            .as_ref()
            .ok_or_else(|| ClientError::Protocol("this viewer was created without chat".into()))
    }

    /// When the viewer was created (the origin for time-to-first-keyframe).
    pub fn created(&self) -> Instant {
        self.created
    }

    /// Packets received of one kind.
    pub fn packets(&self, kind: MediaKind) -> u64 {
        self.shared.report().track(kind).packets
    }

    /// VP8 packets its lossy link dropped (`lose_every_nth_video`).
    pub fn video_lost(&self) -> u64 {
        self.video_lost.load(Ordering::Relaxed)
    }

    /// Keyframe starts received.
    pub fn keyframes(&self) -> u64 {
        self.shared.report().video.keyframes
    }

    /// A copy of everything received so far.
    pub fn report(&self) -> ViewerReport {
        self.shared.report().clone()
    }

    /// How long after creation the first keyframe arrived.
    pub fn time_to_first_keyframe(&self) -> Option<Duration> {
        self.shared
            .report()
            .video
            .time_to_first_keyframe(self.created)
    }

    /// Waits until at least `audio` audio and `video` video packets have arrived.
    pub async fn wait_for_packets(&self, audio: u64, video: u64, timeout: Duration) -> Result<()> {
        crate::wait::wait_until(
            &format!("{audio} audio and {video} video packets"),
            timeout,
            || self.packets(MediaKind::Audio) >= audio && self.packets(MediaKind::Video) >= video,
        )
        .await
        .map_err(|e| match e {
            ClientError::Timeout { what, after } => ClientError::Timeout {
                what: format!(
                    "{what} (got {} audio, {} video; state {})",
                    self.packets(MediaKind::Audio),
                    self.packets(MediaKind::Video),
                    self.state()
                ),
                after,
            },
            other => other,
        })
    }

    /// Sends a PLI on the video track (fails before any video arrived).
    pub async fn request_keyframe(&self) -> Result<()> {
        let track = self
            .shared
            .video_track
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
            .ok_or_else(|| ClientError::Protocol("no video track yet".into()))?;
        let media_ssrc = track
            .ssrcs()
            .await
            .first()
            .copied()
            .ok_or_else(|| ClientError::Protocol("video track has no SSRC".into()))?;
        track
            .write_rtcp(vec![Box::new(PictureLossIndication {
                sender_ssrc: 0,
                media_ssrc,
            })])
            .await?;
        Ok(())
    }

    /// RTCP sender reports received so far, over all its tracks.
    pub fn sender_reports(&self) -> u64 {
        self.sender_reports.load(Ordering::Relaxed)
    }

    /// Ends the WHEP session (`DELETE`, returning its status) and closes the peer.
    pub async fn disconnect(mut self, http: &Client) -> Result<u16> {
        let status = match self.session.take() {
            Some(session) => delete_session(http, &session.url).await,
            None => Err(ClientError::Protocol("not watching over WHEP".into())),
        };
        self.pc.close().await?;
        status
    }

    /// Closes the peer without telling the server.
    pub async fn close(self) -> Result<()> {
        self.pc.close().await?;
        Ok(())
    }
}

impl Drop for Viewer {
    fn drop(&mut self) {
        let pc = Arc::clone(&self.pc);
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            handle.spawn(async move {
                let _ = pc.close().await;
            });
        }
    }
}

/// Reads one remote track until it ends, recording every RTP packet.
async fn read_track(track: Arc<dyn TrackRemote>, shared: Arc<Shared>) {
    let kind = match track.kind().await {
        RtpCodecKind::Audio => MediaKind::Audio,
        _ => MediaKind::Video,
    };
    let codec = match track.ssrcs().await.first() {
        Some(&ssrc) => track.codec(ssrc).await.map(|c| c.mime_type),
        None => None,
    };
    {
        let mut report = shared.report();
        let log = match kind {
            MediaKind::Audio => &mut report.audio,
            MediaKind::Video => &mut report.video,
        };
        log.tracks_opened += 1;
        if codec.is_some() {
            log.codec = codec;
        }
    }
    if kind == MediaKind::Video {
        *shared.video_track.lock().unwrap_or_else(|e| e.into_inner()) = Some(Arc::clone(&track));
    }
    while let Some(event) = track.poll().await {
        match event {
            TrackRemoteEvent::OnRtpPacket(packet) => {
                let header = &packet.header;
                let video = kind == MediaKind::Video;
                let frame_start = video
                    && parse_descriptor(&packet.payload)
                        .is_some_and(|d| d.start_of_partition && d.partition_id == 0);
                let record = RtpRecord {
                    seq: header.sequence_number,
                    timestamp: header.timestamp,
                    ssrc: header.ssrc,
                    marker: header.marker,
                    payload_type: header.payload_type,
                    frame_start,
                    keyframe_start: video && is_keyframe_start(&packet.payload),
                    at: Instant::now(),
                };
                let mut report = shared.report();
                let log = match kind {
                    MediaKind::Audio => &mut report.audio,
                    MediaKind::Video => &mut report.video,
                };
                log.push(record, shared.record_headers);
            }
            TrackRemoteEvent::OnEnded => break,
            _ => {}
        }
    }
}
