//! A synthetic viewer: joins over WHEP (or a Janus mountpoint), receives audio and video,
//! and counts what arrived: packets expected, received and lost per track (from the
//! sequence numbers the server wrote, as an RTCP receiver report does), the forwarding delay
//! of every stamped packet, and the time from its join request to its first keyframe.
//!
//! Like a browser it sends transport-wide congestion control feedback every 100 ms when the
//! server negotiates it, and offers RTX for VP8 so that the server can probe its link before
//! moving it up a simulcast layer (probe packets come over RTX; with no NACKs sent, nothing
//! else does). It answers nothing else itself beyond what its interceptors do,
//! except PLIs, as a browser sends them: at once when video arrives that it cannot start
//! decoding (inter frames before any keyframe, as a server that does not gate on keyframes
//! forwards them), and when video has not started or has stalled for a while.

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use reqwest::{Client, Url};
use rtc::peer_connection::RTCPeerConnection;
use rtc::peer_connection::event::{RTCPeerConnectionEvent, RTCTrackEvent};
use rtc::peer_connection::message::{RTCMessage, TaggedRTCMessage};
use rtc::peer_connection::sdp::RTCSessionDescription;
use rtc::peer_connection::state::RTCPeerConnectionState;
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::rtcp::receiver_report::ReceiverReport;
use rtc::rtcp::reception_report::ReceptionReport;
use rtc::rtp_transceiver::rtp_sender::RtpCodecKind;
use rtc::rtp_transceiver::{RTCRtpReceiverId, RTCRtpTransceiverDirection, RTCRtpTransceiverInit};

use crate::error::Result;
use crate::histogram::Histogram;
use crate::janus::{JanusSession, KEEPALIVE_INTERVAL};
use crate::peer::{Peer, PeerApp, Role, drive};
use crate::stamp::{SendTimes, read_stamp};
use crate::synth::{
    RTX_PAYLOAD_TYPE, VP8_PAYLOAD_TYPE, is_vp8_keyframe_start, keyframe_width, vp8_picture,
};
use crate::twcc_feedback::{FEEDBACK_INTERVAL, TwccRecorder, negotiated_id};
use crate::whip::{Session, delete_session, post_offer};

/// How long a viewer waits for video before asking for a keyframe (and again after that).
const KEYFRAME_WAIT: Duration = Duration::from_millis(1500);

/// The shortest time between two keyframe requests of one viewer.
const PLI_MIN_INTERVAL: Duration = Duration::from_millis(300);

/// How a viewer joins.
#[derive(Debug, Clone)]
pub enum Join {
    /// WHEP: `POST` an offer to this endpoint.
    Whep(Url),
    /// Janus: watch this mountpoint through the HTTP API at `api`.
    Janus {
        /// The Janus HTTP API base, e.g. `http://127.0.0.1:8088/janus`.
        api: Url,
        /// The Streaming plugin mountpoint id.
        mountpoint: u64,
    },
}

/// Sequence-number accounting of one received track.
#[derive(Debug, Clone, Default)]
pub struct TrackCounter {
    first: Option<u64>,
    highest: u64,
    last_seq: u16,
    /// Which of the last 1024 extended sequence numbers arrived (for duplicates).
    seen: Box<[u64; 16]>,
    /// Distinct packets received.
    pub received: u64,
    /// Packets received more than once (retransmissions of packets that were not lost).
    pub duplicates: u64,
}

impl TrackCounter {
    /// Records a packet with RTP sequence number `seq`; returns false for a duplicate.
    pub fn record(&mut self, seq: u16) -> bool {
        let extended = match self.first {
            None => {
                let start = (1u64 << 16) + u64::from(seq);
                self.first = Some(start);
                self.highest = start;
                self.last_seq = seq;
                start
            }
            Some(_) => {
                let delta = seq.wrapping_sub(self.last_seq) as i16;
                let extended = self.highest.wrapping_add_signed(i64::from(delta));
                if extended > self.highest {
                    let advance = extended - self.highest;
                    if advance >= 1024 {
                        self.seen.fill(0);
                    } else {
                        for clear in self.highest + 1..=extended {
                            self.seen[(clear % 1024 / 64) as usize] &= !(1 << (clear % 64));
                        }
                    }
                    self.highest = extended;
                    self.last_seq = seq;
                }
                extended
            }
        };
        if self.highest - extended >= 1024 {
            self.received += 1;
            return true;
        }
        let word = &mut self.seen[(extended % 1024 / 64) as usize];
        let bit = 1 << (extended % 64);
        if *word & bit != 0 {
            self.duplicates += 1;
            return false;
        }
        *word |= bit;
        self.received += 1;
        true
    }

    /// The highest sequence number seen, extended (for receiver reports).
    pub fn highest_extended(&self) -> u64 {
        self.highest
    }

    /// Packets the sender numbered between the first and the highest received.
    pub fn expected(&self) -> u64 {
        self.first.map_or(0, |first| self.highest - first + 1)
    }

    /// Expected minus received (never negative).
    pub fn lost(&self) -> u64 {
        self.expected().saturating_sub(self.received)
    }
}

/// Everything one viewer measured.
#[derive(Debug, Clone, Default)]
pub struct ViewerStats {
    /// ICE and DTLS came up.
    pub connected: bool,
    /// From the join request to the first keyframe's first packet.
    pub join: Option<Duration>,
    /// From the join request to ICE and DTLS being up.
    pub connect: Option<Duration>,
    /// Audio packet accounting.
    pub audio: TrackCounter,
    /// Video packet accounting.
    pub video: TrackCounter,
    /// Forwarding delay of every stamped packet the publisher sent once this viewer was
    /// connected (publisher send to viewer receive). Older ones came from the server's cache
    /// when the viewer was started on a recent keyframe: their wait is part of the join.
    pub latency: Histogram,
    /// Stamped packets sent before this viewer was connected (a cached start's catch-up).
    pub catch_up_packets: u64,
    /// Keyframe requests this viewer sent.
    pub plis_sent: u64,
    /// Why the viewer stopped early, if it did.
    pub error: Option<String>,
    /// The viewer's link was narrowed to this many kbit/s (`--constrained-share`), by its own
    /// token bucket or, with `--constrained-bind`, by the kernel.
    pub link_kbps: Option<u32>,
    /// The picture width of the last keyframe it received: which simulcast layer it gets.
    pub layer_width: Option<u16>,
    /// The highest VP8 temporal layer among the frames of its last second of video: below
    /// the publisher's top one, Directo was thinning the layer for it.
    pub temporal_layer: Option<u8>,
    /// Frames whose picture id did not follow the previous frame's although no packet was
    /// lost in between: a hole a decoder would wait on (frames dropped for this viewer must
    /// be renumbered away).
    pub picture_gaps: u64,
    /// RTX packets received: the server's probes of its link.
    pub probe_packets: u64,
}

/// Counters every viewer of a run adds to, read by the run for its measurement window.
#[derive(Debug, Default)]
pub struct SharedCounters {
    /// Media packets received by all viewers (duplicates included).
    pub packets: AtomicU64,
}

struct ViewerApp {
    stats: ViewerStats,
    times: Arc<SendTimes>,
    shared: Arc<SharedCounters>,
    joined_at: Instant,
    /// When its own handshake was done (packets sent before it are catch-up, not live).
    connected_at: Option<Instant>,
    last_video: Option<Instant>,
    next_pli: Option<Instant>,
    last_pli: Option<Instant>,
    video_ssrc: Option<(RTCRtpReceiverId, u32)>,
    failed: bool,
    /// A narrow link the viewer simulates itself: what it can still carry now (bytes) and
    /// when it was last refilled.
    link: Option<(f64, Instant)>,
    /// The link is narrowed outside the viewer (by `tc` in the kernel): drop nothing here.
    link_shaped_outside: bool,
    /// When to send the next receiver report (constrained viewers report their loss, so
    /// Directo's bandwidth estimate can react), and the video counts at the previous one.
    next_report: Option<Instant>,
    reported: (u64, u64),
    /// Transport-wide congestion control: the negotiated extension id, what arrived since
    /// the last feedback report, and when the next one is due.
    twcc: Option<(u8, TwccRecorder)>,
    next_feedback: Option<Instant>,
    /// The previous frame's picture id and the video packets lost when it started.
    last_picture: Option<(u16, u64)>,
    /// When a frame of each temporal layer last arrived.
    temporal_seen: [Option<Instant>; 3],
}

/// How often a constrained viewer sends a receiver report.
const REPORT_INTERVAL: Duration = Duration::from_millis(500);
/// A narrow link's buffer, in milliseconds of its rate (beyond it packets are dropped).
const LINK_BUFFER_MS: f64 = 100.0;

impl ViewerApp {
    /// Whether a narrow link lets this packet through (a token bucket at the link's rate;
    /// always, when the link is shaped outside the viewer).
    fn link_passes(&mut self, now: Instant, bytes: usize) -> bool {
        let Some(kbps) = self.stats.link_kbps.filter(|_| !self.link_shaped_outside) else {
            return true;
        };
        let rate = f64::from(kbps) * 125.0;
        let capacity = rate * LINK_BUFFER_MS / 1000.0;
        let (tokens, at) = self.link.get_or_insert((capacity, now));
        *tokens = (*tokens + now.saturating_duration_since(*at).as_secs_f64() * rate).min(capacity);
        *at = now;
        if *tokens >= bytes as f64 {
            *tokens -= bytes as f64;
            true
        } else {
            false
        }
    }

    fn on_rtp(&mut self, now: Instant, packet: &rtc::rtp::Packet) {
        if !self.link_passes(now, packet.payload.len() + 12) {
            return;
        }
        self.shared.packets.fetch_add(1, Ordering::Relaxed);
        if let Some((id, recorder)) = &mut self.twcc
            && let Some(ext) = packet.header.get_extension(*id)
            && ext.len() >= 2
        {
            recorder.record(u16::from_be_bytes([ext[0], ext[1]]), now);
        }
        if packet.header.payload_type == RTX_PAYLOAD_TYPE {
            // A probe: a copy of a packet already counted, on the RTX SSRC.
            self.stats.probe_packets += 1;
            return;
        }
        let video = packet.header.payload_type == VP8_PAYLOAD_TYPE;
        let counter = if video {
            &mut self.stats.video
        } else {
            &mut self.stats.audio
        };
        if !counter.record(packet.header.sequence_number) {
            return;
        }
        if video {
            self.last_video = Some(now);
            let width = keyframe_width(&packet.payload);
            if let Some(width) = width {
                self.stats.layer_width = Some(width);
            }
            if let Some((picture_id, tid, true)) = vp8_picture(&packet.payload) {
                self.on_frame(now, picture_id, tid, width.is_some());
            }
            if self.stats.join.is_none() {
                if is_vp8_keyframe_start(&packet.payload) {
                    self.stats.join = Some(now.saturating_duration_since(self.joined_at));
                } else if self
                    .last_pli
                    .is_none_or(|last| now.saturating_duration_since(last) >= PLI_MIN_INTERVAL)
                {
                    // Undecodable video: ask for a keyframe on the next turn of the loop.
                    self.next_pli = Some(now);
                }
            }
        }
        if let Some(sent) = read_stamp(&packet.payload).and_then(|index| self.times.sent_at(index))
        {
            if self.connected_at.is_some_and(|connected| sent < connected) {
                self.stats.catch_up_packets += 1;
            } else {
                self.stats
                    .latency
                    .record(now.saturating_duration_since(sent));
            }
        }
    }

    /// The first packet of a frame: its picture id must follow the previous frame's unless
    /// packets were lost in between or it is a keyframe (where a viewer may switch layers).
    fn on_frame(&mut self, now: Instant, picture_id: u16, tid: u8, keyframe: bool) {
        let lost = self.stats.video.lost();
        if let Some((previous, lost_then)) = self.last_picture
            && !keyframe
            && lost == lost_then
            && picture_id != (previous + 1) & 0x7fff
        {
            self.stats.picture_gaps += 1;
        }
        self.last_picture = Some((picture_id, lost));
        if let Some(seen) = self.temporal_seen.get_mut(usize::from(tid)) {
            *seen = Some(now);
        }
    }

    /// The highest temporal layer seen in the last second of video.
    fn recent_temporal_layer(&self) -> Option<u8> {
        let last = self.last_video?;
        (0..self.temporal_seen.len() as u8).rev().find(|&tid| {
            self.temporal_seen[usize::from(tid)]
                .is_some_and(|at| last.saturating_duration_since(at) < Duration::from_secs(1))
        })
    }

    /// A receiver report on the video: the loss since the previous one, as RFC 3550 counts it.
    fn send_report(&mut self, pc: &mut RTCPeerConnection, now: Instant) -> Result<()> {
        if self.video_ssrc.is_none() {
            self.video_ssrc = Self::find_video_ssrc(pc);
        }
        let Some((receiver_id, media_ssrc)) = self.video_ssrc else {
            return Ok(());
        };
        let expected = self.stats.video.expected();
        let received = expected - self.stats.video.lost();
        let (expected_before, received_before) = self.reported;
        self.reported = (expected, received);
        let interval_expected = expected.saturating_sub(expected_before);
        let interval_lost =
            interval_expected.saturating_sub(received.saturating_sub(received_before));
        let fraction_lost = (interval_lost * 256)
            .checked_div(interval_expected)
            .map_or(0, |fraction| fraction.min(255) as u8);
        if let Some(mut receiver) = pc.rtp_receiver(receiver_id) {
            receiver.write_rtcp(
                now,
                vec![Box::new(ReceiverReport {
                    ssrc: 0,
                    reports: vec![ReceptionReport {
                        ssrc: media_ssrc,
                        fraction_lost,
                        total_lost: self.stats.video.lost().min(0x7f_ffff) as u32,
                        last_sequence_number: self.stats.video.highest_extended() as u32,
                        ..Default::default()
                    }],
                    ..Default::default()
                })],
            )?;
        }
        Ok(())
    }

    /// A transport feedback report of what arrived since the last one.
    fn send_feedback(&mut self, pc: &mut RTCPeerConnection, now: Instant) -> Result<()> {
        if self.video_ssrc.is_none() {
            self.video_ssrc = Self::find_video_ssrc(pc);
        }
        let (Some((receiver_id, media_ssrc)), Some((_, recorder))) =
            (self.video_ssrc, self.twcc.as_mut())
        else {
            return Ok(());
        };
        if let Some(report) = recorder.report(media_ssrc)
            && let Some(mut receiver) = pc.rtp_receiver(receiver_id)
        {
            receiver.write_rtcp(now, vec![Box::new(report)])?;
        }
        Ok(())
    }

    /// The receiver and remote SSRC of the video track, from the negotiated description.
    fn find_video_ssrc(pc: &mut RTCPeerConnection) -> Option<(RTCRtpReceiverId, u32)> {
        let ids: Vec<_> = pc.get_transceivers().collect();
        ids.into_iter().find_map(|id| {
            let receiver_id = RTCRtpReceiverId::from(id);
            let receiver = pc.rtp_receiver(receiver_id)?;
            let track = receiver.track();
            if track.kind() != RtpCodecKind::Video {
                return None;
            }
            track.ssrcs().next().map(|ssrc| (receiver_id, ssrc))
        })
    }
}

impl ViewerApp {
    /// Sends transport-wide feedback if the remote description negotiated it.
    fn start_feedback(&mut self, remote_sdp: &str) {
        if let Some(id) = negotiated_id(remote_sdp) {
            let now = Instant::now();
            self.twcc = Some((id, TwccRecorder::new(now)));
            self.next_feedback = Some(now + FEEDBACK_INTERVAL);
        }
    }
}

impl PeerApp for ViewerApp {
    fn on_event(&mut self, pc: &mut RTCPeerConnection, event: RTCPeerConnectionEvent) {
        match event {
            RTCPeerConnectionEvent::OnConnectionStateChangeEvent(state) => match state {
                RTCPeerConnectionState::Connected if !self.stats.connected => {
                    self.stats.connected = true;
                    let now = Instant::now();
                    self.connected_at = Some(now);
                    self.stats.connect = Some(now.saturating_duration_since(self.joined_at));
                    self.next_pli = Some(now + KEYFRAME_WAIT);
                }
                RTCPeerConnectionState::Failed | RTCPeerConnectionState::Closed => {
                    self.failed = true;
                    self.stats.error = Some(format!("peer connection {state}"));
                }
                _ => {}
            },
            RTCPeerConnectionEvent::OnTrack(RTCTrackEvent::OnOpen(init)) => {
                let is_video = pc
                    .rtp_receiver(init.receiver_id)
                    .is_some_and(|receiver| receiver.track().kind() == RtpCodecKind::Video);
                if is_video {
                    self.video_ssrc = Some((init.receiver_id, init.ssrc));
                }
            }
            _ => {}
        }
    }

    fn on_message(&mut self, _pc: &mut RTCPeerConnection, message: TaggedRTCMessage) {
        if let RTCMessage::RtpPacket(_, packet) = &message.message {
            self.on_rtp(message.now, packet);
        }
    }

    fn deadline(&self) -> Option<Instant> {
        [self.next_pli, self.next_report, self.next_feedback]
            .into_iter()
            .flatten()
            .min()
    }

    fn on_deadline(&mut self, pc: &mut RTCPeerConnection, now: Instant) -> Result<()> {
        if self.next_report.is_some_and(|at| at <= now) {
            self.next_report = Some(now + REPORT_INTERVAL);
            self.send_report(pc, now)?;
        }
        if self.next_feedback.is_some_and(|at| at <= now) {
            self.next_feedback = Some(now + FEEDBACK_INTERVAL);
            self.send_feedback(pc, now)?;
        }
        if self.next_pli.is_some_and(|at| at > now) {
            return Ok(());
        }
        self.next_pli = Some(now + KEYFRAME_WAIT);
        let stalled = self
            .last_video
            .is_none_or(|last| now.saturating_duration_since(last) >= KEYFRAME_WAIT);
        if self.stats.join.is_some() && !stalled {
            return Ok(());
        }
        if self.video_ssrc.is_none() {
            self.video_ssrc = Self::find_video_ssrc(pc);
        }
        let Some((receiver_id, media_ssrc)) = self.video_ssrc else {
            return Ok(());
        };
        if let Some(mut receiver) = pc.rtp_receiver(receiver_id) {
            receiver.write_rtcp(
                now,
                vec![Box::new(PictureLossIndication {
                    sender_ssrc: 0,
                    media_ssrc,
                })],
            )?;
            self.stats.plis_sent += 1;
            self.last_pli = Some(now);
        }
        Ok(())
    }

    fn finished(&self) -> bool {
        self.failed
    }
}

/// Everything a viewer needs from its run.
#[derive(Clone)]
pub struct ViewerContext {
    /// How to join.
    pub join: Join,
    /// The run's HTTP client (one per worker thread).
    pub http: Client,
    /// The publisher's send-time table.
    pub times: Arc<SendTimes>,
    /// Counters of the whole run.
    pub shared: Arc<SharedCounters>,
    /// The address the viewer's socket binds to.
    pub bind_ip: IpAddr,
    /// Narrow this viewer's link to this many kbit/s (drops beyond a short buffer).
    pub link_kbps: Option<u32>,
    /// The link is already narrowed to `link_kbps` outside the viewer (e.g. by `tc` in the
    /// kernel, for traffic to `bind_ip`): the viewer drops nothing itself, it only reports
    /// its loss as a constrained viewer does.
    pub link_shaped_outside: bool,
    /// Negotiate transport-wide congestion control and send its feedback.
    pub transport_cc: bool,
}

/// Joins, watches until `until`, leaves, and returns what it measured.
pub async fn run_viewer(context: ViewerContext, until: Instant) -> ViewerStats {
    let joined_at = Instant::now();
    let mut app = ViewerApp {
        stats: ViewerStats::default(),
        times: Arc::clone(&context.times),
        shared: Arc::clone(&context.shared),
        joined_at,
        connected_at: None,
        last_video: None,
        next_pli: None,
        last_pli: None,
        video_ssrc: None,
        failed: false,
        link: None,
        link_shaped_outside: context.link_shaped_outside,
        next_report: context.link_kbps.map(|_| joined_at + REPORT_INTERVAL),
        reported: (0, 0),
        twcc: None,
        next_feedback: None,
        last_picture: None,
        temporal_seen: [None; 3],
    };
    app.stats.link_kbps = context.link_kbps;
    if let Err(error) = watch(&context, &mut app, until).await {
        app.stats.error = Some(error.to_string());
    }
    app.stats.temporal_layer = app.recent_temporal_layer();
    app.stats
}

async fn watch(context: &ViewerContext, app: &mut ViewerApp, until: Instant) -> Result<()> {
    let role = Role::Viewer {
        transport_cc: context.transport_cc,
    };
    let mut peer = Peer::bind(role, context.bind_ip).await?;
    match &context.join {
        Join::Whep(endpoint) => {
            for kind in [RtpCodecKind::Audio, RtpCodecKind::Video] {
                peer.pc.add_transceiver_from_kind(
                    kind,
                    Some(RTCRtpTransceiverInit {
                        direction: RTCRtpTransceiverDirection::Recvonly,
                        streams: vec![],
                        send_encodings: vec![],
                    }),
                )?;
            }
            let offer = peer.pc.create_offer(None)?;
            peer.pc.set_local_description(Instant::now(), offer)?;
            peer.add_local_candidate()?;
            let session = post_offer(&context.http, endpoint, peer.local_sdp()?, None).await?;
            peer.pc.set_remote_description(
                Instant::now(),
                RTCSessionDescription::answer(session.answer.clone())?,
            )?;
            app.start_feedback(&session.answer);
            let result = drive(&mut peer, app, until).await;
            leave_whep(&context.http, &session, &mut peer).await;
            result
        }
        Join::Janus { api, mountpoint } => {
            let janus = JanusSession::attach(&context.http, api).await?;
            let result = watch_janus(&janus, *mountpoint, &mut peer, app, until).await;
            peer.close().await;
            janus.destroy().await;
            result
        }
    }
}

async fn leave_whep(http: &Client, session: &Session, peer: &mut Peer) {
    peer.close().await;
    delete_session(http, session).await;
}

async fn watch_janus(
    janus: &JanusSession,
    mountpoint: u64,
    peer: &mut Peer,
    app: &mut ViewerApp,
    until: Instant,
) -> Result<()> {
    let offer = janus.watch(mountpoint).await?;
    tracing::debug!(%offer, "Janus offered");
    app.start_feedback(&offer);
    peer.pc
        .set_remote_description(Instant::now(), RTCSessionDescription::offer(offer)?)?;
    let answer = peer.pc.create_answer(None)?;
    peer.pc.set_local_description(Instant::now(), answer)?;
    peer.add_local_candidate()?;
    let answer = peer.local_sdp()?;
    tracing::debug!(%answer, "answering the Janus offer");
    janus.start(answer).await?;
    let keepalive = {
        let janus = janus.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(KEEPALIVE_INTERVAL).await;
                if janus.keepalive().await.is_err() {
                    return;
                }
            }
        })
    };
    let result = drive(peer, app, until).await;
    keepalive.abort();
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_loss_duplicates_and_wraparound() {
        let mut counter = TrackCounter::default();
        for seq in [65_530u16, 65_531, 65_533, 65_534, 65_535, 0, 1, 1, 65_532] {
            counter.record(seq);
        }
        assert_eq!(counter.expected(), 8);
        assert_eq!(counter.received, 8);
        assert_eq!(counter.duplicates, 1);
        assert_eq!(counter.lost(), 0);
        counter.record(5);
        assert_eq!(counter.expected(), 12);
        assert_eq!(counter.lost(), 3);
    }
}
