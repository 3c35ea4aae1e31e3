//! Simulcast: which of a publisher's video layers each viewer gets.
//!
//! A simulcast publisher sends two or three encodings of its video, each on its own SSRC and
//! named by a RID. Layers are ranked from the smallest picture to the largest by their measured
//! bitrate (by the usual RID names, `q`/`h`/`f`, `l`/`m`/`h`, `low`/`mid`/`high`, until bitrates
//! are known). A viewer gets one layer: the one it pinned ([`Quality`]), or with
//! [`Quality::Auto`] the highest whose bitrate fits its bandwidth estimate
//! ([`BandwidthEstimator`]).
//!
//! The estimate comes down on either of Google congestion control's two signals: loss (RFC 3550
//! receiver reports: the viewer's fraction lost) and, for viewers that negotiated
//! transport-wide congestion control, a growing one-way delay (the link's queue filling up,
//! seen in their transport feedback before anything is lost; see `twcc`). It goes back up
//! slowly while the link is clean, and is capped by the viewer's REMB when it sends one.

use std::time::{Duration, Instant};

use rtc::interceptor::Usage;

/// The picture a viewer asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Quality {
    /// The best layer the viewer's network carries (bandwidth estimation).
    #[default]
    Auto,
    /// The smallest layer.
    Low,
    /// The middle layer (the higher of two when there are only two).
    Medium,
    /// The largest layer.
    High,
}

impl Quality {
    /// Parses `auto`, `low`, `medium` or `high` (case-insensitive).
    pub fn parse(text: &str) -> Option<Self> {
        match text.to_ascii_lowercase().as_str() {
            "auto" => Some(Quality::Auto),
            "low" => Some(Quality::Low),
            "medium" => Some(Quality::Medium),
            "high" => Some(Quality::High),
            _ => None,
        }
    }

    /// The name [`Quality::parse`] reads.
    pub fn as_str(self) -> &'static str {
        match self {
            Quality::Auto => "auto",
            Quality::Low => "low",
            Quality::Medium => "medium",
            Quality::High => "high",
        }
    }
}

/// A RID's rank by naming convention (smaller picture first), for ranking layers before their
/// bitrates are measured.
pub(crate) fn rid_rank(rid: &str) -> u8 {
    match rid.to_ascii_lowercase().as_str() {
        "q" | "l" | "lo" | "low" | "quarter" => 0,
        "h" | "m" | "mid" | "medium" | "half" => 1,
        "f" | "hi" | "high" | "full" => 2,
        _ => 1,
    }
}

/// A viewer keeps its layer (or one below it) while its estimate is at least this share of the
/// layer's bitrate, and moves up only when the estimate is this much above the new layer's:
/// estimates (a receiver's REMB follows what it gets) hover around the bitrate of the layer
/// being received, and must not bounce it between layers.
const KEEP_SHARE: f64 = 0.8;
const UP_SHARE: f64 = 1.15;

/// The layer (0 = smallest) a viewer with `quality` and `estimate_bps` gets, out of layers
/// whose bitrates are `bitrates` (ranked smallest first), when it is on layer `current` now.
pub(crate) fn choose_layer(
    quality: Quality,
    bitrates: &[u64],
    estimate_bps: Option<u64>,
    current: Option<usize>,
) -> usize {
    let Some(top) = bitrates.len().checked_sub(1) else {
        return 0;
    };
    match quality {
        Quality::Low => 0,
        Quality::Medium => top.min(1),
        Quality::High => top,
        Quality::Auto => match estimate_bps {
            None => top,
            Some(estimate) => (0..=top)
                .rev()
                .find(|&layer| {
                    let share = if current.is_some_and(|current| layer <= current) {
                        KEEP_SHARE
                    } else {
                        UP_SHARE
                    };
                    bitrates[layer] as f64 * share <= estimate as f64
                })
                .unwrap_or(0),
        },
    }
}

/// The highest temporal layer (0 = base) a viewer on a layer's smallest picture gets with
/// `estimate_bps`, given the bitrates of temporal layers 0..=t together (`cumulative`, one
/// entry per temporal layer), while it gets up to `current` now; `None` means all of them.
/// The level it gets now is kept while it fits loosely, a lower one must fit, and a higher one
/// needs room (as in [`choose_layer`]).
pub(crate) fn choose_temporal(
    cumulative: &[u64],
    estimate_bps: Option<u64>,
    current: Option<u8>,
) -> Option<u8> {
    let (Some(estimate), Some(top)) = (estimate_bps, cumulative.len().checked_sub(1)) else {
        return None;
    };
    let level = current.map_or(top, usize::from);
    let fits = |layer: usize| {
        let share = match layer.cmp(&level) {
            std::cmp::Ordering::Equal => KEEP_SHARE,
            std::cmp::Ordering::Less => 1.0,
            std::cmp::Ordering::Greater => UP_SHARE,
        };
        cumulative[layer] as f64 * share <= estimate as f64
    };
    if top == 0 || fits(top) {
        return None;
    }
    Some((1..top).rev().find(|&layer| fits(layer)).unwrap_or(0) as u8)
}

/// Loss above which the estimate goes down.
const LOSS_HIGH: f64 = 0.10;
/// Loss below which the estimate may go up.
const LOSS_LOW: f64 = 0.02;
/// Growth per increase while the link is clean.
const INCREASE: f64 = 1.08;
/// At most one increase per this long ("up slowly").
const INCREASE_INTERVAL: Duration = Duration::from_millis(1000);
/// After a decrease (on loss, a growing queue or a failed probe), loss reports are not acted
/// on for this long: the next report
/// still covers packets of the layer the viewer was moved off (the switch waits for a keyframe
/// of the new one), and its loss would be charged a second time against the smaller layer
/// (libwebrtc waits 300 ms plus a round trip; receiver reports come every 0.5–1 s).
const DECREASE_INTERVAL: Duration = Duration::from_millis(1000);
/// On a growing queue, the estimate drops to this share of the acknowledged rate.
const DELAY_DECREASE: f64 = 0.85;
/// The estimate never goes below this (a viewer always gets the smallest layer, thinned to its
/// base temporal layer if it must be).
const MIN_ESTIMATE_BPS: u64 = 50_000;
/// After loss at some rate, the estimate stays below it for this long (doubling with every
/// further loss at that level, up to [`MAX_HOLD`]) before trying it again: a viewer whose link
/// cannot carry a layer is not moved back onto it every few seconds.
const FIRST_HOLD: Duration = Duration::from_secs(10);
const MAX_HOLD: Duration = Duration::from_secs(60);

/// One viewer's bandwidth estimate, fed with its receiver reports, its transport-wide feedback's
/// delay verdicts, the outcome of its link probes and its REMBs.
#[derive(Debug, Clone, Default)]
pub(crate) struct BandwidthEstimator {
    /// What the viewer's loss, queueing delay and probes say its link carries; `None` until
    /// one of them says anything.
    measured: Option<u64>,
    /// The viewer's own estimate (REMB), if it sends one.
    remb: Option<u64>,
    last_increase: Option<Instant>,
    last_decrease: Option<Instant>,
    /// The rate at which loss was last seen, until when the estimate stays below it, and
    /// the hold the next loss gets.
    congested: Option<(u64, Instant, Duration)>,
}

impl BandwidthEstimator {
    /// The current estimate, if there is one.
    pub(crate) fn estimate(&self) -> Option<u64> {
        match (self.measured, self.remb) {
            (Some(loss), Some(remb)) => Some(loss.min(remb)),
            (one, other) => one.or(other),
        }
    }

    /// A receiver report: `fraction_lost` (0–255, RFC 3550) since the previous one, while the
    /// viewer was being sent `sending_bps`. Returns whether the estimate changed.
    pub(crate) fn on_receiver_report(
        &mut self,
        fraction_lost: u8,
        sending_bps: u64,
        ceiling_bps: u64,
        now: Instant,
    ) -> bool {
        let loss = f64::from(fraction_lost) / 256.0;
        let before = self.measured;
        let current = self.measured.unwrap_or(sending_bps.max(MIN_ESTIMATE_BPS));
        let next = if loss > LOSS_HIGH
            && self
                .last_decrease
                .is_some_and(|at| now < at + DECREASE_INTERVAL)
        {
            // Loss of the packets sent before the last decrease took effect.
            Some(current)
        } else if loss > LOSS_HIGH {
            self.last_decrease = Some(now);
            // What actually got through, and a little less: down fast.
            let base = current.min(sending_bps.max(MIN_ESTIMATE_BPS)) as f64;
            self.congest(sending_bps, now);
            // Below what got through, and below the share that keeps a layer: a link that
            // loses over 10 % of a layer cannot carry it.
            Some((base * (1.0 - loss) * 0.9) as u64)
        } else if loss < LOSS_LOW {
            if self.measured.is_none() {
                // A clean link says nothing about its limit yet.
                None
            } else if self
                .last_increase
                .is_none_or(|at| now >= at + INCREASE_INTERVAL)
            {
                self.last_increase = Some(now);
                let mut next = ((current as f64 * INCREASE) as u64).min(ceiling_bps.max(current));
                if let Some((rate, until, _)) = self.congested
                    && now < until
                {
                    next = next.min(rate * 9 / 10).max(current);
                }
                Some(next)
            } else {
                Some(current)
            }
        } else {
            Some(current)
        };
        self.measured = next.map(|bps| bps.max(MIN_ESTIMATE_BPS));
        // Once the clean link's estimate passes every layer, it no longer limits anything.
        if self.measured.is_some_and(|bps| bps >= ceiling_bps) && loss < LOSS_LOW {
            self.measured = None;
        }
        self.measured != before
    }

    /// Remembers that the link could not carry `sending_bps`: the estimate stays below it for
    /// the current hold, and the next congestion holds twice as long.
    fn congest(&mut self, sending_bps: u64, now: Instant) {
        let hold = self
            .congested
            .map_or(FIRST_HOLD, |(_, _, next)| next)
            .min(MAX_HOLD);
        let rate = sending_bps.max(MIN_ESTIMATE_BPS);
        self.congested = Some((rate, now + hold, (hold * 2).min(MAX_HOLD)));
    }

    /// A transport-wide feedback verdict: `usage` is the delay trend of the viewer's link and
    /// `received_bps` what it acknowledged lately, while it was being sent `sending_bps` of
    /// video. A growing queue (`Over`) brings the estimate down to 85 % of what gets through
    /// (GCC's decrease), before the queue overflows into loss; going back up is left to the
    /// clean receiver reports, one slow step at a time. Returns whether the estimate changed.
    pub(crate) fn on_delay(
        &mut self,
        usage: Usage,
        received_bps: Option<u64>,
        sending_bps: u64,
        now: Instant,
    ) -> bool {
        let (Usage::Over, Some(received)) = (usage, received_bps) else {
            return false;
        };
        let target = ((received as f64 * DELAY_DECREASE) as u64).max(MIN_ESTIMATE_BPS);
        if self.measured.is_some_and(|current| current <= target) {
            return false;
        }
        // A new congestion episode (not the same queue seen again by the next report).
        if self.congested.is_none_or(|(_, until, _)| now >= until) {
            self.congest(sending_bps, now);
        }
        self.measured = Some(target);
        self.last_decrease = Some(now);
        true
    }

    /// Whether a receiver report's loss fails a running probe (the same threshold that brings
    /// the estimate down).
    pub(crate) fn loss_fails_probe(fraction_lost: u8) -> bool {
        f64::from(fraction_lost) / 256.0 > LOSS_HIGH
    }

    /// A probe failed on loss: `fraction_lost` while the viewer was sent `probed_bps` (its
    /// layer's `sending_bps` and the probe's extra). See [`Self::probe_failed`].
    pub(crate) fn on_probe_loss(
        &mut self,
        fraction_lost: u8,
        sending_bps: u64,
        probed_bps: u64,
        now: Instant,
    ) -> bool {
        let loss = f64::from(fraction_lost) / 256.0;
        let through = (probed_bps as f64 * (1.0 - loss) * 0.9) as u64;
        self.probe_failed(through, sending_bps, probed_bps, now)
    }

    /// A probe failed on a growing queue: the viewer acknowledged `received_bps` of video
    /// while it was sent `probed_bps`. See [`Self::probe_failed`].
    pub(crate) fn on_probe_queue(
        &mut self,
        received_bps: Option<u64>,
        sending_bps: u64,
        probed_bps: u64,
        now: Instant,
    ) -> bool {
        let through = received_bps.map_or(sending_bps, |bps| (bps as f64 * DELAY_DECREASE) as u64);
        self.probe_failed(through, sending_bps, probed_bps, now)
    }

    /// A probe failed: the viewer was sent `probed_bps` (its layer's `sending_bps` and the
    /// probe's extra) and `through_bps` is what its feedback says got through. The estimate
    /// goes below the probed rate — and stays below it for the congestion hold, so the viewer is
    /// not probed again at once — but not below the layer it is on, which its link carried
    /// before the probe. Returns whether the estimate changed.
    fn probe_failed(
        &mut self,
        through_bps: u64,
        sending_bps: u64,
        probed_bps: u64,
        now: Instant,
    ) -> bool {
        let before = self.measured;
        self.congest(probed_bps, now);
        let target = through_bps
            .min(probed_bps * 9 / 10)
            .max(sending_bps)
            .max(MIN_ESTIMATE_BPS);
        self.measured = Some(
            self.estimate()
                .map_or(target, |current| current.min(target)),
        );
        self.last_decrease = Some(now);
        self.measured != before
    }

    /// The viewer's REMB. Returns whether the estimate changed.
    pub(crate) fn on_remb(&mut self, bitrate_bps: u64) -> bool {
        let before = self.remb;
        self.remb = Some(bitrate_bps.max(MIN_ESTIMATE_BPS));
        self.remb != before
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_clock;

    const LAYERS: [u64; 3] = [150_000, 500_000, 1_500_000];

    #[test]
    fn pinned_quality_ignores_the_estimate() {
        assert_eq!(choose_layer(Quality::Low, &LAYERS, None, None), 0);
        assert_eq!(choose_layer(Quality::Medium, &LAYERS, Some(10), None), 1);
        assert_eq!(choose_layer(Quality::High, &LAYERS, Some(10), None), 2);
        assert_eq!(choose_layer(Quality::Medium, &LAYERS[..2], None, None), 1);
        assert_eq!(choose_layer(Quality::High, &[], None, None), 0);
    }

    #[test]
    fn auto_takes_the_highest_layer_that_fits() {
        assert_eq!(choose_layer(Quality::Auto, &LAYERS, None, None), 2);
        assert_eq!(
            choose_layer(Quality::Auto, &LAYERS, Some(2_000_000), None),
            2
        );
        assert_eq!(choose_layer(Quality::Auto, &LAYERS, Some(700_000), None), 1);
        assert_eq!(choose_layer(Quality::Auto, &LAYERS, Some(100_000), None), 0);
    }

    #[test]
    fn an_estimate_near_the_layers_bitrate_neither_drops_nor_raises_it() {
        // Receiving the middle layer with an estimate just under its bitrate: it stays.
        assert_eq!(
            choose_layer(Quality::Auto, &LAYERS, Some(450_000), Some(1)),
            1
        );
        // Well under it: down.
        assert_eq!(
            choose_layer(Quality::Auto, &LAYERS, Some(350_000), Some(1)),
            0
        );
        // On the low layer, just enough for the middle one is not enough to move up.
        assert_eq!(
            choose_layer(Quality::Auto, &LAYERS, Some(520_000), Some(0)),
            0
        );
        assert_eq!(
            choose_layer(Quality::Auto, &LAYERS, Some(600_000), Some(0)),
            1
        );
    }

    #[test]
    fn loss_brings_the_estimate_down_fast_and_a_clean_link_up_slowly() {
        let t0 = test_clock::start();
        let mut bwe = BandwidthEstimator::default();
        assert!(!bwe.on_receiver_report(0, 1_500_000, 2_250_000, t0));
        assert_eq!(bwe.estimate(), None, "a clean link sets no limit");
        // 30 % loss while sending 1.5 Mbit/s: down at once, below what got through.
        assert!(bwe.on_receiver_report(77, 1_500_000, 2_250_000, t0));
        let low = bwe.estimate().unwrap();
        assert!(low < 1_300_000, "{low}");
        assert_eq!(choose_layer(Quality::Auto, &LAYERS, Some(low), None), 1);
        // Clean again: at most one 8 % step a second (and not past 90 % of the congested rate).
        let mut now = t0;
        let mut steps = 0;
        for _ in 0..10 {
            now += Duration::from_millis(250);
            if bwe.on_receiver_report(0, 500_000, 2_250_000, now) {
                steps += 1;
            }
        }
        assert!((1..=3).contains(&steps), "{steps}");
        assert!(bwe.estimate().unwrap() < low * 13 / 10);
    }

    #[test]
    fn a_failed_probe_keeps_the_layer_the_viewer_is_on() {
        let t0 = test_clock::start();
        let mut bwe = BandwidthEstimator::default();
        bwe.on_remb(2_000_000);
        // On the middle layer (500 kbit/s), probing for the top one: the link let 40 % of
        // the probed 1.5 Mbit/s through, which is above the middle layer.
        assert!(bwe.probe_failed(600_000, 500_000, 1_500_000, t0));
        let estimate = bwe.estimate().unwrap();
        assert_eq!(estimate, 600_000);
        assert_eq!(
            choose_layer(Quality::Auto, &LAYERS, Some(estimate), Some(1)),
            1
        );
        // Even if its feedback said next to nothing got through, it keeps the layer it had.
        let mut bwe = BandwidthEstimator::default();
        bwe.probe_failed(100_000, 500_000, 1_500_000, t0);
        assert_eq!(bwe.estimate(), Some(500_000));
        assert_eq!(
            choose_layer(Quality::Auto, &LAYERS, bwe.estimate(), Some(1)),
            1
        );
        // And the loss of the report that follows is not charged again.
        assert!(!bwe.on_receiver_report(100, 500_000, 2_250_000, t0 + Duration::from_millis(500)));
    }

    #[test]
    fn a_delay_decrease_also_holds_off_the_next_loss_report() {
        let t0 = test_clock::start();
        let mut bwe = BandwidthEstimator::default();
        assert!(bwe.on_delay(Usage::Over, Some(400_000), 1_500_000, t0));
        let after = bwe.estimate();
        assert!(!bwe.on_receiver_report(160, 150_000, 2_250_000, t0 + Duration::from_millis(600)));
        assert_eq!(bwe.estimate(), after);
    }

    #[test]
    fn the_report_after_a_decrease_does_not_charge_the_old_layers_loss_again() {
        let t0 = test_clock::start();
        let mut bwe = BandwidthEstimator::default();
        // 65 % loss on the top layer: down to about a third of it.
        assert!(bwe.on_receiver_report(166, 1_000_000, 2_250_000, t0));
        let after_first = bwe.estimate().unwrap();
        // Half a second later, on the smaller layer, the report still shows the top layer's
        // loss: the estimate stays.
        let later = t0 + Duration::from_millis(500);
        assert!(!bwe.on_receiver_report(166, 400_000, 2_250_000, later));
        assert_eq!(bwe.estimate(), Some(after_first));
        // Loss that persists past the interval counts again.
        let much_later = t0 + Duration::from_millis(1500);
        assert!(bwe.on_receiver_report(166, 400_000, 2_250_000, much_later));
        assert!(bwe.estimate().unwrap() < after_first);
    }

    #[test]
    fn after_loss_the_estimate_stays_below_the_congested_rate_for_a_while() {
        let t0 = test_clock::start();
        let mut bwe = BandwidthEstimator::default();
        // Loss while sending the top layer: down to the middle one.
        bwe.on_receiver_report(77, 1_500_000, 2_250_000, t0);
        // A clean link for 8 s: the estimate grows, but not back past 90 % of 1.5 Mbit/s.
        let mut now = t0;
        for _ in 0..8 {
            now += Duration::from_secs(1);
            bwe.on_receiver_report(0, 500_000, 2_250_000, now);
        }
        let held = bwe.estimate().unwrap();
        assert!(held <= 1_350_000, "{held}");
        assert_eq!(choose_layer(Quality::Auto, &LAYERS, Some(held), None), 1);
        // Once the hold is over it may try the top layer again.
        for _ in 0..10 {
            now += Duration::from_secs(1);
            bwe.on_receiver_report(0, 500_000, 2_250_000, now);
        }
        assert!(
            bwe.estimate().is_none_or(|bps| bps > 1_500_000),
            "{:?}",
            bwe.estimate()
        );
    }

    #[test]
    fn a_growing_queue_brings_the_estimate_below_what_gets_through() {
        let t0 = test_clock::start();
        let mut bwe = BandwidthEstimator::default();
        assert!(!bwe.on_delay(Usage::Normal, Some(1_500_000), 1_500_000, t0));
        assert!(
            !bwe.on_delay(Usage::Over, None, 1_500_000, t0),
            "no rate yet"
        );
        assert_eq!(bwe.estimate(), None);
        // The queue grows while 1 Mbit/s gets through: 850 kbit/s, the middle layer.
        assert!(bwe.on_delay(Usage::Over, Some(1_000_000), 1_500_000, t0));
        assert_eq!(bwe.estimate(), Some(850_000));
        assert_eq!(
            choose_layer(Quality::Auto, &LAYERS, bwe.estimate(), Some(2)),
            1
        );
        // The next report sees the same queue: no further change, no longer hold.
        let later = t0 + Duration::from_millis(100);
        assert!(!bwe.on_delay(Usage::Over, Some(1_100_000), 1_500_000, later));
        let (_, until, _) = bwe.congested.unwrap();
        assert_eq!(until, t0 + FIRST_HOLD);
        // Clean receiver reports raise it again, but not back onto 1.5 Mbit/s within the hold.
        let mut now = later;
        for _ in 0..5 {
            now += Duration::from_secs(1);
            bwe.on_receiver_report(0, 500_000, 2_250_000, now);
        }
        assert!(bwe.estimate().unwrap() <= 1_350_000);
    }

    #[test]
    fn remb_caps_the_estimate() {
        let mut bwe = BandwidthEstimator::default();
        assert!(bwe.on_remb(300_000));
        assert_eq!(bwe.estimate(), Some(300_000));
        assert!(!bwe.on_remb(300_000));
    }

    #[test]
    fn quality_names_round_trip() {
        for q in [Quality::Auto, Quality::Low, Quality::Medium, Quality::High] {
            assert_eq!(Quality::parse(q.as_str()), Some(q));
        }
        assert_eq!(Quality::parse("ultra"), None);
    }

    #[test]
    fn temporal_layers_thin_a_layer_the_estimate_cannot_carry() {
        // 60, 90 and 150 kbit/s for temporal layers up to 0, 1 and 2.
        let cumulative = [60_000, 90_000, 150_000];
        assert_eq!(choose_temporal(&cumulative, None, None), None);
        assert_eq!(choose_temporal(&cumulative, Some(500_000), None), None);
        assert_eq!(choose_temporal(&cumulative, Some(100_000), None), Some(1));
        assert_eq!(choose_temporal(&cumulative, Some(85_000), None), Some(0));
        assert_eq!(choose_temporal(&cumulative, Some(110_000), None), Some(1));
        assert_eq!(choose_temporal(&cumulative, Some(10_000), None), Some(0));
        // Kept while it fits loosely, added only with room.
        assert_eq!(choose_temporal(&cumulative, Some(80_000), Some(1)), Some(1));
        assert_eq!(
            choose_temporal(&cumulative, Some(100_000), Some(0)),
            Some(0)
        );
        assert_eq!(
            choose_temporal(&cumulative, Some(150_000), Some(1)),
            Some(1)
        );
        assert_eq!(choose_temporal(&cumulative, Some(180_000), Some(1)), None);
        // One temporal layer, nothing to thin.
        assert_eq!(choose_temporal(&[60_000], Some(1_000), None), None);
    }
}
