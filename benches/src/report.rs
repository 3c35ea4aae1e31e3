//! What a run measured, summed over viewers: the JSON object `--json` prints and the human
//! table printed otherwise.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::histogram::Histogram;
use crate::publisher::PublisherStats;
use crate::viewer::ViewerStats;

/// Percentiles in milliseconds.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub struct Percentiles {
    /// Median.
    pub p50: f64,
    /// 95th percentile.
    pub p95: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Largest value.
    pub max: f64,
}

/// One viewer's figures, with `--per-viewer`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ViewerRow {
    /// ICE and DTLS came up.
    pub connected: bool,
    /// Join request to first keyframe, in ms.
    pub join_ms: Option<f64>,
    /// Packets expected (audio + video).
    pub expected: u64,
    /// Distinct packets received.
    pub received: u64,
    /// Expected minus received.
    pub lost: u64,
    /// Median forwarding delay in ms.
    pub latency_p50_ms: Option<f64>,
    /// Why the viewer stopped early, if it did.
    pub error: Option<String>,
}

/// Server process figures over the measurement window, when its pid was given.
#[derive(Debug, Clone, Copy, Default)]
pub struct ServerUsage {
    /// CPU time the server used in the window.
    pub cpu: Duration,
    /// Length of the window.
    pub wall: Duration,
    /// Packets all viewers received in the window.
    pub packets: u64,
    /// Resident memory before the first viewer.
    pub rss_before_kib: u64,
    /// Resident memory at the end of the window.
    pub rss_after_kib: u64,
    /// CPU time of the server's media thread (`directo-media`) in the window, if it has one.
    pub media_thread_cpu: Option<Duration>,
}

/// Stream-info polls during the run (`--api-pollers`).
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub struct PollFigures {
    /// Polling clients.
    pub clients: usize,
    /// Answered polls a second over the run.
    pub answered_per_s: f64,
    /// Polls that failed or got an error status.
    pub failed: u64,
}

/// Everything a run measured.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
    /// `directo` or `janus`.
    pub target: String,
    /// Viewers started.
    pub viewers: usize,
    /// Viewers whose ICE and DTLS came up.
    pub connected: usize,
    /// Viewers that received a keyframe.
    pub receiving: usize,
    /// Video bitrate asked for, kbit/s.
    pub bitrate_kbps: u32,
    /// Video frames a second.
    pub fps: u32,
    /// The publisher's pacing rate as a multiple of the bitrate (0: each frame in one burst).
    #[serde(default)]
    pub pace_factor: f64,
    /// Length of the server measurement window, seconds.
    pub window_s: f64,
    /// RTP packets the publisher sent.
    pub publisher_packets: u64,
    /// Keyframe requests the publisher got.
    pub publisher_keyframe_requests: u64,
    /// Packets expected by all viewers (from their sequence numbers).
    pub packets_expected: u64,
    /// Distinct packets received by all viewers.
    pub packets_received: u64,
    /// Expected minus received, summed.
    pub packets_lost: u64,
    /// Lost over expected.
    pub loss_ratio: f64,
    /// The worst single viewer's loss ratio.
    pub worst_viewer_loss_ratio: f64,
    /// Viewers watching over a narrowed link (`--constrained-share`); their loss is counted
    /// apart, not in the figures above.
    #[serde(default)]
    pub constrained: usize,
    /// Their raw loss (their link drops what it cannot carry).
    #[serde(default)]
    pub constrained_loss_ratio: f64,
    /// Simulcast: constrained viewers whose last keyframe was of the smallest layer (the
    /// smallest picture any viewer got: when every viewer got the same layer it counts as
    /// both the smallest and the largest; `constrained_layer_widths` tells which).
    #[serde(default)]
    pub constrained_on_lowest_layer: usize,
    /// Simulcast: the other viewers whose last keyframe was of the largest layer (the
    /// largest picture any viewer got).
    #[serde(default)]
    pub others_on_top_layer: usize,
    /// Simulcast: constrained viewers by the picture width of their last keyframe.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub constrained_layer_widths: BTreeMap<u16, usize>,
    /// Simulcast: the other viewers by the picture width of their last keyframe.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub other_layer_widths: BTreeMap<u16, usize>,
    /// Constrained viewers by the highest VP8 temporal layer of their last second of video
    /// (below the publisher's top one: their layer was thinned).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub constrained_temporal_layers: BTreeMap<u8, usize>,
    /// The other viewers by the same.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub other_temporal_layers: BTreeMap<u8, usize>,
    /// Frames, over all viewers, whose picture id skipped ahead with no packet lost in
    /// between (holes a decoder would wait on).
    #[serde(default)]
    pub picture_id_gaps: u64,
    /// RTX packets all viewers received: probe traffic before a move up a simulcast layer (the
    /// generator's viewers send no NACKs).
    #[serde(default)]
    pub probe_packets: u64,
    /// Publisher send to viewer receive, per packet sent once its viewer was connected.
    pub latency_ms: Percentiles,
    /// Packets sent before their viewer was connected, which a start on the server's cached
    /// keyframe delivered (not in `latency_ms`: their wait is the join's).
    #[serde(default)]
    pub catch_up_packets: u64,
    /// Join request to first keyframe, per viewer.
    pub join_ms: Percentiles,
    /// Join request to ICE and DTLS up, per viewer.
    pub connect_ms: Percentiles,
    /// Packets a second all viewers received during the window.
    pub forwarded_pps: Option<f64>,
    /// Server CPU microseconds per packet received by a viewer, during the window.
    pub server_cpu_us_per_packet: Option<f64>,
    /// Server CPU use during the window, percent of one core.
    pub server_cpu_percent: Option<f64>,
    /// The media thread's CPU use during the window, percent of one core (Directo only).
    #[serde(default)]
    pub media_thread_cpu_percent: Option<f64>,
    /// Stream-info polls, with `--api-pollers`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_polls: Option<PollFigures>,
    /// Server resident memory at the end of the window, KiB.
    pub server_rss_kib: Option<u64>,
    /// Server resident memory growth since before the first viewer, per connected viewer.
    pub server_rss_kib_per_viewer: Option<f64>,
    /// The load generator's own CPU use during the window, percent of one core (near 100
    /// per worker thread means the generator, not the server, was the limit).
    pub generator_cpu_percent: Option<f64>,
    /// Distinct viewer errors and how many viewers hit each.
    pub errors: BTreeMap<String, usize>,
    /// Per-viewer figures, with `--per-viewer`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub per_viewer: Option<Vec<ViewerRow>>,
}

fn millis(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

fn histogram_percentiles(histogram: &Histogram) -> Percentiles {
    let at = |q| histogram.quantile(q).map_or(0.0, millis);
    Percentiles {
        p50: at(0.5),
        p95: at(0.95),
        p99: at(0.99),
        max: at(1.0),
    }
}

fn sorted_percentiles(mut values: Vec<Duration>) -> Percentiles {
    if values.is_empty() {
        return Percentiles::default();
    }
    values.sort();
    let at = |q: f64| {
        let rank = ((q * values.len() as f64).ceil() as usize).clamp(1, values.len());
        millis(values[rank - 1])
    };
    Percentiles {
        p50: at(0.5),
        p95: at(0.95),
        p99: at(0.99),
        max: at(1.0),
    }
}

/// The run-wide facts a report is built from, besides the viewers.
pub struct RunFacts {
    /// `directo` or `janus`.
    pub target: String,
    /// Video bitrate asked for.
    pub bitrate_kbps: u32,
    /// Frames a second.
    pub fps: u32,
    /// Pacing rate as a multiple of the bitrate (0: bursts).
    pub pace_factor: f64,
    /// The publisher's figures.
    pub publisher: PublisherStats,
    /// Packets all viewers received during the window, and its length.
    pub window: (u64, Duration),
    /// Server process figures, if its pid was given.
    pub server: Option<ServerUsage>,
    /// The generator's CPU time during the window.
    pub generator_cpu: Option<Duration>,
    /// Keep per-viewer rows.
    pub per_viewer: bool,
    /// Stream-info polls, if there were pollers.
    pub api_polls: Option<PollFigures>,
}

impl Report {
    /// Sums the viewers' figures.
    pub fn build(facts: RunFacts, viewers: &[ViewerStats]) -> Report {
        let mut latency = Histogram::new();
        let mut joins = Vec::new();
        let mut connects = Vec::new();
        let mut errors = BTreeMap::new();
        let (mut expected, mut received, mut worst) = (0u64, 0u64, 0f64);
        let mut rows = Vec::new();
        let widths = viewers.iter().filter_map(|v| v.layer_width);
        let (lowest, top) = (widths.clone().min(), widths.max());
        let (mut constrained, mut constrained_expected, mut constrained_lost) = (0, 0, 0);
        let (mut constrained_low, mut others_top) = (0, 0);
        let (mut constrained_widths, mut other_widths) = (BTreeMap::new(), BTreeMap::new());
        let (mut constrained_temporal, mut other_temporal) = (BTreeMap::new(), BTreeMap::new());
        for viewer in viewers {
            latency.merge(&viewer.latency);
            joins.extend(viewer.join);
            connects.extend(viewer.connect);
            let mine_expected = viewer.audio.expected() + viewer.video.expected();
            let mine_received = viewer.audio.received + viewer.video.received;
            let mine_lost = viewer.audio.lost() + viewer.video.lost();
            if let Some(width) = viewer.layer_width {
                let widths = if viewer.link_kbps.is_some() {
                    &mut constrained_widths
                } else {
                    &mut other_widths
                };
                *widths.entry(width).or_insert(0) += 1;
            }
            if let Some(layer) = viewer.temporal_layer {
                let layers = if viewer.link_kbps.is_some() {
                    &mut constrained_temporal
                } else {
                    &mut other_temporal
                };
                *layers.entry(layer).or_insert(0) += 1;
            }
            if viewer.link_kbps.is_some() {
                constrained += 1;
                constrained_expected += mine_expected;
                constrained_lost += mine_lost;
                constrained_low +=
                    usize::from(viewer.layer_width.is_some() && viewer.layer_width == lowest);
                continue;
            }
            others_top += usize::from(viewer.layer_width.is_some() && viewer.layer_width == top);
            expected += mine_expected;
            received += mine_received;
            if mine_expected > 0 {
                worst = worst.max(mine_lost as f64 / mine_expected as f64);
            }
            if let Some(error) = &viewer.error {
                *errors.entry(error.clone()).or_insert(0) += 1;
            }
            if facts.per_viewer {
                rows.push(ViewerRow {
                    connected: viewer.connected,
                    join_ms: viewer.join.map(millis),
                    expected: mine_expected,
                    received: mine_received,
                    lost: mine_lost,
                    latency_p50_ms: viewer.latency.quantile(0.5).map(millis),
                    error: viewer.error.clone(),
                });
            }
        }
        let lost = viewers
            .iter()
            .filter(|v| v.link_kbps.is_none())
            .map(|v| v.audio.lost() + v.video.lost())
            .sum::<u64>();
        let connected = viewers.iter().filter(|v| v.connected).count();
        let (window_packets, window) = facts.window;
        let window_s = window.as_secs_f64();
        let forwarded_pps = (window_s > 0.0).then(|| window_packets as f64 / window_s);
        let server = facts.server;
        Report {
            target: facts.target,
            viewers: viewers.len(),
            connected,
            receiving: viewers.iter().filter(|v| v.join.is_some()).count(),
            bitrate_kbps: facts.bitrate_kbps,
            fps: facts.fps,
            pace_factor: facts.pace_factor,
            window_s,
            publisher_packets: facts.publisher.packets_sent,
            publisher_keyframe_requests: facts.publisher.keyframe_requests,
            packets_expected: expected,
            packets_received: received,
            packets_lost: lost,
            loss_ratio: if expected > 0 {
                lost as f64 / expected as f64
            } else {
                0.0
            },
            worst_viewer_loss_ratio: worst,
            constrained,
            constrained_loss_ratio: if constrained_expected > 0 {
                constrained_lost as f64 / constrained_expected as f64
            } else {
                0.0
            },
            constrained_on_lowest_layer: constrained_low,
            others_on_top_layer: others_top,
            constrained_layer_widths: constrained_widths,
            other_layer_widths: other_widths,
            constrained_temporal_layers: constrained_temporal,
            other_temporal_layers: other_temporal,
            picture_id_gaps: viewers.iter().map(|v| v.picture_gaps).sum(),
            probe_packets: viewers.iter().map(|v| v.probe_packets).sum(),
            latency_ms: histogram_percentiles(&latency),
            catch_up_packets: viewers.iter().map(|v| v.catch_up_packets).sum(),
            join_ms: sorted_percentiles(joins),
            connect_ms: sorted_percentiles(connects),
            forwarded_pps,
            server_cpu_us_per_packet: server
                .filter(|s| s.packets > 0)
                .map(|s| s.cpu.as_secs_f64() * 1e6 / s.packets as f64),
            server_cpu_percent: server
                .filter(|s| !s.wall.is_zero())
                .map(|s| s.cpu.as_secs_f64() / s.wall.as_secs_f64() * 100.0),
            media_thread_cpu_percent: server.filter(|s| !s.wall.is_zero()).and_then(|s| {
                Some(s.media_thread_cpu?.as_secs_f64() / s.wall.as_secs_f64() * 100.0)
            }),
            api_polls: facts.api_polls,
            server_rss_kib: server.map(|s| s.rss_after_kib),
            server_rss_kib_per_viewer: server.filter(|_| connected > 0).map(|s| {
                s.rss_after_kib.saturating_sub(s.rss_before_kib) as f64 / connected as f64
            }),
            generator_cpu_percent: facts
                .generator_cpu
                .filter(|_| window_s > 0.0)
                .map(|cpu| cpu.as_secs_f64() / window_s * 100.0),
            errors,
            per_viewer: facts.per_viewer.then_some(rows),
        }
    }
}

fn optional(value: Option<f64>, unit: &str) -> String {
    value.map_or_else(
        || "n/a (no --server-pid)".to_owned(),
        |v| format!("{v:.2}{unit}"),
    )
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let row = |f: &mut fmt::Formatter<'_>, name: &str, value: String| {
            writeln!(f, "  {name:<30} {value}")
        };
        writeln!(f, "{} load: {} viewers", self.target, self.viewers)?;
        row(
            f,
            "connected / receiving",
            format!("{} / {}", self.connected, self.receiving),
        )?;
        row(
            f,
            "video",
            if self.pace_factor > 0.0 {
                format!(
                    "{} kbit/s at {} fps, paced at {}x",
                    self.bitrate_kbps, self.fps, self.pace_factor
                )
            } else {
                format!(
                    "{} kbit/s at {} fps, frames in bursts",
                    self.bitrate_kbps, self.fps
                )
            },
        )?;
        row(f, "publisher packets", self.publisher_packets.to_string())?;
        row(
            f,
            "packets expected/received/lost",
            format!(
                "{} / {} / {}",
                self.packets_expected, self.packets_received, self.packets_lost
            ),
        )?;
        row(
            f,
            "loss (all / worst viewer)",
            format!(
                "{:.4}% / {:.4}%",
                self.loss_ratio * 100.0,
                self.worst_viewer_loss_ratio * 100.0
            ),
        )?;
        if self.constrained > 0 {
            row(
                f,
                "constrained viewers",
                format!(
                    "{} (raw loss {:.2}%); on the lowest layer {}; others on the top layer {}",
                    self.constrained,
                    self.constrained_loss_ratio * 100.0,
                    self.constrained_on_lowest_layer,
                    self.others_on_top_layer
                ),
            )?;
        }
        if !self.constrained_temporal_layers.is_empty() || !self.other_temporal_layers.is_empty() {
            row(
                f,
                "temporal layer lately",
                format!(
                    "constrained {:?}; others {:?}; picture-id gaps {}",
                    self.constrained_temporal_layers,
                    self.other_temporal_layers,
                    self.picture_id_gaps
                ),
            )?;
        }
        let l = self.latency_ms;
        row(
            f,
            "latency p50/p95/p99/max",
            format!(
                "{:.2} / {:.2} / {:.2} / {:.2} ms",
                l.p50, l.p95, l.p99, l.max
            ),
        )?;
        let j = self.join_ms;
        row(
            f,
            "join p50/p95/max",
            format!("{:.0} / {:.0} / {:.0} ms", j.p50, j.p95, j.max),
        )?;
        let c = self.connect_ms;
        row(
            f,
            "connected p50/p95/max",
            format!("{:.0} / {:.0} / {:.0} ms", c.p50, c.p95, c.max),
        )?;
        row(f, "forwarded packets/s", optional(self.forwarded_pps, ""))?;
        row(
            f,
            "server CPU per packet",
            optional(self.server_cpu_us_per_packet, " µs"),
        )?;
        row(
            f,
            "server CPU",
            optional(self.server_cpu_percent, "% of a core"),
        )?;
        if let Some(media) = self.media_thread_cpu_percent {
            row(f, "media thread CPU", format!("{media:.1}% of a core"))?;
        }
        if let Some(polls) = self.api_polls {
            row(
                f,
                "stream-info polls",
                format!(
                    "{} clients, {:.0} answered/s, {} failed",
                    polls.clients, polls.answered_per_s, polls.failed
                ),
            )?;
        }
        row(
            f,
            "server RSS per viewer",
            optional(self.server_rss_kib_per_viewer, " KiB"),
        )?;
        row(
            f,
            "generator CPU",
            self.generator_cpu_percent
                .map_or_else(|| "n/a".to_owned(), |v| format!("{v:.1}% of a core")),
        )?;
        for (error, count) in &self.errors {
            row(f, "viewer error", format!("{count} x {error}"))?;
        }
        Ok(())
    }
}
