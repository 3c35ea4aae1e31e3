//! Each viewer's choice of what to get of the publication: which track its down tracks are
//! bound to, which simulcast layer and temporal layers its video should get given its quality
//! and bandwidth estimate, and the link probe that must pass before it moves up. The state is
//! the viewer's own (its video down track's layer, target, estimate and probe); the
//! publication is only read.

use std::collections::VecDeque;
use std::time::Instant;

use crate::codec::MediaKind;
use crate::layers::{Quality, choose_layer, choose_temporal};
use crate::probe::{MAX_PER_TICK, Probe, Tick};
use crate::rtx::RtxBuffer;
use crate::stats::StreamStats;
use crate::vp8;

use super::Output;
use super::publication::Publication;
use super::subscribers::{RTP_OVERHEAD, Subscriber};

/// A probe sends at least this much extra (the next layer's bitrate may not be measured yet).
const MIN_PROBE_BPS: u64 = 100_000;
/// A probe copies the viewer's last this many packets in turn.
const PROBE_WINDOW: u64 = 16;

/// What one probe tick did for a viewer.
pub(super) struct ProbeTick {
    /// The probe ran its course: the viewer may move up.
    pub(super) passed: bool,
    /// When the probe next needs the clock.
    pub(super) due: Option<Instant>,
}

impl Subscriber {
    /// Binds the down tracks to the publication's tracks: audio to the audio track, video to
    /// the layer it should get. Reports codec mismatches.
    pub(super) fn bind(
        &mut self,
        publication: &Publication,
        now: Instant,
        outputs: &mut VecDeque<Output>,
    ) {
        let audio = publication.audio_track();
        let video = self.choose_layer(publication, now);
        let id = self.id;
        for down_track in self.tracks_mut() {
            let index = match down_track.kind() {
                MediaKind::Audio => audio,
                MediaKind::Video => video,
            };
            if let Some(codec) = down_track.bind(index.map(|i| (i, &publication.tracks[i]))) {
                outputs.push_back(Output::CodecMismatch {
                    subscriber: id,
                    codec,
                });
            }
        }
    }

    /// The video track (index) this viewer should get now, if there is video.
    fn choose_layer(&self, publication: &Publication, now: Instant) -> Option<usize> {
        let ranked = publication.ranked_layers(now);
        let video = self.video.as_ref()?;
        let bitrates: Vec<u64> = ranked
            .iter()
            .map(|&index| publication.up_tracks[index].rate.bitrate_bps(now))
            .collect();
        let current = video
            .layer
            .and_then(|layer| ranked.iter().position(|&index| index == layer));
        let rank = choose_layer(video.quality, &bitrates, video.bwe.estimate(), current);
        ranked.get(rank).copied()
    }

    /// The highest temporal layer this viewer should get of the video track `layer`: all of
    /// them, unless it is on `Auto` and the smallest layer is already more than its estimate
    /// carries, and the publisher tags temporal layers.
    fn choose_temporal(&self, publication: &Publication, layer: Option<usize>, now: Instant) -> u8 {
        let (Some(video), Some(layer)) = (self.video.as_ref(), layer) else {
            return vp8::ALL_LAYERS;
        };
        if video.quality != Quality::Auto || publication.ranked_layers(now).first() != Some(&layer)
        {
            return vp8::ALL_LAYERS;
        }
        let up = &publication.up_tracks[layer];
        let cumulative: Vec<u64> = (0..up.temporal_layers)
            .map(|tid| up.temporal_bps(tid as u8, now))
            .collect();
        let current = Some(video.temporal.target).filter(|&tid| tid != vp8::ALL_LAYERS);
        choose_temporal(&cumulative, video.bwe.estimate(), current).unwrap_or(vp8::ALL_LAYERS)
    }

    /// Re-decides the layer: a viewer not started yet is simply bound to the new choice; one
    /// already watching keeps its layer until the new one's next keyframe, or, moving up on
    /// its estimate, until a probe of its link passed. Returns whether a probe started now
    /// (`None`: the viewer gets no video).
    pub(super) fn select_layer(
        &mut self,
        publication: &Publication,
        now: Instant,
        outputs: &mut VecDeque<Output>,
    ) -> Option<bool> {
        let choice = self.choose_layer(publication, now);
        let temporal = self.choose_temporal(publication, choice, now);
        let ranked = publication.ranked_layers(now);
        let rank = |layer: Option<usize>| layer.and_then(|l| ranked.iter().position(|&r| r == l));
        let id = self.id;
        let twcc = self.twcc.is_some();
        let video = self.video.as_mut()?;
        // A probe needs the viewer's transport feedback to judge it and its RTX stream to
        // carry it; a viewer without either moves up on its estimate alone.
        let probes = twcc && video.has_rtx();
        if let Probe::Running { layer, .. } = video.probe
            && Some(layer) != choice
        {
            video.probe = Probe::Idle;
        }
        if video.temporal.target != temporal {
            tracing::debug!(subscriber = id, temporal, "temporal layers");
            video.temporal.target = temporal;
        }
        let mut probe_started = false;
        if video.layer == choice {
            video.target = None;
        } else if video.layer.is_none() || video.is_waiting() {
            if let Some(codec) = video.bind(choice.map(|i| (i, &publication.tracks[i]))) {
                outputs.push_back(Output::CodecMismatch {
                    subscriber: id,
                    codec,
                });
            }
        } else if let Some(up) = choice.filter(|&up| {
            probes
                && video.quality == Quality::Auto
                && rank(Some(up)) > rank(video.layer)
                && !video.probe.passed(up, now)
        }) {
            // Moving up on the estimate: only once the link has carried the difference.
            video.target = None;
            if !video.probe.running_for(up) {
                let extra = publication.up_tracks[up]
                    .rate
                    .bitrate_bps(now)
                    .saturating_sub(publication.sending_bps(video, now))
                    .max(MIN_PROBE_BPS);
                tracing::debug!(subscriber = id, from = ?video.layer, to = up, extra, "probing before moving up");
                video.probe = Probe::start(up, extra, now);
                probe_started = true;
            }
        } else {
            if video.target != choice {
                tracing::debug!(subscriber = id, from = ?video.layer, to = ?choice, "switching layers at the next keyframe");
            }
            video.target = choice;
        }
        Some(probe_started)
    }

    /// Sends the probe's packets that are due (RTX copies of recent packets).
    pub(super) fn tick_probe(
        &mut self,
        publication: &Publication,
        rtx_buffer: &mut RtxBuffer,
        stats: &mut StreamStats,
        outputs: &mut VecDeque<Output>,
        now: Instant,
    ) -> ProbeTick {
        let idle = ProbeTick {
            passed: false,
            due: None,
        };
        let Some(video) = self.video.as_mut() else {
            return idle;
        };
        let mut passed = false;
        match video.probe.tick(now) {
            Tick::Idle => {}
            Tick::Passed => passed = true,
            Tick::Send { budget, cursor } => {
                let Some(layer) = video.layer else {
                    video.probe = Probe::Idle;
                    return idle;
                };
                let cache = &publication.up_tracks[layer].cache;
                let (mut bytes, mut packets, mut tried) = (0usize, 0usize, 0u64);
                while (bytes as f64) < budget && packets < MAX_PER_TICK && tried < 2 * PROBE_WINDOW
                {
                    let back = (cursor + tried) % PROBE_WINDOW;
                    tried += 1;
                    let Some(mut packet) = video.probe_copy(back, cache, rtx_buffer) else {
                        continue;
                    };
                    bytes += packet.payload.len() + RTP_OVERHEAD;
                    packets += 1;
                    Subscriber::stamp(&mut self.twcc, &mut packet, now);
                    stats.packets_out += 1;
                    outputs.push_back(Output::Rtp {
                        subscriber: self.id,
                        kind: MediaKind::Video,
                        packet,
                    });
                }
                video.probe.sent(bytes, tried);
            }
        }
        ProbeTick {
            passed,
            due: video.probe.due(),
        }
    }
}
