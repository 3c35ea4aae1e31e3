//! The synthetic publisher: paces synthetic VP8 and Opus (see [`crate::synth`]) and sends it
//! either to Directo over WHIP (real ICE, DTLS, SRTP) or as plain RTP to a Janus Streaming
//! mountpoint's ports. Either way it answers keyframe requests (PLI/FIR) with a keyframe on
//! the next frame, as a browser does.

use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::{Bytes, BytesMut};
use reqwest::{Client, Url};
use rtc::media_stream::MediaStreamTrack;
use rtc::peer_connection::RTCPeerConnection;
use rtc::peer_connection::event::RTCPeerConnectionEvent;
use rtc::peer_connection::message::{RTCMessage, TaggedRTCMessage};
use rtc::peer_connection::sdp::RTCSessionDescription;
use rtc::peer_connection::state::RTCPeerConnectionState;
use rtc::rtcp::sender_report::SenderReport;
use rtc::rtp::Packet;
use rtc::rtp_transceiver::rtp_sender::{
    RTCRtpCodec, RTCRtpCodingParameters, RTCRtpEncodingParameters, RtpCodecKind,
};
use rtc::rtp_transceiver::{RTCRtpSenderId, RTCRtpTransceiverDirection, RTCRtpTransceiverInit};
use rtc::shared::marshal::{Marshal, MarshalSize};
use tokio::net::UdpSocket;

use crate::error::{LoadError, Result};
use crate::peer::{MID_URI, Peer, PeerApp, RID_URI, Role, drive, opus_codec, vp8_codec};
use crate::stamp::{SendTimes, read_stamp};
use crate::synth::{
    AUDIO_FRAME, AudioSource, OPUS_PAYLOAD_TYPE, VP8_PAYLOAD_TYPE, VideoShape, VideoSource,
};
use crate::whip::{delete_session, post_offer};
use directo_sfu::{is_keyframe_request, keyframe_request_ssrc};

/// Simulcast layers, smallest first: share of the bitrate and picture size divisor.
const SIMULCAST_LAYERS: [(f64, u16); 3] = [(0.1, 4), (0.33, 2), (1.0, 1)];
/// Their RIDs, as the SDK names them.
const SIMULCAST_RIDS: [&str; 3] = ["q", "h", "f"];

/// A late frame is sent at once; one later than this is skipped rather than sent in a burst.
const MAX_CATCH_UP: Duration = Duration::from_millis(200);

/// What the publisher did.
#[derive(Debug, Clone, Copy, Default)]
pub struct PublisherStats {
    /// RTP packets handed to the stack (audio and video).
    pub packets_sent: u64,
    /// Video frames sent.
    pub frames_sent: u64,
    /// Keyframes sent (periodic and requested).
    pub keyframes_sent: u64,
    /// PLIs and FIRs received.
    pub keyframe_requests: u64,
}

/// Paces audio and video: which packets are due at a given instant.
struct MediaClock {
    /// One source, or one per simulcast layer (smallest first).
    videos: Vec<VideoSource>,
    audio: AudioSource,
    frame_interval: Duration,
    next_video: Instant,
    next_audio: Instant,
    stats: PublisherStats,
    /// Video packets made but not yet sent, when pacing.
    paced: VecDeque<Packet>,
    /// Pacing rate in bytes a second (0: no pacing).
    pace_bytes_per_s: f64,
    /// When the pacer may send its next packet.
    next_paced: Instant,
}

impl MediaClock {
    fn new(shape: VideoShape, video_ssrcs: &[u32], audio_ssrc: u32, start: Instant) -> Self {
        let layers = video_ssrcs.len();
        let videos = video_ssrcs
            .iter()
            .enumerate()
            .map(|(index, &ssrc)| {
                // Simulcast: a quarter, half and full picture at ~10 %, 33 % and 100 % of the
                // bitrate, as the SDK's layers.
                let rank = index + SIMULCAST_LAYERS.len() - layers.min(SIMULCAST_LAYERS.len());
                let (share, divisor) = if layers > 1 {
                    SIMULCAST_LAYERS[rank]
                } else {
                    (1.0, 1)
                };
                let layer_shape = VideoShape {
                    bitrate_kbps: ((f64::from(shape.bitrate_kbps) * share) as u32).max(30),
                    ..shape
                };
                VideoSource::new(layer_shape, ssrc, VP8_PAYLOAD_TYPE)
                    .with_dimensions(640 / divisor, 360 / divisor)
            })
            .collect();
        MediaClock {
            videos,
            audio: AudioSource::new(audio_ssrc, OPUS_PAYLOAD_TYPE),
            frame_interval: shape.frame_interval(),
            next_video: start,
            next_audio: start,
            stats: PublisherStats::default(),
            paced: VecDeque::new(),
            pace_bytes_per_s: shape.pace_factor.max(0.0) * f64::from(shape.bitrate_kbps) * 125.0,
            next_paced: start,
        }
    }

    fn next_due(&self) -> Instant {
        let media = self.next_video.min(self.next_audio);
        if self.paced.is_empty() {
            media
        } else {
            media.min(self.next_paced)
        }
    }

    fn due(&mut self, now: Instant, times: &SendTimes) -> Vec<Packet> {
        let mut out = Vec::new();
        if now.saturating_duration_since(self.next_video) > MAX_CATCH_UP {
            self.next_video = now;
        }
        if now.saturating_duration_since(self.next_audio) > MAX_CATCH_UP {
            self.next_audio = now;
        }
        let pacing = self.pace_bytes_per_s > 0.0;
        while self.next_video <= now {
            for video in &mut self.videos {
                let frame = video.next_frame(now, times);
                if pacing {
                    self.paced.extend(frame);
                } else {
                    out.extend(frame);
                }
            }
            self.next_video += self.frame_interval;
            self.stats.frames_sent += 1;
        }
        // Audio is small and goes first, as a browser's pacer gives it priority.
        while self.next_audio <= now {
            out.push(self.audio.next_packet(now, times));
            self.next_audio += AUDIO_FRAME;
        }
        while pacing && self.next_paced <= now {
            let Some(packet) = self.paced.pop_front() else {
                break;
            };
            if let Some(index) = read_stamp(&packet.payload) {
                times.restamp(index, now);
            }
            // No credit for idle time: after a pause the next packet leaves at once, the ones
            // behind it at the pacing rate.
            let spacing = Duration::from_secs_f64(
                (packet.header.marshal_size() + packet.payload.len()) as f64
                    / self.pace_bytes_per_s,
            );
            self.next_paced = self.next_paced.max(now) + spacing;
            out.push(packet);
        }
        self.stats.packets_sent += out.len() as u64;
        out
    }

    /// A keyframe request for the layer on `ssrc` (every layer when it names none of them).
    fn request_keyframe(&mut self, ssrc: Option<u32>) {
        let named = ssrc.filter(|ssrc| self.videos.iter().any(|v| v.ssrc() == *ssrc));
        for video in &mut self.videos {
            if named.is_none_or(|ssrc| video.ssrc() == ssrc) {
                video.request_keyframe();
            }
        }
        self.stats.keyframe_requests += 1;
    }

    fn stats(&self) -> PublisherStats {
        PublisherStats {
            keyframes_sent: self.videos.iter().map(VideoSource::keyframes_sent).sum(),
            ..self.stats
        }
    }
}

/// What both kinds of publisher share: the media, the stamps, and the run's signals.
pub struct PublisherContext {
    /// The video to send.
    pub shape: VideoShape,
    /// The send-time table viewers read.
    pub times: Arc<SendTimes>,
    /// Set once media flows.
    pub live: Arc<AtomicBool>,
    /// Set by the run to stop the publisher.
    pub stop: Arc<AtomicBool>,
    /// The address the publisher's sockets bind to.
    pub bind_ip: IpAddr,
    /// Send the video as three simulcast layers (WHIP only).
    pub simulcast: bool,
}

struct WhipApp {
    clock: MediaClock,
    context: PublisherContext,
    video: RTCRtpSenderId,
    audio: RTCRtpSenderId,
    /// Simulcast: the negotiated MID and RID header extension ids, the video MID, and each
    /// layer's (SSRC, RID); `None` without simulcast.
    simulcast: Option<SimulcastTags>,
    connected: bool,
    error: Option<String>,
}

/// What a simulcast packet carries so the receiver can tell its layer.
struct SimulcastTags {
    mid_id: u8,
    rid_id: u8,
    mid: bytes::Bytes,
    rids: Vec<(u32, bytes::Bytes)>,
}

impl PeerApp for WhipApp {
    fn on_event(&mut self, _pc: &mut RTCPeerConnection, event: RTCPeerConnectionEvent) {
        if let RTCPeerConnectionEvent::OnConnectionStateChangeEvent(state) = event {
            match state {
                RTCPeerConnectionState::Connected => {
                    self.connected = true;
                    self.clock.next_video = Instant::now();
                    self.clock.next_audio = Instant::now();
                    self.context.live.store(true, Ordering::Release);
                }
                RTCPeerConnectionState::Failed | RTCPeerConnectionState::Closed => {
                    self.error = Some(format!("publisher peer connection {state}"));
                }
                _ => {}
            }
        }
    }

    fn on_message(&mut self, _pc: &mut RTCPeerConnection, message: TaggedRTCMessage) {
        if let RTCMessage::RtcpPacket(_, packets) = &message.message {
            for packet in packets {
                if let Some(ssrc) = keyframe_request_ssrc(packet.as_ref()) {
                    self.clock.request_keyframe(Some(ssrc));
                }
            }
        }
    }

    fn deadline(&self) -> Option<Instant> {
        self.connected.then(|| self.clock.next_due())
    }

    fn on_deadline(&mut self, pc: &mut RTCPeerConnection, now: Instant) -> Result<()> {
        for mut packet in self.clock.due(now, &self.context.times) {
            let sender = if packet.header.payload_type == VP8_PAYLOAD_TYPE {
                if let Some(tags) = &self.simulcast
                    && let Some((_, rid)) = tags.rids.iter().find(|(s, _)| *s == packet.header.ssrc)
                {
                    let header = &mut packet.header;
                    header
                        .set_extension(tags.mid_id, tags.mid.clone())
                        .and_then(|()| header.set_extension(tags.rid_id, rid.clone()))
                        .map_err(|e| LoadError::Protocol(format!("rtp extension: {e}")))?;
                }
                self.video
            } else {
                self.audio
            };
            if let Some(mut sender) = pc.rtp_sender(sender) {
                sender.write_rtp(now, packet)?;
            }
        }
        Ok(())
    }

    fn finished(&self) -> bool {
        self.error.is_some() || self.context.stop.load(Ordering::Relaxed)
    }
}

/// A track sending on `ssrcs`: one encoding, or one simulcast layer per RID in `rids`.
fn local_track(
    kind: RtpCodecKind,
    ssrcs: &[u32],
    rids: &[&str],
    codec: RTCRtpCodec,
) -> MediaStreamTrack {
    let first = ssrcs[0];
    MediaStreamTrack::new(
        format!("directo-load-{first:08x}"),
        format!("{kind}-{first:08x}"),
        kind.to_string(),
        kind,
        ssrcs
            .iter()
            .enumerate()
            .map(|(index, &ssrc)| RTCRtpEncodingParameters {
                rtp_coding_parameters: RTCRtpCodingParameters {
                    ssrc: Some(ssrc),
                    rid: rids
                        .get(index)
                        .map(|rid| (*rid).to_owned())
                        .unwrap_or_default(),
                    ..Default::default()
                },
                codec: codec.clone(),
                ..Default::default()
            })
            .collect(),
    )
}

/// The negotiated MID/RID extension ids and values a simulcast video packet must carry.
fn simulcast_tags(
    pc: &mut RTCPeerConnection,
    video: RTCRtpSenderId,
    ssrcs: &[u32],
) -> Result<SimulcastTags> {
    let missing = || LoadError::Protocol("the answer did not accept simulcast".into());
    let ids: Vec<_> = pc.get_transceivers().collect();
    let mid = ids
        .into_iter()
        .find(|&id| RTCRtpSenderId::from(id) == video)
        .and_then(|id| pc.rtp_transceiver(id).and_then(|t| t.mid().clone()))
        .ok_or_else(missing)?;
    let mut sender = pc.rtp_sender(video).ok_or_else(missing)?;
    let extensions = sender
        .get_parameters()
        .rtp_parameters
        .header_extensions
        .clone();
    let id_of = |uri: &str| {
        extensions
            .iter()
            .find(|e| e.uri == uri)
            .and_then(|e| u8::try_from(e.id).ok())
    };
    Ok(SimulcastTags {
        mid_id: id_of(MID_URI).ok_or_else(missing)?,
        rid_id: id_of(RID_URI).ok_or_else(missing)?,
        mid: bytes::Bytes::from(mid.into_bytes()),
        rids: ssrcs
            .iter()
            .zip(SIMULCAST_RIDS)
            .map(|(&ssrc, rid)| (ssrc, bytes::Bytes::from_static(rid.as_bytes())))
            .collect(),
    })
}

/// Publishes to a WHIP endpoint with `key` until `context.stop` is set.
pub async fn run_whip(
    http: Client,
    endpoint: Url,
    key: Option<String>,
    context: PublisherContext,
) -> Result<PublisherStats> {
    let mut peer = Peer::bind(Role::Publisher, context.bind_ip).await?;
    let video_ssrc = rand::random::<u32>() | 1;
    let audio_ssrc = video_ssrc ^ 0x5a5a_0000;
    let layers = if context.simulcast {
        SIMULCAST_RIDS.len()
    } else {
        1
    };
    let video_ssrcs: Vec<u32> = (0..layers as u32).map(|i| video_ssrc + 2 * i).collect();
    let mut sender = |kind, ssrcs: &[u32], codec| -> Result<RTCRtpSenderId> {
        let rids: &[&str] = if ssrcs.len() > 1 {
            &SIMULCAST_RIDS
        } else {
            &[]
        };
        let transceiver = peer.pc.add_transceiver_from_track(
            local_track(kind, ssrcs, rids, codec),
            Some(RTCRtpTransceiverInit {
                direction: RTCRtpTransceiverDirection::Sendonly,
                streams: vec![],
                send_encodings: vec![],
            }),
        )?;
        Ok(RTCRtpSenderId::from(transceiver))
    };
    let audio = sender(RtpCodecKind::Audio, &[audio_ssrc], opus_codec())?;
    let video = sender(RtpCodecKind::Video, &video_ssrcs, vp8_codec())?;
    let offer = peer.pc.create_offer(None)?;
    peer.pc.set_local_description(Instant::now(), offer)?;
    peer.add_local_candidate()?;
    let session = post_offer(&http, &endpoint, peer.local_sdp()?, key.as_deref()).await?;
    peer.pc.set_remote_description(
        Instant::now(),
        RTCSessionDescription::answer(session.answer.clone())?,
    )?;
    let simulcast = if layers > 1 {
        Some(simulcast_tags(&mut peer.pc, video, &video_ssrcs)?)
    } else {
        None
    };
    let mut app = WhipApp {
        clock: MediaClock::new(context.shape, &video_ssrcs, audio_ssrc, Instant::now()),
        context,
        video,
        audio,
        simulcast,
        connected: false,
        error: None,
    };
    let far = Instant::now() + Duration::from_secs(24 * 3600);
    let result = drive(&mut peer, &mut app, far).await;
    peer.close().await;
    delete_session(&http, &session).await;
    result?;
    match app.error {
        Some(error) => Err(LoadError::Protocol(error)),
        None => Ok(app.clock.stats()),
    }
}

/// Where a Janus RTP mountpoint listens.
#[derive(Debug, Clone, Copy)]
pub struct RtpTarget {
    /// Opus RTP port.
    pub audio: SocketAddr,
    /// VP8 RTP port.
    pub video: SocketAddr,
    /// The mountpoint's video RTCP port, for keyframe requests back to us, if configured.
    pub video_rtcp: Option<SocketAddr>,
}

/// Sends plain RTP to `target` until `context.stop` is set, answering PLI/FIR that arrive on
/// the RTCP port (Janus learns our RTCP address from the sender reports we send it).
pub async fn run_plain_rtp(target: RtpTarget, context: PublisherContext) -> Result<PublisherStats> {
    let media = UdpSocket::bind(SocketAddr::new(context.bind_ip, 0)).await?;
    let rtcp = UdpSocket::bind(SocketAddr::new(context.bind_ip, 0)).await?;
    let video_ssrc = rand::random::<u32>() | 1;
    let audio_ssrc = video_ssrc ^ 0x5a5a_0000;
    let mut clock = MediaClock::new(context.shape, &[video_ssrc], audio_ssrc, Instant::now());
    let mut next_report = Instant::now();
    let mut buf = vec![0u8; 1500];
    context.live.store(true, Ordering::Release);
    while !context.stop.load(Ordering::Relaxed) {
        let now = Instant::now();
        for packet in clock.due(now, &context.times) {
            let to = if packet.header.payload_type == VP8_PAYLOAD_TYPE {
                target.video
            } else {
                target.audio
            };
            let bytes = packet
                .marshal()
                .map_err(|e| LoadError::Protocol(format!("marshal rtp: {e}")))?;
            let _ = media.send_to(&bytes, to).await;
        }
        if let Some(rtcp_to) = target.video_rtcp
            && now >= next_report
        {
            next_report = now + Duration::from_secs(1);
            let _ = rtcp.send_to(&sender_report(video_ssrc), rtcp_to).await;
        }
        let wake = clock.next_due().min(next_report);
        tokio::select! {
            received = rtcp.recv_from(&mut buf) => {
                let (len, _) = received?;
                let mut raw = &buf[..len];
                if let Ok(packets) = rtc::rtcp::packet::unmarshal(&mut raw)
                    && packets.iter().any(|p| is_keyframe_request(p.as_ref()))
                {
                    clock.request_keyframe(None);
                }
            }
            () = tokio::time::sleep_until(wake.into()) => {}
        }
    }
    Ok(clock.stats())
}

/// A minimal sender report, enough for Janus to learn where our RTCP comes from.
fn sender_report(ssrc: u32) -> Bytes {
    let since_epoch = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    // NTP time: seconds since 1900 in the high word, the fraction in the low word.
    let seconds = since_epoch.as_secs() + 2_208_988_800;
    let fraction = (u64::from(since_epoch.subsec_nanos()) << 32) / 1_000_000_000;
    let report = SenderReport {
        ssrc,
        ntp_time: (seconds << 32) | fraction,
        ..Default::default()
    };
    report.marshal().map(BytesMut::freeze).unwrap_or_default()
}
