//! No (SSRC, sequence number) is ever sent to a viewer twice. The engine protects every packet
//! with SRTP, whose nonce comes from the SSRC and the packet index (the sequence number and its
//! rollover count); a second packet under the same index with other bytes — a new
//! transport-wide number is enough — reuses an AES-GCM nonce and gives the key's
//! authentication secret away.
//!
//! Long random runs mix everything that sends a viewer packets: three simulcast layers with
//! temporal layers forwarded live, lost packets NACKed (and NACKed again), link probes, moves
//! up and down, thinning to fewer frames, duplicate and late packets from the publisher, a
//! publisher reconnecting, a viewer subscribed again after a renegotiation — toward viewers
//! with and without RTX and transport-wide feedback. Every packet each viewer gets is checked
//! against all it got before on that SSRC, across 16-bit wraps, and every RTX packet carries
//! the payload the viewer was sent under its original sequence number.

mod common;

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::l1t3::L1t3;
use common::*;
use directo_sfu::{DownTrackConfig, MediaKind, Output, PeerId, PublishedTrack, Quality, Stream};
use rtc::rtp::Packet;

const FRAME: Duration = Duration::from_millis(33);
const AUDIO_SSRC: u32 = 0x999;
const TWCC_ID: u8 = 7;
/// Frames per run: a minute at 30 frames a second.
const FRAMES: u32 = 1800;

/// Everything one viewer was sent, and what it does about it.
struct Viewer {
    id: PeerId,
    video_ssrc: u32,
    tracks: Vec<DownTrackConfig>,
    /// It sends NACKs for what its link lost.
    nacks: bool,
    /// It sends transport-wide feedback.
    twcc: bool,
    /// Per SSRC: the highest index so far and every index sent.
    indexes: HashMap<u32, (u64, HashSet<u64>)>,
    /// The payload of every video packet sent on the media SSRC, by sequence number.
    media: HashMap<u16, Bytes>,
    /// Video sequence numbers its link lost, not NACKed yet.
    lost: Vec<u16>,
    /// Transport-wide numbers and send times not reported yet.
    pending: Vec<(u16, Instant)>,
    /// How much of its video its link loses now, and since when its link queues (if it does).
    loss_percent: u32,
    queueing_since: Option<Instant>,
    rtx_packets: u64,
    layers_seen: BTreeSet<usize>,
}

impl Viewer {
    fn new(id: PeerId, rtx: bool, twcc: bool, nacks: bool) -> Self {
        // Close to the 16-bit wrap, so the RTX numbering (which starts at the SSRC's low
        // bits) wraps early in the run.
        let video_ssrc = 0x5000_fff0 + id as u32;
        let mut tracks = if rtx {
            viewer_tracks(0x6000 + id as u32, video_ssrc)
        } else {
            viewer_tracks_without_rtx(0x6000 + id as u32, video_ssrc)
        };
        if twcc {
            for track in &mut tracks {
                track
                    .extensions
                    .push((TWCC_ID, directo_sfu::TRANSPORT_CC_URI.to_owned()));
            }
        }
        Viewer {
            id,
            video_ssrc,
            tracks,
            nacks,
            twcc,
            indexes: HashMap::new(),
            media: HashMap::new(),
            lost: Vec::new(),
            pending: Vec::new(),
            loss_percent: 0,
            queueing_since: None,
            rtx_packets: 0,
            layers_seen: BTreeSet::new(),
        }
    }

    /// Records one packet the stream sent this viewer; panics if its index was sent before.
    fn receive(&mut self, kind: MediaKind, packet: Packet, now: Instant, rng: &mut Lcg) {
        let header = &packet.header;
        let (highest, sent) = self.indexes.entry(header.ssrc).or_insert_with(|| {
            (
                (1 << 16) + u64::from(header.sequence_number),
                HashSet::new(),
            )
        });
        // The nearest index to the highest so far, as an SRTP receiver estimates it.
        let delta = i64::from(header.sequence_number.wrapping_sub(*highest as u16) as i16);
        let index = highest.wrapping_add_signed(delta);
        *highest = (*highest).max(index);
        assert!(
            sent.insert(index),
            "viewer {} was sent SSRC {:#x} sequence number {} (index {index}) twice",
            self.id,
            header.ssrc,
            header.sequence_number
        );
        if self.twcc {
            let ext = header.get_extension(TWCC_ID).expect("stamped");
            self.pending
                .push((u16::from_be_bytes([ext[0], ext[1]]), now));
        }
        if header.ssrc == rtx_ssrc(self.video_ssrc) {
            self.rtx_packets += 1;
            let (osn, payload) = unwrap_rtx(&packet);
            if let Some(original) = self.media.get(&osn) {
                assert_eq!(original, &payload, "RTX carries what {osn} carried");
            }
        } else if kind == MediaKind::Video {
            assert_eq!(header.ssrc, self.video_ssrc);
            let seq = header.sequence_number;
            self.media.insert(seq, packet.payload);
            if rng.chance(self.loss_percent) {
                self.lost.push(seq);
            }
        }
    }

    /// Its transport feedback on everything sent since the last one.
    fn feedback(&mut self, stream: &mut Stream, t0: Instant, now: Instant) {
        if self.pending.is_empty() {
            return;
        }
        let arrivals: Vec<i64> = self
            .pending
            .iter()
            .map(|&(_, sent)| {
                let at = (sent - t0).as_micros() as i64 + 20_000;
                let queued = self
                    .queueing_since
                    .filter(|&since| sent > since)
                    .map_or(0, |since| (sent - since).as_micros() as i64 / 2);
                at + queued
            })
            .collect();
        stream.on_transport_feedback(
            self.id,
            &transport_feedback(self.pending[0].0, &arrivals),
            now,
        );
        self.pending.clear();
    }
}

/// A simulcast publisher (three L1T3 layers and audio) of one generation.
struct Publisher3 {
    id: PeerId,
    layers: Vec<L1t3>,
    /// Layers asked for a keyframe.
    keyframe: [bool; 3],
}

impl Publisher3 {
    fn new(id: PeerId, generation: u32) -> Self {
        let layers = (0..3u16)
            .map(|layer| {
                let ssrc = 0x100 * u32::from(layer + 1) + 0x1000 * generation;
                // Sequence numbers close to the wrap.
                let mut publisher = Publisher::new(id, ssrc, AUDIO_SSRC + generation, 65_000, 7);
                publisher.picture_id = 0x1000 * (layer + 1);
                let mut layer_frames = L1t3::new(publisher);
                // Each layer twice the one below.
                layer_frames.packets = [4, 2, 2, 2].map(|n| n << layer);
                layer_frames
            })
            .collect();
        Publisher3 {
            id,
            layers,
            keyframe: [true; 3],
        }
    }

    fn tracks(&self) -> Vec<PublishedTrack> {
        let mut tracks = vec![self.layers[0].publisher.tracks().remove(0)];
        for (layer, rid) in self.layers.iter().zip(["q", "h", "f"]) {
            let mut video = layer.publisher.tracks().remove(1);
            video.rid = Some(rid.to_owned());
            tracks.push(video);
        }
        tracks
    }

    fn request(&mut self, ssrc: u32) {
        if let Some(layer) = self
            .layers
            .iter()
            .position(|l| l.publisher.video_ssrc == ssrc)
        {
            self.keyframe[layer] = true;
        }
    }

    /// One frame on every layer and an audio packet.
    fn frame(&mut self) -> Vec<Packet> {
        let mut packets = Vec::new();
        for (layer, keyframe) in self.layers.iter_mut().zip(&mut self.keyframe) {
            packets.extend(layer.next_frame(*keyframe));
            *keyframe = false;
        }
        packets.push(self.layers[0].publisher.audio_packet());
        packets
    }
}

struct Run {
    rng: Lcg,
    stream: Stream,
    publisher: Publisher3,
    viewers: Vec<Viewer>,
    t0: Instant,
    now: Instant,
    /// Packets the network held back, with the frame they are released at.
    held: Vec<(u32, Packet)>,
    /// Recent packets, for the publisher to send again.
    recent: VecDeque<Packet>,
}

impl Run {
    fn new(seed: u64) -> Self {
        let t0 = start();
        let mut stream = Stream::new();
        let publisher = Publisher3::new(1, 0);
        stream.set_publisher(publisher.id, publisher.tracks(), t0);
        let viewers = vec![
            // A browser: RTX, transport-wide feedback, NACKs.
            Viewer::new(10, true, true, true),
            Viewer::new(11, true, false, true),
            Viewer::new(12, false, true, true),
            Viewer::new(13, false, false, true),
            // The probe witness, last: it NACKs nothing, so every RTX packet it gets is a probe,
            // and its link has one bad stretch and is clean otherwise.
            Viewer::new(14, true, true, false),
        ];
        for viewer in &viewers {
            stream.add_subscriber(viewer.id, viewer.tracks.clone(), t0);
        }
        let mut run = Run {
            rng: Lcg(seed),
            stream,
            publisher,
            viewers,
            t0,
            now: t0,
            held: Vec::new(),
            recent: VecDeque::new(),
        };
        run.drain();
        run
    }

    fn drain(&mut self) {
        while let Some(output) = self.stream.poll_output() {
            match output {
                Output::Rtp {
                    subscriber,
                    kind,
                    packet,
                } => {
                    let viewer = self
                        .viewers
                        .iter_mut()
                        .find(|v| v.id == subscriber)
                        .expect("a viewer of the run");
                    viewer.receive(kind, packet, self.now, &mut self.rng);
                }
                Output::KeyframeRequest { ssrc, .. } => self.publisher.request(ssrc),
                _ => {}
            }
        }
    }

    /// The publisher's packets of one frame, some held back by the network and some sent
    /// twice, and the ones held back earlier that are due.
    fn publish(&mut self, frame: u32) {
        let mut packets = self.publisher.frame();
        let (due, held): (Vec<_>, Vec<_>) = self.held.drain(..).partition(|(at, _)| *at <= frame);
        self.held = held;
        packets.extend(due.into_iter().map(|(_, packet)| packet));
        for packet in packets {
            if self.rng.chance(2) {
                let delay = 1 + self.rng.next() % 3;
                self.held.push((frame + delay, packet));
                continue;
            }
            if self.rng.chance(2)
                && let Some(again) = self.recent.get(self.rng.next() as usize % 64)
            {
                let again = again.clone();
                self.stream.on_rtp(self.publisher.id, again, self.now);
                self.drain();
            }
            self.recent.push_front(packet.clone());
            self.recent.truncate(64);
            self.stream.on_rtp(self.publisher.id, packet, self.now);
            self.drain();
        }
    }

    /// What the viewers send back this frame.
    fn viewers_report(&mut self, frame: u32) {
        for position in 0..self.viewers.len() {
            let viewer = &mut self.viewers[position];
            let (id, ssrc) = (viewer.id, viewer.video_ssrc);
            if viewer.nacks && !viewer.lost.is_empty() && self.rng.chance(50) {
                let mut lost = std::mem::take(&mut viewer.lost);
                if self.rng.chance(10) {
                    // A number it was never sent.
                    lost.push(self.rng.next() as u16);
                }
                self.stream.on_nack(id, ssrc, &lost, self.now);
                if self.rng.chance(30) {
                    // Still missing: NACKed again later.
                    self.viewers[position].lost = lost;
                }
            }
            let viewer = &mut self.viewers[position];
            if frame.is_multiple_of(15) {
                let fraction = (viewer.loss_percent * 256 / 100).min(255) as u8;
                self.stream.on_receiver_report(id, ssrc, fraction, self.now);
            }
            let viewer = &mut self.viewers[position];
            if viewer.twcc && frame.is_multiple_of(3) {
                viewer.feedback(&mut self.stream, self.t0, self.now);
            }
            if self.rng.chance(1) {
                self.stream.on_keyframe_request(id, self.now);
            }
            self.drain();
        }
    }

    /// Now and then: a viewer's link changes, it picks another quality, or it is subscribed
    /// again; once, the publisher reconnects.
    fn change(&mut self, frame: u32) {
        let (witness, others) = self.viewers.split_last_mut().expect("viewers");
        if frame.is_multiple_of(300) {
            for viewer in others {
                viewer.loss_percent = [0, 0, 0, 2, 10, 40][self.rng.next() as usize % 6];
                viewer.queueing_since = self.rng.chance(30).then_some(self.now);
            }
        }
        // The probe witness: one bad stretch, then a clean link to climb back on.
        witness.loss_percent = if (60..120).contains(&frame) { 40 } else { 0 };
        if frame % 100 == 50 {
            let position = self.rng.next() as usize % (self.viewers.len() - 1);
            let id = self.viewers[position].id;
            if self.rng.chance(50) {
                let quality = [Quality::Auto, Quality::Auto, Quality::Low, Quality::High]
                    [self.rng.next() as usize % 4];
                self.stream.set_quality(id, quality, self.now);
            } else {
                let tracks = self.viewers[position].tracks.clone();
                self.stream.add_subscriber(id, tracks, self.now);
            }
        }
        if frame == FRAMES * 3 / 4 {
            self.publisher = Publisher3::new(2, 1);
            self.stream
                .set_publisher(self.publisher.id, self.publisher.tracks(), self.now);
            self.held.clear();
            self.recent.clear();
        }
        self.drain();
    }

    fn run(&mut self) {
        for frame in 0..FRAMES {
            self.publish(frame);
            self.viewers_report(frame);
            self.change(frame);
            for viewer in &mut self.viewers {
                if let Some((layer, _)) = self.stream.subscriber_layer(viewer.id, self.now) {
                    viewer.layers_seen.insert(layer);
                }
            }
            // The engine's timer loop, at 10 ms.
            let next = self.now + FRAME;
            while self.now + Duration::from_millis(10) < next {
                self.now += Duration::from_millis(10);
                if self
                    .stream
                    .poll_timeout()
                    .is_some_and(|due| due <= self.now)
                {
                    self.stream.handle_timeout(self.now);
                }
                self.drain();
            }
            self.now = next;
        }
    }
}

#[test]
fn no_viewer_is_sent_one_sequence_number_twice() {
    for seed in [1, 2, 3] {
        let mut run = Run::new(seed);
        run.run();
        let stats = run.stream.stats(run.now);
        println!("seed {seed}: {stats:?}");
        for viewer in &run.viewers {
            println!(
                "viewer {}: layers {:?}, {} RTX packets, {} SSRCs",
                viewer.id,
                viewer.layers_seen,
                viewer.rtx_packets,
                viewer.indexes.len()
            );
        }
        // The run did what it is for: packets resent over RTX, NACKs of viewers without RTX
        // left unanswered, duplicates dropped, layers switched, the links probed.
        assert!(stats.nacks_answered > 100, "{stats:?}");
        assert!(stats.nacks_unanswered > 100, "{stats:?}");
        assert!(stats.duplicates_dropped > 10, "{stats:?}");
        let viewer = |id: PeerId| {
            run.viewers
                .iter()
                .find(|v| v.id == id)
                .expect("a viewer of the run")
        };
        assert!(
            viewer(14).rtx_packets > 0,
            "the link of viewer 14 was probed"
        );
        for id in [10, 12, 14] {
            assert!(viewer(id).layers_seen.len() > 1, "viewer {id} moved layers");
        }
        for id in [12, 13] {
            assert_eq!(viewer(id).rtx_packets, 0);
            assert_eq!(viewer(id).indexes.len(), 2, "audio and video only");
        }
        // The 16-bit wrap was crossed on the RTX stream too.
        let (highest, _) = viewer(10).indexes[&rtx_ssrc(viewer(10).video_ssrc)];
        assert!(highest >= 2 << 16, "RTX numbers wrapped");
    }
}
