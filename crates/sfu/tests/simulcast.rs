//! Simulcast: a publisher sends three layers (RIDs q, h, f); each viewer gets one, chosen by
//! its pinned quality or its bandwidth estimate, switched only at a keyframe of the new layer,
//! with one continuous numbering.

mod common;

use std::time::{Duration, Instant};

use common::*;
use directo_sfu::{
    Codec, KEYFRAME_REQUEST_INTERVAL, KeyframeRequestKind, MediaKind, PeerId, PublishedTrack,
    Quality, Stream,
};
use rtc::rtp::Packet;

const LAYERS: [(&str, u32, u16); 3] = [("q", 0x100, 1000), ("h", 0x200, 2000), ("f", 0x300, 3000)];
const AUDIO_SSRC: u32 = 0x999;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// Three video layers (each its own SSRC, sequence space, timestamp base and picture ids, so a
/// forwarded packet tells which layer it came from) plus audio.
struct SimulcastPublisher {
    layers: Vec<Publisher>,
}

impl SimulcastPublisher {
    fn new(rids: [&str; 3]) -> Self {
        let layers = LAYERS
            .iter()
            .zip(rids)
            .map(|(&(_, ssrc, picture), _)| {
                let mut layer =
                    Publisher::new(1, ssrc, AUDIO_SSRC, picture, u32::from(picture) * 7);
                layer.picture_id = picture;
                layer
            })
            .collect();
        SimulcastPublisher { layers }
    }

    fn tracks(&self, rids: [&str; 3]) -> Vec<PublishedTrack> {
        let mut tracks = vec![self.layers[0].tracks().remove(0)];
        for (layer, rid) in self.layers.iter().zip(rids) {
            let mut video = layer.tracks().remove(1);
            video.rid = Some(rid.to_owned());
            tracks.push(video);
        }
        tracks
    }

    /// One frame on every layer; the top layer's packets are bigger.
    fn frame(&mut self, keyframe: [bool; 3]) -> Vec<Packet> {
        let mut packets = Vec::new();
        for (index, layer) in self.layers.iter_mut().enumerate() {
            packets.extend(layer.video_frame(keyframe[index], 1 + index));
        }
        packets
    }
}

/// Which layer (0, 1, 2) a forwarded VP8 packet came from, by its picture id.
fn layer_of(packet: &Packet) -> usize {
    let picture = (u16::from(packet.payload[2] & 0x7f) << 8) | u16::from(packet.payload[3]);
    match picture {
        1000..2000 => 0,
        2000..3000 => 1,
        _ => 2,
    }
}

fn viewer(stream: &mut Stream, id: PeerId, quality: Quality, now: Instant) {
    let mut tracks = viewer_tracks(id as u32, 0x5000 + id as u32);
    tracks[1].quality = quality;
    stream.add_subscriber(id, tracks, now);
}

fn setup(now: Instant) -> (Stream, SimulcastPublisher) {
    let rids = ["q", "h", "f"];
    let publisher = SimulcastPublisher::new(rids);
    let mut stream = Stream::new();
    stream.set_publisher(1, publisher.tracks(rids), now);
    (stream, publisher)
}

/// Two seconds of media from `from` (a keyframe on every layer first), so every layer's bitrate
/// is measured; returns the time after it.
fn two_seconds(stream: &mut Stream, publisher: &mut SimulcastPublisher, from: Instant) -> Instant {
    let mut now = from;
    let mut keyframe = [true; 3];
    for _ in 0..60 {
        feed(stream, 1, publisher.frame(keyframe), now);
        keyframe = [false; 3];
        now += ms(33);
    }
    now
}

fn video_layers(outputs: &[directo_sfu::Output], viewer: PeerId) -> Vec<usize> {
    rtp_for(outputs, viewer, MediaKind::Video)
        .iter()
        .map(layer_of)
        .collect()
}

#[test]
fn each_viewer_gets_its_layer_from_that_layers_keyframe() {
    let t0 = start();
    let (mut stream, mut publisher) = setup(t0);
    viewer(&mut stream, 10, Quality::Auto, t0);
    viewer(&mut stream, 11, Quality::Low, t0);
    viewer(&mut stream, 12, Quality::Medium, t0);
    // Each layer someone waits for is asked for a keyframe, on its own SSRC.
    let mut requested: Vec<u32> = keyframe_requests(&drain(&mut stream))
        .into_iter()
        .map(|(_, ssrc, kind, _)| {
            assert_eq!(kind, KeyframeRequestKind::Pli);
            ssrc
        })
        .collect();
    requested.sort_unstable();
    assert_eq!(requested, vec![0x100, 0x200, 0x300]);

    // Delta frames start nobody; a keyframe on every layer starts everyone on their own.
    let outputs = feed(&mut stream, 1, publisher.frame([false; 3]), t0 + ms(10));
    assert!(rtp_for(&outputs, 10, MediaKind::Video).is_empty());
    let mut outputs = feed(&mut stream, 1, publisher.frame([true; 3]), t0 + ms(40));
    outputs.extend(feed(
        &mut stream,
        1,
        publisher.frame([false; 3]),
        t0 + ms(73),
    ));
    assert_eq!(video_layers(&outputs, 10), vec![2, 2, 2, 2, 2, 2]);
    assert_eq!(video_layers(&outputs, 11), vec![0, 0]);
    assert_eq!(video_layers(&outputs, 12), vec![1, 1, 1, 1]);
    assert_eq!(stream.subscriber_layer(10, t0 + ms(73)), Some((2, 3)));
    assert_eq!(stream.subscriber_layer(11, t0 + ms(73)), Some((0, 3)));
    assert_eq!(stream.top_video_ssrc(t0 + ms(73)), Some(0x300));
}

#[test]
fn switching_waits_for_the_new_layers_keyframe_and_keeps_numbering_continuous() {
    let t0 = start();
    let (mut stream, mut publisher) = setup(t0);
    viewer(&mut stream, 10, Quality::Low, t0);
    drain(&mut stream);
    let mut sent = feed(&mut stream, 1, publisher.frame([true; 3]), t0);
    sent.extend(feed(
        &mut stream,
        1,
        publisher.frame([false; 3]),
        t0 + ms(33),
    ));

    // Up to the top layer: a PLI for it, and the low layer goes on until its keyframe.
    stream.set_quality(10, Quality::High, t0 + ms(40));
    let requests = keyframe_requests(&drain(&mut stream));
    assert_eq!(requests, vec![(1, 0x300, KeyframeRequestKind::Pli, 0)]);
    let before = feed(&mut stream, 1, publisher.frame([false; 3]), t0 + ms(66));
    assert_eq!(video_layers(&before, 10), vec![0]);
    let after = feed(
        &mut stream,
        1,
        publisher.frame([false, false, true]),
        t0 + ms(100),
    );
    let mut after_all = after.clone();
    after_all.extend(feed(
        &mut stream,
        1,
        publisher.frame([false; 3]),
        t0 + ms(133),
    ));
    // The low layer's packet of that frame still went out first, then the top layer from
    // its keyframe on.
    assert_eq!(video_layers(&after_all, 10), vec![0, 2, 2, 2, 2, 2, 2]);
    assert_eq!(stream.subscriber_layer(10, t0 + ms(133)), Some((2, 3)));

    // One numbering for the viewer across the switch: no gap, no repeat; time goes forward.
    sent.extend(before);
    sent.extend(after_all);
    let video = rtp_for(&sent, 10, MediaKind::Video);
    for pair in video.windows(2) {
        assert_eq!(
            pair[1].header.sequence_number,
            pair[0].header.sequence_number.wrapping_add(1),
            "{:?}",
            video
                .iter()
                .map(|p| p.header.sequence_number)
                .collect::<Vec<_>>()
        );
        assert!(
            pair[1]
                .header
                .timestamp
                .wrapping_sub(pair[0].header.timestamp)
                < 90_000
        );
        assert_eq!(pair[1].header.ssrc, 0x5000 + 10);
        assert_eq!(pair[1].header.payload_type, VIEWER_VP8_PT);
    }
}

#[test]
fn loss_moves_one_viewer_down_and_leaves_the_others_alone() {
    let t0 = start();
    let (mut stream, mut publisher) = setup(t0);
    viewer(&mut stream, 10, Quality::Auto, t0);
    viewer(&mut stream, 11, Quality::Auto, t0);
    drain(&mut stream);
    let mut now = two_seconds(&mut stream, &mut publisher, t0);
    let layers = stream.video_layers(now);
    assert_eq!(layers.len(), 3);
    assert!(
        layers[0].2 < layers[1].2 && layers[1].2 < layers[2].2,
        "{layers:?}"
    );
    assert_eq!(stream.subscriber_layer(10, now), Some((2, 3)));

    // Viewer 10 reports 40 % loss: it is moved down at the lower layer's keyframe.
    stream.on_receiver_report(10, 0x5000 + 10, 102, now);
    let requests = keyframe_requests(&drain(&mut stream));
    assert_eq!(requests.len(), 1, "one PLI, for the layer it moves to");
    assert_ne!(requests[0].1, 0x300);
    let target = requests[0].1;
    let mut keyframe_on = [false; 3];
    keyframe_on[LAYERS.iter().position(|l| l.1 == target).unwrap()] = true;
    now += ms(33);
    let outputs = feed(&mut stream, 1, publisher.frame(keyframe_on), now);
    let moved = video_layers(&outputs, 10);
    assert!(
        !moved.is_empty() && moved.iter().all(|&l| l < 2),
        "{moved:?}"
    );
    // The other viewer never noticed: still the top layer, and no keyframe was asked for it.
    assert_eq!(video_layers(&outputs, 11), vec![2, 2, 2]);
    assert_eq!(stream.subscriber_layer(11, now), Some((2, 3)));
}

#[test]
fn a_nack_after_a_switch_is_answered_from_the_new_layer() {
    let t0 = start();
    let (mut stream, mut publisher) = setup(t0);
    viewer(&mut stream, 10, Quality::Low, t0);
    feed(&mut stream, 1, publisher.frame([true; 3]), t0);
    stream.set_quality(10, Quality::High, t0 + ms(10));
    let outputs = feed(
        &mut stream,
        1,
        publisher.frame([false, false, true]),
        t0 + ms(33),
    );
    let top: Vec<Packet> = rtp_for(&outputs, 10, MediaKind::Video)
        .into_iter()
        .filter(|packet| layer_of(packet) == 2)
        .collect();
    assert_eq!(top.len(), 3);
    let lost = top[1].header.sequence_number;
    stream.on_nack(10, 0x5000 + 10, &[lost], t0 + ms(50));
    let resent = rtp_for(&drain(&mut stream), 10, MediaKind::Video);
    assert_eq!(resent.len(), 1);
    assert_eq!(unwrap_rtx(&resent[0]), (lost, top[1].payload.clone()));
}

#[test]
fn layers_are_ranked_by_bitrate_whatever_their_names() {
    let t0 = start();
    // Names that say nothing, in the wrong order: the biggest layer is published first.
    let rids = ["c", "b", "a"];
    let mut publisher = SimulcastPublisher::new(rids);
    let mut tracks = publisher.tracks(rids);
    tracks[1..].reverse();
    let mut stream = Stream::new();
    stream.set_publisher(1, tracks, t0);
    let mut now = t0;
    for i in 0..40 {
        feed(&mut stream, 1, publisher.frame([i == 0; 3]), now);
        now += ms(33);
    }
    let ssrcs: Vec<u32> = stream.video_layers(now).iter().map(|l| l.1).collect();
    assert_eq!(ssrcs, vec![0x100, 0x200, 0x300]);
    assert_eq!(stream.top_video_ssrc(now), Some(0x300));
    // A recording keeping one layer asks that layer, and only it, for a keyframe.
    let later = now + KEYFRAME_REQUEST_INTERVAL;
    drain(&mut stream);
    stream.request_keyframe_on(0x200, later);
    assert_eq!(
        keyframe_requests(&drain(&mut stream)),
        vec![(1, 0x200, KeyframeRequestKind::Pli, 0)]
    );
}

#[test]
fn a_layer_that_opens_late_joins_without_disturbing_the_viewers() {
    let t0 = start();
    let rids = ["q", "h", "f"];
    let mut publisher = SimulcastPublisher::new(rids);
    let tracks = publisher.tracks(rids);
    let mut stream = Stream::new();
    stream.set_publisher(1, tracks[..2].to_vec(), t0);
    viewer(&mut stream, 10, Quality::Auto, t0);
    drain(&mut stream);
    let outputs = feed(&mut stream, 1, publisher.frame([true; 3]), t0);
    assert_eq!(
        video_layers(&outputs, 10),
        vec![0],
        "only layer q is published yet"
    );
    // Layer h opens: the viewer moves up at its keyframe, q meanwhile keeps flowing.
    stream.add_track(1, tracks[2].clone(), t0 + ms(20));
    assert_eq!(
        keyframe_requests(&drain(&mut stream)),
        vec![(1, 0x200, KeyframeRequestKind::Pli, 0)]
    );
    let outputs = feed(&mut stream, 1, publisher.frame([false; 3]), t0 + ms(33));
    assert_eq!(video_layers(&outputs, 10), vec![0]);
    let outputs = feed(
        &mut stream,
        1,
        publisher.frame([false, true, false]),
        t0 + ms(66),
    );
    assert_eq!(video_layers(&outputs, 10), vec![0, 1, 1]);
    // A second track without a RID, or a fourth layer, is refused.
    stream.add_track(
        1,
        PublishedTrack {
            kind: MediaKind::Video,
            codec: Codec::Vp8,
            ssrc: 0x777,
            keyframe_request: KeyframeRequestKind::Pli,
            extensions: vec![],
            rid: None,
        },
        t0 + ms(70),
    );
    assert_eq!(stream.video_layers(t0 + ms(70)).len(), 2);
}

/// The transport-wide extension id viewer 10 negotiates.
const TWCC_ID: u8 = 7;

/// Viewer 10, with transport-wide feedback (and RTX or not), watched two seconds and was moved
/// down to the smallest layer by heavy loss.
fn twcc_viewer_moved_down(t0: Instant, rtx: bool) -> (Stream, SimulcastPublisher, Instant) {
    let (mut stream, mut publisher) = setup(t0);
    let mut tracks = if rtx {
        viewer_tracks(10, 0x5000 + 10)
    } else {
        viewer_tracks_without_rtx(10, 0x5000 + 10)
    };
    for track in &mut tracks {
        track
            .extensions
            .push((TWCC_ID, directo_sfu::TRANSPORT_CC_URI.to_owned()));
    }
    stream.add_subscriber(10, tracks, t0);
    drain(&mut stream);
    let now = two_seconds(&mut stream, &mut publisher, t0);
    stream.on_receiver_report(10, 0x5000 + 10, 200, now);
    drain(&mut stream);
    feed(&mut stream, 1, publisher.frame([true; 3]), now);
    assert_eq!(stream.subscriber_layer(10, now), Some((0, 3)));
    (stream, publisher, now)
}

/// When viewer 10, on a clean link from `now` on, first got a probe packet, when the bigger
/// layer was first asked for a keyframe, and when the viewer got it (within a minute).
/// Every probe packet must be an RTX copy of a packet the viewer got, and no sequence number
/// of its media SSRC may come twice.
fn clean_link(
    stream: &mut Stream,
    publisher: &mut SimulcastPublisher,
    mut now: Instant,
) -> (Option<Instant>, Option<Instant>, Option<Instant>) {
    let mut sent = std::collections::HashMap::new();
    let mut first_probe = None;
    let mut first_request = None;
    let mut moved = None;
    let mut keyframe = [false; 3];
    for second in 0..60 {
        stream.on_receiver_report(10, 0x5000 + 10, 0, now);
        for _ in 0..30 {
            let outputs = feed(stream, 1, publisher.frame(keyframe), now);
            keyframe = [false; 3];
            for packet in rtp_for(&outputs, 10, MediaKind::Video) {
                if packet.header.ssrc == rtx_ssrc(0x5000 + 10) {
                    first_probe.get_or_insert(now);
                    assert_eq!(packet.header.payload_type, VIEWER_RTX_PT);
                    let (osn, payload) = unwrap_rtx(&packet);
                    assert_eq!(
                        sent.get(&osn),
                        Some(&payload),
                        "a probe packet is a copy of one the viewer got"
                    );
                    continue;
                }
                assert_eq!(packet.header.ssrc, 0x5000 + 10);
                if layer_of(&packet) > 0 {
                    moved.get_or_insert(now);
                }
                let seq = packet.header.sequence_number;
                assert!(
                    sent.insert(seq, packet.payload).is_none(),
                    "sequence number {seq} sent twice"
                );
            }
            for (_, ssrc, _, _) in keyframe_requests(&outputs) {
                let layer = LAYERS.iter().position(|l| l.1 == ssrc).unwrap();
                keyframe[layer] = true;
                if layer > 0 {
                    first_request.get_or_insert(now);
                }
            }
            now += ms(33);
        }
        if moved.is_some() {
            println!("moved up after {second} s of a clean link");
            break;
        }
    }
    (first_probe, first_request, moved)
}

#[test]
fn moving_up_waits_for_a_probe_of_the_link() {
    let (mut stream, mut publisher, now) = twcc_viewer_moved_down(start(), true);
    // A clean link from now on: the estimate climbs, and the viewer moves up again — but
    // only after a second of probe traffic (packets it already got, copied over RTX).
    let (probe, request, moved) = clean_link(&mut stream, &mut publisher, now);
    let (probe, request, moved) = (
        probe.expect("probe traffic before moving up"),
        request.expect("a keyframe request for the layer above"),
        moved.expect("moved up"),
    );
    assert!(
        request >= probe + ms(900),
        "asked for the bigger layer {:?} after the probe began",
        request - probe
    );
    assert!(moved >= request);
}

#[test]
fn a_viewer_without_rtx_moves_up_unprobed() {
    let (mut stream, mut publisher, now) = twcc_viewer_moved_down(start(), false);
    // Probe packets would need its RTX stream: it moves up on its estimate alone.
    let (probe, request, moved) = clean_link(&mut stream, &mut publisher, now);
    assert_eq!(probe, None);
    assert!(request.is_some() && moved.is_some());
}

#[test]
fn a_probe_that_fills_the_links_queue_keeps_the_viewer_where_it_is() {
    let t0 = start();
    let (mut stream, mut publisher, mut now) = twcc_viewer_moved_down(t0, true);
    // The viewer reports every 100 ms: each packet arrives 20 ms after it left, until the
    // probe starts; from then on the link's queue grows by half of the time that passes.
    let mut pending: Vec<(u16, Instant)> = Vec::new();
    let mut probe_started = None;
    let mut asked_up = false;
    for _ in 0..40 {
        stream.on_receiver_report(10, 0x5000 + 10, 0, now);
        for frame in 0..30 {
            let outputs = feed(&mut stream, 1, publisher.frame([false; 3]), now);
            for packet in rtp_for(&outputs, 10, MediaKind::Video) {
                let ext = packet.header.get_extension(TWCC_ID).expect("stamped");
                pending.push((u16::from_be_bytes([ext[0], ext[1]]), now));
                if packet.header.ssrc == rtx_ssrc(0x5000 + 10) {
                    probe_started.get_or_insert(now);
                }
            }
            asked_up |= keyframe_requests(&outputs)
                .iter()
                .any(|r| r.1 != LAYERS[0].1);
            if frame % 3 == 2 && !pending.is_empty() {
                let arrivals: Vec<i64> = pending
                    .iter()
                    .map(|&(_, sent)| {
                        let at = (sent - t0).as_micros() as i64 + 20_000;
                        let queued = probe_started
                            .filter(|&start| sent > start)
                            .map_or(0, |start| (sent - start).as_micros() as i64 / 2);
                        at + queued
                    })
                    .collect();
                stream.on_transport_feedback(10, &transport_feedback(pending[0].0, &arrivals), now);
                asked_up |= keyframe_requests(&drain(&mut stream))
                    .iter()
                    .any(|r| r.1 != LAYERS[0].1);
                pending.clear();
            }
            now += ms(33);
        }
        if probe_started.is_some_and(|start| now > start + ms(3000)) {
            break;
        }
    }
    assert!(probe_started.is_some(), "the viewer's link was probed");
    assert!(
        !asked_up,
        "no keyframe asked for a layer the link cannot carry"
    );
    assert_eq!(
        stream.subscriber_layer(10, now),
        Some((0, 3)),
        "still on the smallest layer"
    );
}
