//! A WHIP publisher that sends real encoded media: a [`MediaSource`] (VP8 or H264 video and
//! Opus audio made by ffmpeg) packetized into RTP with the `rtc` crate's payloaders and paced
//! in real time by the frames' timestamps, as a browser's encoder would hand them out.
//!
//! The `webrtc` crate's default interceptors send RTCP sender reports (which tie each track's
//! RTP clock to the publisher's wall clock, as a browser's do) and answer NACKs from their
//! send buffer. Keyframe requests (PLI/FIR) are counted but cannot be answered: the frames
//! come from a file, so the next keyframe is the next one in it (one a second in the tests).
//!
//! For bad-network tests the publisher can drop a fraction of its video packets before they
//! reach the stack (chosen by a seeded generator: the same packets every run). Those packets
//! were never sent, so no retransmission can repair them: real loss. It can also start the
//! audio later than the video, as a browser whose microphone opens late does, and make its
//! sender reports a little off, as aiortc's are ([`SkewedReports`]).

use crate::error::{ClientError, Result};
use crate::ffmpeg::SourceVideo;
use crate::http::{Session, delete_session, post_offer};
use crate::media_source::MediaSource;
use crate::peer::{
    CodecSpec, OPUS_PAYLOAD_TYPE, PeerEvents, PeerSetup, VP8_PAYLOAD_TYPE, build_peer, local_offer,
    opus_codec, remote_answer, vp8_codec,
};
use crate::rtp_log::MediaKind;
use crate::send_tracks::SendTracks;
use crate::skewed_reports::SkewedReports;
use directo_recorder::replay::Packetizer;
use directo_sfu::Codec;
use directo_sfu::is_keyframe_request;
use reqwest::Client;
use rtc::peer_connection::configuration::media_engine::{MIME_TYPE_H264, MIME_TYPE_VP8};
use rtc::rtp_transceiver::PayloadType;
use rtc::rtp_transceiver::rtp_sender::{RTCRtpCodec, RtpCodecKind};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;
use tokio::task::JoinHandle;
use webrtc::media_stream::track_local::static_rtp::TrackLocalStaticRTP;
use webrtc::media_stream::track_local::{TrackLocal, TrackLocalEvent};
use webrtc::peer_connection::{PeerConnection, RTCPeerConnectionState};

/// The payload type H264 is offered with (Chrome's choice for packetization-mode=1 baseline).
const H264_PAYLOAD_TYPE: PayloadType = 102;
/// The H264 format a WebRTC encoder offers: constrained baseline, non-interleaved mode.
const H264_FMTP: &str = "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f";
/// Largest RTP payload, as browsers keep packets under a typical path MTU.
const RTP_MTU: usize = 1_200;

/// How a media publisher sends its source.
#[derive(Debug, Clone)]
pub struct MediaPublisherConfig {
    /// The fraction of video packets dropped before sending (0.05 for 5% loss).
    pub video_loss: f64,
    /// Start the audio this long after the video: audio frames of the first `audio_delay` of
    /// the source are not sent, the rest keep their capture times.
    pub audio_delay: Duration,
    /// Seed of the loss pattern.
    pub seed: u64,
    /// How long to wait for ICE and DTLS before giving up on sending.
    pub connect_timeout: Duration,
    /// Make the sender reports a little off, as aiortc and others send them.
    pub skewed_reports: Option<SkewedReports>,
}

impl Default for MediaPublisherConfig {
    fn default() -> Self {
        MediaPublisherConfig {
            video_loss: 0.0,
            audio_delay: Duration::ZERO,
            seed: 0x5eed,
            connect_timeout: Duration::from_secs(30),
            skewed_reports: None,
        }
    }
}

/// One frame the publisher sent (or will send).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentFrame {
    /// Audio or video.
    pub kind: MediaKind,
    /// Capture time in ms from the start of the source; also when it was sent, from the
    /// moment the connection was up.
    pub at_ms: u64,
    /// Whether it is a video keyframe.
    pub keyframe: bool,
    /// RTP packets it was cut into.
    pub packets: usize,
    /// How many of them were dropped (simulated loss).
    pub dropped: usize,
}

/// The frames a publisher has sent so far, in sending order.
#[derive(Debug, Clone, Default)]
pub struct SentMedia {
    /// Every frame sent, both kinds.
    pub frames: Vec<SentFrame>,
}

impl SentMedia {
    /// The video frames sent.
    pub fn video(&self) -> impl Iterator<Item = &SentFrame> {
        self.frames.iter().filter(|f| f.kind == MediaKind::Video)
    }

    /// The audio frames sent.
    pub fn audio(&self) -> impl Iterator<Item = &SentFrame> {
        self.frames.iter().filter(|f| f.kind == MediaKind::Audio)
    }

    /// When the first video keyframe was sent, ms.
    pub fn first_keyframe_ms(&self) -> Option<u64> {
        self.video().find(|f| f.keyframe).map(|f| f.at_ms)
    }

    /// Video frames from the first keyframe on: what a recorder can keep of a lossless stream.
    pub fn video_frames_from_first_keyframe(&self) -> usize {
        self.video().skip_while(|f| !f.keyframe).count()
    }

    /// When each video keyframe was sent, ms.
    pub fn keyframes_ms(&self) -> Vec<u64> {
        self.video()
            .filter(|f| f.keyframe)
            .map(|f| f.at_ms)
            .collect()
    }

    /// Video frames sent at or after `at_ms`.
    pub fn video_frames_from(&self, at_ms: u64) -> usize {
        self.video().filter(|f| f.at_ms >= at_ms).count()
    }

    /// Video packets dropped on purpose.
    pub fn video_packets_dropped(&self) -> usize {
        self.video().map(|f| f.dropped).sum()
    }

    /// The end of the last frame sent, ms: its capture time plus its duration (33 ms for
    /// 30 fps video, 20 ms for an Opus frame).
    pub fn end_ms(&self) -> u64 {
        self.frames
            .iter()
            .map(|f| f.at_ms + frame_duration_ms(f.kind))
            .max()
            .unwrap_or(0)
    }
}

/// How long one frame of `kind` lasts in the test sources, ms.
pub fn frame_duration_ms(kind: MediaKind) -> u64 {
    match kind {
        MediaKind::Video => 1_000 / u64::from(crate::media_source::SOURCE_FPS),
        MediaKind::Audio => 20,
    }
}

/// One frame, packetized, ready to send at its time.
struct PlannedFrame {
    sent: SentFrame,
    /// `None` for a packet dropped on purpose (its sequence number is still used up).
    packets: Vec<Option<rtc::rtp::Packet>>,
}

/// What the sending task has done; shared with the publisher.
#[derive(Default)]
struct Progress {
    /// Frames of the plan fully handed to the stack.
    frames_done: AtomicUsize,
    plis_or_firs: AtomicU64,
    write_errors: AtomicU64,
}

/// A sendonly Opus + VP8/H264 peer sending a real encoded source.
pub struct MediaPublisher {
    pc: Arc<dyn PeerConnection>,
    events: PeerEvents,
    plan: Arc<Vec<PlannedFrame>>,
    progress: Arc<Progress>,
    tasks: Vec<JoinHandle<()>>,
    sender: Option<JoinHandle<()>>,
    session: Option<Session>,
}

fn h264_codec() -> RTCRtpCodec {
    RTCRtpCodec {
        mime_type: MIME_TYPE_H264.to_owned(),
        sdp_fmtp_line: H264_FMTP.to_owned(),
        ..vp8_codec()
    }
}

/// A small deterministic generator for the loss pattern.
fn xorshift(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

/// Packetizes the whole source up front, so sending is only pacing.
fn plan(
    source: &MediaSource,
    config: &MediaPublisherConfig,
    audio_ssrc: u32,
    video_ssrc: u32,
) -> Result<Vec<PlannedFrame>> {
    let video_codec = match source.video() {
        SourceVideo::Vp8 => Codec::Vp8,
        SourceVideo::Vp9 => Codec::Vp9,
        SourceVideo::H264 => Codec::H264,
    };
    let mut audio = Packetizer::new(Codec::Opus, audio_ssrc, rand::random(), rand::random());
    let mut video = Packetizer::new(video_codec, video_ssrc, rand::random(), rand::random());
    audio.mtu = RTP_MTU;
    video.mtu = RTP_MTU;
    let mut rng = config.seed.max(1);
    let first_video = source
        .frames()
        .iter()
        .find(|f| f.kind == directo_sfu::MediaKind::Video)
        .map_or(0, |f| f.at_ms);
    let audio_from = first_video + config.audio_delay.as_millis() as u64;
    let mut plan = Vec::new();
    for frame in source.frames() {
        let (kind, packetizer) = match frame.kind {
            directo_sfu::MediaKind::Audio if frame.at_ms < audio_from => continue,
            directo_sfu::MediaKind::Audio => (MediaKind::Audio, &mut audio),
            directo_sfu::MediaKind::Video => (MediaKind::Video, &mut video),
        };
        let packets = packetizer
            .packetize(frame)
            .map_err(|e| ClientError::Protocol(format!("cannot packetize the source: {e}")))?;
        let count = packets.len();
        let packets: Vec<Option<rtc::rtp::Packet>> = packets
            .into_iter()
            .map(|packet| {
                let roll = (xorshift(&mut rng) % 1_000_000) as f64 / 1_000_000.0;
                let drop = kind == MediaKind::Video && roll < config.video_loss;
                (!drop).then_some(packet)
            })
            .collect();
        let dropped = packets.iter().filter(|p| p.is_none()).count();
        plan.push(PlannedFrame {
            sent: SentFrame {
                kind,
                at_ms: frame.at_ms,
                keyframe: kind == MediaKind::Video && frame.keyframe,
                packets: count,
                dropped,
            },
            packets,
        });
    }
    Ok(plan)
}

impl MediaPublisher {
    /// Publishes `source` to a WHIP endpoint (`http://host/whip/{stream}`) with `key`; returns
    /// once the answer is applied. Sending starts as soon as ICE and DTLS complete.
    pub async fn connect_whip(
        http: &Client,
        endpoint: &str,
        key: Option<&str>,
        source: &MediaSource,
        config: MediaPublisherConfig,
    ) -> Result<Self> {
        let (video_codec, video_pt) = match source.video() {
            SourceVideo::Vp8 => (vp8_codec(), VP8_PAYLOAD_TYPE),
            SourceVideo::H264 => (h264_codec(), H264_PAYLOAD_TYPE),
            SourceVideo::Vp9 => {
                return Err(ClientError::Protocol(
                    "the media publisher offers VP8 or H264; make its source with one of them"
                        .into(),
                ));
            }
        };
        let (pc, events) = build_peer(PeerSetup {
            codecs: vec![
                CodecSpec {
                    codec: opus_codec(),
                    payload_type: OPUS_PAYLOAD_TYPE,
                    kind: RtpCodecKind::Audio,
                },
                CodecSpec {
                    codec: video_codec.clone(),
                    payload_type: video_pt,
                    kind: RtpCodecKind::Video,
                },
            ],
            keyframe_requests: true,
            on_track: None,
            lossy_link: None,
            skewed_reports: config.skewed_reports,
        })
        .await?;
        let SendTracks {
            audio,
            video,
            audio_ssrc,
            video_ssrc,
        } = SendTracks::add(&pc, video_codec, "directo-media").await?;
        let plan = Arc::new(plan(source, &config, audio_ssrc, video_ssrc)?);
        let offer = local_offer(&pc, &events).await?;
        let session = post_offer(http, endpoint, &offer, key).await?;
        remote_answer(&pc, session.answer.clone()).await?;

        let progress = Arc::new(Progress::default());
        let sending = Sending {
            pc: Arc::clone(&pc),
            events: events.clone(),
            audio,
            video: Arc::clone(&video),
            plan: Arc::clone(&plan),
            progress: Arc::clone(&progress),
            connect_timeout: config.connect_timeout,
            video_default_pt: video_pt,
        };
        let sender = tokio::spawn(sending.run());
        let feedback = tokio::spawn(count_keyframe_requests(
            video,
            events.clone(),
            Arc::clone(&progress),
        ));
        Ok(MediaPublisher {
            pc,
            events,
            plan,
            progress,
            tasks: vec![feedback],
            sender: Some(sender),
            session: Some(session),
        })
    }

    /// Waits until ICE and DTLS are up.
    pub async fn wait_connected(&self, timeout: Duration) -> Result<()> {
        self.events.connected(timeout).await
    }

    /// The connection state now.
    pub fn state(&self) -> RTCPeerConnectionState {
        self.events.state()
    }

    /// The WHIP session.
    pub fn session(&self) -> Option<&Session> {
        self.session.as_ref()
    }

    /// Everything the source holds, as it will have been sent once sending is done.
    pub fn planned(&self) -> SentMedia {
        SentMedia {
            frames: self.plan.iter().map(|f| f.sent.clone()).collect(),
        }
    }

    /// The frames sent so far.
    pub fn sent(&self) -> SentMedia {
        let done = self.progress.frames_done.load(Ordering::Acquire);
        SentMedia {
            frames: self.plan[..done.min(self.plan.len())]
                .iter()
                .map(|f| f.sent.clone())
                .collect(),
        }
    }

    /// Waits until `at_ms` of the source has been sent.
    pub async fn wait_sent_until(&self, at_ms: u64, timeout: Duration) -> Result<()> {
        crate::wait::wait_until(
            &format!("the publisher to send {at_ms} ms of its source"),
            timeout,
            || self.sent().frames.last().is_some_and(|f| f.at_ms >= at_ms),
        )
        .await
    }

    /// Waits until the whole source has been sent; returns what was sent.
    pub async fn wait_done(&mut self, timeout: Duration) -> Result<SentMedia> {
        if let Some(sender) = self.sender.take() {
            match tokio::time::timeout(timeout, sender).await {
                Ok(_) => {}
                Err(_) => {
                    return Err(ClientError::timeout(
                        "the publisher to send its whole source",
                        timeout,
                    ));
                }
            }
        }
        let sent = self.sent();
        if sent.frames.len() < self.plan.len() {
            return Err(ClientError::Protocol(format!(
                "the publisher stopped after {} of {} frames (connection {})",
                sent.frames.len(),
                self.plan.len(),
                self.state()
            )));
        }
        Ok(sent)
    }

    /// PLIs plus FIRs received (they cannot be answered: the keyframes are the source's).
    pub fn keyframe_requests(&self) -> u64 {
        self.progress.plis_or_firs.load(Ordering::Relaxed)
    }

    /// RTP writes the stack refused.
    pub fn write_errors(&self) -> u64 {
        self.progress.write_errors.load(Ordering::Relaxed)
    }

    /// Ends the WHIP session (`DELETE`, returning its status) and closes the peer.
    pub async fn disconnect(mut self, http: &Client) -> Result<u16> {
        self.stop_tasks();
        let status = match self.session.take() {
            Some(session) => delete_session(http, &session.url).await,
            None => Err(ClientError::Protocol("no WHIP session".into())),
        };
        self.pc.close().await?;
        status
    }

    /// Waits until the whole source has been sent, lets its last packets land and ends the
    /// session with a `DELETE` that must succeed; returns what was sent and how many keyframe
    /// requests came meanwhile ([`Self::keyframe_requests`]).
    pub async fn finish(mut self, http: &Client, timeout: Duration) -> Result<(SentMedia, u64)> {
        let sent = self.wait_done(timeout).await?;
        let keyframe_requests = self.keyframe_requests();
        // The last packets are in flight on loopback; a DELETE now could overtake them.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let status = self.disconnect(http).await?;
        if status != 200 && status != 204 {
            return Err(ClientError::Protocol(format!(
                "DELETE of the WHIP session answered {status}"
            )));
        }
        Ok((sent, keyframe_requests))
    }

    /// Stops sending and closes the peer without telling the server.
    pub async fn close(mut self) -> Result<()> {
        self.stop_tasks();
        self.pc.close().await?;
        Ok(())
    }

    fn stop_tasks(&mut self) {
        for task in self.tasks.drain(..).chain(self.sender.take()) {
            task.abort();
        }
    }
}

impl Drop for MediaPublisher {
    fn drop(&mut self) {
        self.stop_tasks();
        let pc = Arc::clone(&self.pc);
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            handle.spawn(async move {
                let _ = pc.close().await;
            });
        }
    }
}

/// The task that sends the plan in real time.
struct Sending {
    pc: Arc<dyn PeerConnection>,
    events: PeerEvents,
    audio: Arc<TrackLocalStaticRTP>,
    video: Arc<TrackLocalStaticRTP>,
    plan: Arc<Vec<PlannedFrame>>,
    progress: Arc<Progress>,
    connect_timeout: Duration,
    video_default_pt: PayloadType,
}

impl Sending {
    async fn run(self) {
        if self.events.connected(self.connect_timeout).await.is_err() {
            return;
        }
        let (audio_pt, video_pt) = self.payload_types().await;
        let start = tokio::time::Instant::now();
        let origin = self.plan.first().map_or(0, |f| f.sent.at_ms);
        for (index, frame) in self.plan.iter().enumerate() {
            tokio::time::sleep_until(start + Duration::from_millis(frame.sent.at_ms - origin))
                .await;
            let (track, payload_type) = match frame.sent.kind {
                MediaKind::Audio => (&self.audio, audio_pt),
                MediaKind::Video => (&self.video, video_pt),
            };
            for packet in frame.packets.iter().flatten() {
                let mut packet = packet.clone();
                packet.header.payload_type = payload_type;
                if track.write_rtp(packet).await.is_err() {
                    self.progress.write_errors.fetch_add(1, Ordering::Relaxed);
                }
            }
            self.progress
                .frames_done
                .store(index + 1, Ordering::Release);
            if matches!(
                self.events.state(),
                RTCPeerConnectionState::Closed | RTCPeerConnectionState::Failed
            ) {
                return;
            }
        }
    }

    /// The payload types the answer settled on (ours, unless the answerer remapped them).
    async fn payload_types(&self) -> (PayloadType, PayloadType) {
        let mut audio = OPUS_PAYLOAD_TYPE;
        let mut video = self.video_default_pt;
        for sender in self.pc.get_senders().await {
            let Ok(parameters) = sender.get_parameters().await else {
                continue;
            };
            for codec in &parameters.rtp_parameters.codecs {
                let mime = codec.rtp_codec.mime_type.to_ascii_lowercase();
                if mime == MIME_TYPE_VP8.to_ascii_lowercase()
                    || mime == MIME_TYPE_H264.to_ascii_lowercase()
                {
                    video = codec.payload_type;
                } else if mime == opus_codec().mime_type.to_ascii_lowercase() {
                    audio = codec.payload_type;
                }
            }
        }
        (audio, video)
    }
}

/// Counts PLI/FIR on the video track; a file cannot make a keyframe on demand.
async fn count_keyframe_requests(
    video: Arc<TrackLocalStaticRTP>,
    events: PeerEvents,
    progress: Arc<Progress>,
) {
    loop {
        match video.poll().await {
            Some(TrackLocalEvent::OnRtcpPacket(packets)) => {
                let requests = packets
                    .iter()
                    .filter(|p| is_keyframe_request(p.as_ref()))
                    .count();
                progress
                    .plis_or_firs
                    .fetch_add(requests as u64, Ordering::Relaxed);
            }
            Some(_) => {}
            // Not bound yet (before DTLS) or unbound: look again unless the peer is gone.
            None => {
                if events.state() == RTCPeerConnectionState::Closed {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}
