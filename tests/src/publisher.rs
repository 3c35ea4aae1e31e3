//! A WHIP publisher that sends synthetic Opus and VP8 the way a browser would.
//!
//! Video is written at the RTP level so the test controls every descriptor: 30 frames a second,
//! each cut into a few ~1000-byte packets with valid VP8 payload descriptors, the marker on the
//! last packet, a keyframe at the start, every `keyframe_interval`, and on the frame after any
//! PLI or FIR arrives. Audio is a 20 ms Opus packet (a valid silence frame) every 20 ms.
//! With `chat` on, the offer also carries a `chat` data channel: the presenter's chat.

use crate::chat::ChatMember;
use crate::error::{ClientError, Result};
use crate::http::{Session, delete_session, post_offer, with_name};
use crate::peer::{
    OPUS_PAYLOAD_TYPE, PeerEvents, PeerSetup, VP8_PAYLOAD_TYPE, build_peer, default_codecs,
    local_offer, open_chat_channel, opus_codec, remote_answer, vp8_codec,
};
use crate::rtp_log::RtpRecord;
use crate::send_tracks::SendTracks;
use crate::vp8::Vp8Packetizer;
use bytes::Bytes;
use directo_sfu::is_keyframe_request;
use reqwest::Client;
use rtc::peer_connection::configuration::media_engine::MIME_TYPE_VP8;
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::task::JoinHandle;
use tokio::time::MissedTickBehavior;
use webrtc::media_stream::track_local::static_rtp::TrackLocalStaticRTP;
use webrtc::media_stream::track_local::{TrackLocal, TrackLocalEvent};
use webrtc::peer_connection::{PeerConnection, RTCPeerConnectionState};

/// An Opus packet encoding 20 ms of silence (the frame browsers send during DTX).
const OPUS_SILENCE: [u8; 3] = [0xf8, 0xff, 0xfe];
/// Opus samples per 20 ms packet at 48 kHz.
const OPUS_SAMPLES_PER_PACKET: u32 = 960;

/// How a publisher shapes its synthetic media.
#[derive(Debug, Clone)]
pub struct PublisherConfig {
    /// Video frames per second.
    pub fps: u32,
    /// Time between unsolicited keyframes (a PLI or FIR also gets one, on the next frame).
    pub keyframe_interval: Duration,
    /// Ignore PLI and FIR: keyframes only every `keyframe_interval`, as an encoder that does
    /// not honour requests.
    pub ignore_keyframe_requests: bool,
    /// Size of each video RTP payload, in bytes.
    pub payload_size: usize,
    /// Packets per keyframe.
    pub keyframe_packets: usize,
    /// Packets per inter frame.
    pub delta_packets: usize,
    /// Width written into keyframe headers.
    pub width: u16,
    /// Height written into keyframe headers.
    pub height: u16,
    /// How long to wait for ICE and DTLS before giving up on sending.
    pub connect_timeout: Duration,
    /// Offer a `chat` data channel too.
    pub chat: bool,
    /// The display name, sent as `?name=` on WHIP.
    pub name: Option<String>,
}

impl Default for PublisherConfig {
    fn default() -> Self {
        PublisherConfig {
            fps: 30,
            keyframe_interval: Duration::from_secs(2),
            ignore_keyframe_requests: false,
            payload_size: 1000,
            keyframe_packets: 6,
            delta_packets: 3,
            width: 640,
            height: 480,
            connect_timeout: Duration::from_secs(30),
            chat: false,
            name: None,
        }
    }
}

impl PublisherConfig {
    /// A keyframe first, then only when asked for (no scheduled ones within a test): any
    /// keyframe after the first is the answer to a request.
    pub fn keyframes_on_request() -> Self {
        PublisherConfig {
            keyframe_interval: Duration::from_secs(600),
            ..PublisherConfig::default()
        }
    }
}

/// What the publisher has sent and been asked for; shared with its tasks.
#[derive(Default)]
struct Counters {
    keyframe_requested: AtomicBool,
    plis: AtomicU64,
    firs: AtomicU64,
    frames: AtomicU64,
    keyframes: AtomicU64,
    video_packets: AtomicU64,
    audio_packets: AtomicU64,
    write_errors: AtomicU64,
    /// The sequence number of each keyframe's first packet, in sending order.
    keyframe_starts: Mutex<Vec<u16>>,
}

/// A sendonly Opus + VP8 peer with synthetic media.
pub struct Publisher {
    pc: Arc<dyn PeerConnection>,
    events: PeerEvents,
    video: Arc<TrackLocalStaticRTP>,
    audio: Arc<TrackLocalStaticRTP>,
    video_ssrc: u32,
    audio_ssrc: u32,
    counters: Arc<Counters>,
    config: PublisherConfig,
    tasks: Vec<JoinHandle<()>>,
    session: Option<Session>,
    chat: Option<ChatMember>,
}

impl Publisher {
    /// A publisher with its two sendonly tracks added, not yet negotiated.
    pub async fn new(config: PublisherConfig) -> Result<Self> {
        let (pc, events) = build_peer(PeerSetup {
            codecs: default_codecs(),
            keyframe_requests: true,
            on_track: None,
            lossy_link: None,
            skewed_reports: None,
        })
        .await?;
        let SendTracks {
            audio,
            video,
            audio_ssrc,
            video_ssrc,
        } = SendTracks::add(&pc, vp8_codec(), "directo-test").await?;
        let chat = match config.chat {
            true => Some(open_chat_channel(&pc).await?),
            false => None,
        };
        Ok(Publisher {
            pc,
            events,
            video,
            audio,
            video_ssrc,
            audio_ssrc,
            counters: Arc::new(Counters::default()),
            config,
            tasks: Vec::new(),
            session: None,
            chat,
        })
    }

    /// Publishes to a WHIP endpoint (`http://host/whip/{stream}`) with `key` and the config's
    /// name; returns once the answer is applied. Media starts as soon as ICE and DTLS complete.
    pub async fn connect_whip(
        http: &Client,
        endpoint: &str,
        key: Option<&str>,
        config: PublisherConfig,
    ) -> Result<Self> {
        let mut publisher = Publisher::new(config).await?;
        let offer = publisher.create_offer().await?;
        let endpoint = with_name(endpoint, publisher.config.name.as_deref())?;
        let session = post_offer(http, &endpoint, &offer, key).await?;
        publisher.accept_answer(session.answer.clone()).await?;
        publisher.session = Some(session);
        Ok(publisher)
    }

    /// The SDP offer, with every candidate in it.
    pub async fn create_offer(&self) -> Result<String> {
        local_offer(&self.pc, &self.events).await
    }

    /// Applies the answer and starts sending once connected.
    pub async fn accept_answer(&mut self, answer: String) -> Result<()> {
        remote_answer(&self.pc, answer).await?;
        self.start_media();
        Ok(())
    }

    fn start_media(&mut self) {
        let media = MediaLoop {
            pc: Arc::clone(&self.pc),
            events: self.events.clone(),
            video: Arc::clone(&self.video),
            audio: Arc::clone(&self.audio),
            video_ssrc: self.video_ssrc,
            audio_ssrc: self.audio_ssrc,
            counters: Arc::clone(&self.counters),
            config: self.config.clone(),
        };
        self.tasks.push(tokio::spawn(media.run()));
        self.tasks.push(tokio::spawn(read_keyframe_requests(
            Arc::clone(&self.video),
            self.events.clone(),
            Arc::clone(&self.counters),
        )));
    }

    /// Waits until ICE and DTLS are up.
    pub async fn wait_connected(&self, timeout: Duration) -> Result<()> {
        self.events.connected(timeout).await
    }

    /// The connection state now.
    pub fn state(&self) -> RTCPeerConnectionState {
        self.events.state()
    }

    /// The WHIP session, when published over WHIP.
    pub fn session(&self) -> Option<&Session> {
        self.session.as_ref()
    }

    /// The presenter's chat member on the `chat` data channel; an error without `chat: true`.
    pub fn chat(&self) -> Result<&ChatMember> {
        self.chat
            .as_ref()
            .ok_or_else(|| ClientError::Protocol("this publisher was created without chat".into()))
    }

    /// PLIs plus FIRs received.
    pub fn keyframe_requests(&self) -> u64 {
        self.plis() + self.firs()
    }

    /// PLIs received.
    pub fn plis(&self) -> u64 {
        self.counters.plis.load(Ordering::Relaxed)
    }

    /// FIRs received.
    pub fn firs(&self) -> u64 {
        self.counters.firs.load(Ordering::Relaxed)
    }

    /// Video frames sent.
    pub fn frames_sent(&self) -> u64 {
        self.counters.frames.load(Ordering::Relaxed)
    }

    /// Keyframes sent.
    pub fn keyframes_sent(&self) -> u64 {
        self.counters.keyframes.load(Ordering::Relaxed)
    }

    /// Video RTP packets handed to the stack.
    pub fn video_packets_sent(&self) -> u64 {
        self.counters.video_packets.load(Ordering::Relaxed)
    }

    /// Audio RTP packets handed to the stack.
    pub fn audio_packets_sent(&self) -> u64 {
        self.counters.audio_packets.load(Ordering::Relaxed)
    }

    /// RTP writes the stack refused.
    pub fn write_errors(&self) -> u64 {
        self.counters.write_errors.load(Ordering::Relaxed)
    }

    /// Whether a viewer's video, whose first packet was `first`, began at one of this
    /// publisher's keyframes, as Directo starts every new viewer: `first` starts a keyframe,
    /// or it lies within the keyframe and the three frames after it, the viewer's own stack
    /// having dropped the packets before. webrtc-rs drops SRTP that arrives before it has
    /// finished its side of the DTLS handshake, and Directo may send a viewer's first keyframe
    /// as soon as its own side is done. A new viewer gets the publisher's own sequence numbers,
    /// which is what makes the start checkable; a server that started a viewer anywhere in a
    /// group of pictures would land outside that window nearly every time.
    pub fn began_at_a_keyframe(&self, first: &RtpRecord) -> bool {
        if first.keyframe_start {
            return true;
        }
        let window = self.config.keyframe_packets + 3 * self.config.delta_packets;
        self.counters
            .keyframe_starts
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .iter()
            .any(|&start| usize::from(first.seq.wrapping_sub(start)) < window)
    }

    /// The video SSRC this publisher sends with.
    pub fn video_ssrc(&self) -> u32 {
        self.video_ssrc
    }

    /// Ends the WHIP session (`DELETE`, returning its status) and closes the peer.
    pub async fn disconnect(mut self, http: &Client) -> Result<u16> {
        let session = self.session.take();
        self.stop_tasks();
        let status = match session {
            Some(session) => delete_session(http, &session.url).await,
            None => Err(ClientError::Protocol("not published over WHIP".into())),
        };
        self.pc.close().await?;
        status
    }

    /// Stops sending and closes the peer without telling the server (as a crashed browser would).
    pub async fn close(mut self) -> Result<()> {
        self.stop_tasks();
        self.pc.close().await?;
        Ok(())
    }

    fn stop_tasks(&mut self) {
        for task in self.tasks.drain(..) {
            task.abort();
        }
    }
}

impl Drop for Publisher {
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

/// Counts PLI/FIR on the video track and flags the next frame as a keyframe.
async fn read_keyframe_requests(
    video: Arc<TrackLocalStaticRTP>,
    events: PeerEvents,
    counters: Arc<Counters>,
) {
    loop {
        match video.poll().await {
            Some(TrackLocalEvent::OnRtcpPacket(packets)) => {
                for packet in packets.iter().filter(|p| is_keyframe_request(p.as_ref())) {
                    if packet.as_any().is::<PictureLossIndication>() {
                        counters.plis.fetch_add(1, Ordering::Relaxed);
                    } else {
                        counters.firs.fetch_add(1, Ordering::Relaxed);
                    }
                    counters.keyframe_requested.store(true, Ordering::Relaxed);
                }
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

/// The task that writes the synthetic media.
struct MediaLoop {
    pc: Arc<dyn PeerConnection>,
    events: PeerEvents,
    video: Arc<TrackLocalStaticRTP>,
    audio: Arc<TrackLocalStaticRTP>,
    video_ssrc: u32,
    audio_ssrc: u32,
    counters: Arc<Counters>,
    config: PublisherConfig,
}

impl MediaLoop {
    async fn run(self) {
        if self
            .events
            .connected(self.config.connect_timeout)
            .await
            .is_err()
        {
            return;
        }
        let (video_pt, audio_pt) = self.payload_types().await;
        let mut packetizer = Vp8Packetizer::new(
            self.config.width,
            self.config.height,
            self.config.payload_size,
            rand::random(),
        );
        let mut video_seq: u16 = rand::random();
        let mut audio_seq: u16 = rand::random();
        let video_ts_base: u32 = rand::random();
        let mut audio_ts: u32 = rand::random();

        let frame_period = Duration::from_secs(1) / self.config.fps.max(1);
        let mut video_tick = tokio::time::interval(frame_period);
        video_tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut audio_tick = tokio::time::interval(Duration::from_millis(20));
        audio_tick.set_missed_tick_behavior(MissedTickBehavior::Delay);

        let start = Instant::now();
        let mut last_keyframe: Option<Instant> = None;
        loop {
            tokio::select! {
                _ = video_tick.tick() => {
                    let now = Instant::now();
                    let requested = self.counters.keyframe_requested.swap(false, Ordering::Relaxed)
                        && !self.config.ignore_keyframe_requests;
                    let due = last_keyframe
                        .is_none_or(|at| now.duration_since(at) >= self.config.keyframe_interval);
                    let keyframe = requested || due;
                    if keyframe {
                        last_keyframe = Some(now);
                    }
                    let packets = if keyframe {
                        self.config.keyframe_packets
                    } else {
                        self.config.delta_packets
                    };
                    // Capture time on the 90 kHz clock, as a browser stamps frames.
                    let elapsed_90k = (now.duration_since(start).as_micros() * 9 / 100) as u32;
                    let timestamp = video_ts_base.wrapping_add(elapsed_90k);
                    let payloads = packetizer.frame(keyframe, packets);
                    if keyframe {
                        self.counters
                            .keyframe_starts
                            .lock()
                            .unwrap_or_else(|poisoned| poisoned.into_inner())
                            .push(video_seq);
                    }
                    let last = payloads.len() - 1;
                    for (index, payload) in payloads.into_iter().enumerate() {
                        let packet = rtp_packet(video_pt, video_seq, timestamp, self.video_ssrc, index == last, payload);
                        video_seq = video_seq.wrapping_add(1);
                        self.write(&self.video, packet, &self.counters.video_packets).await;
                    }
                    self.counters.frames.fetch_add(1, Ordering::Relaxed);
                    if keyframe {
                        self.counters.keyframes.fetch_add(1, Ordering::Relaxed);
                    }
                }
                _ = audio_tick.tick() => {
                    let packet = rtp_packet(audio_pt, audio_seq, audio_ts, self.audio_ssrc, false, Bytes::from_static(&OPUS_SILENCE));
                    audio_seq = audio_seq.wrapping_add(1);
                    audio_ts = audio_ts.wrapping_add(OPUS_SAMPLES_PER_PACKET);
                    self.write(&self.audio, packet, &self.counters.audio_packets).await;
                }
            }
            if matches!(
                self.events.state(),
                RTCPeerConnectionState::Closed | RTCPeerConnectionState::Failed
            ) {
                return;
            }
        }
    }

    async fn write(&self, track: &TrackLocalStaticRTP, packet: rtc::rtp::Packet, sent: &AtomicU64) {
        match track.write_rtp(packet).await {
            Ok(()) => sent.fetch_add(1, Ordering::Relaxed),
            Err(_) => self.counters.write_errors.fetch_add(1, Ordering::Relaxed),
        };
    }

    /// The payload types the answer settled on (ours, unless the answerer remapped them).
    async fn payload_types(&self) -> (u8, u8) {
        let mut video = VP8_PAYLOAD_TYPE;
        let mut audio = OPUS_PAYLOAD_TYPE;
        for sender in self.pc.get_senders().await {
            let Ok(parameters) = sender.get_parameters().await else {
                continue;
            };
            for codec in &parameters.rtp_parameters.codecs {
                let mime = codec.rtp_codec.mime_type.to_ascii_lowercase();
                if mime == MIME_TYPE_VP8.to_ascii_lowercase() {
                    video = codec.payload_type;
                } else if mime == opus_codec().mime_type.to_ascii_lowercase() {
                    audio = codec.payload_type;
                }
            }
        }
        (video, audio)
    }
}

fn rtp_packet(
    payload_type: u8,
    sequence_number: u16,
    timestamp: u32,
    ssrc: u32,
    marker: bool,
    payload: Bytes,
) -> rtc::rtp::Packet {
    rtc::rtp::Packet {
        header: rtc::rtp::Header {
            version: 2,
            marker,
            payload_type,
            sequence_number,
            timestamp,
            ssrc,
            ..Default::default()
        },
        payload,
    }
}
