//! Probing a viewer's link before moving it up a simulcast layer.
//!
//! Moving up on the estimate alone risks a freeze: the bigger layer starts at a keyframe (the
//! biggest frame there is), and if the link cannot carry it the viewer stalls until loss or
//! delay brings it back down. So a viewer with transport-wide congestion control feedback and
//! an RTX stream first gets the difference in bitrate as extra packets for a second — copies of
//! the packets it just received, sent as RTX packets (the receiver recovers a packet it already
//! has and drops it; its transport feedback still reports each one's arrival) — and moves up
//! only if its feedback shows no growing queue meanwhile. A growing queue ends the probe, and
//! the estimator takes the overuse like any other. This is how libwebrtc probes when it has
//! RTX. Copies go over RTX, never as second copies on the media SSRC: a sequence number sent
//! twice would reuse an SRTP nonce (see `rtx`). A viewer without RTX is not probed.

use std::time::{Duration, Instant};

/// How long a probe runs.
pub(crate) const PROBE_DURATION: Duration = Duration::from_millis(1000);
/// How often a running probe sends its next packets.
pub(crate) const PROBE_TICK: Duration = Duration::from_millis(20);
/// A passed probe lets the viewer move up within this long.
const PROBE_VALID: Duration = Duration::from_secs(3);
/// At most this many probe packets per tick (a few megabits per second at 1,200 bytes).
pub(crate) const MAX_PER_TICK: usize = 8;

/// Where a viewer's probe stands.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) enum Probe {
    /// No probe.
    #[default]
    Idle,
    /// Probing for the stream's track (layer) `layer`: `extra_bps` more than the viewer gets.
    Running {
        layer: usize,
        extra_bps: u64,
        until: Instant,
        next: Instant,
        /// Bytes the probe may still send (it earns `extra_bps` as time passes).
        credit: f64,
        /// Which recent packet is copied next.
        cursor: u64,
    },
    /// The link carried the extra for `layer`: the viewer may move there until `until`.
    Passed { layer: usize, until: Instant },
}

impl Probe {
    /// A probe for `layer`, `extra_bps` above what the viewer gets, from `now`.
    pub(crate) fn start(layer: usize, extra_bps: u64, now: Instant) -> Self {
        Probe::Running {
            layer,
            extra_bps,
            until: now + PROBE_DURATION,
            next: now,
            credit: 0.0,
            cursor: 0,
        }
    }

    /// Whether the viewer may move up to `layer` now.
    pub(crate) fn passed(&self, layer: usize, now: Instant) -> bool {
        matches!(*self, Probe::Passed { layer: passed, until } if passed == layer && now < until)
    }

    /// The extra bitrate a running probe sends (0 otherwise).
    pub(crate) fn extra_bps(&self) -> u64 {
        match *self {
            Probe::Running { extra_bps, .. } => extra_bps,
            _ => 0,
        }
    }

    /// Whether a probe for `layer` is under way.
    pub(crate) fn running_for(&self, layer: usize) -> bool {
        matches!(*self, Probe::Running { layer: probing, .. } if probing == layer)
    }

    /// When the probe next needs the clock.
    pub(crate) fn due(&self) -> Option<Instant> {
        match *self {
            Probe::Running { next, until, .. } => Some(next.min(until)),
            _ => None,
        }
    }

    /// Advances a running probe to `now`: whether it just passed, or what to send now.
    pub(crate) fn tick(&mut self, now: Instant) -> Tick {
        let Probe::Running {
            layer,
            extra_bps,
            until,
            next,
            credit,
            cursor,
        } = self
        else {
            return Tick::Idle;
        };
        if now >= *until {
            *self = Probe::Passed {
                layer: *layer,
                until: now + PROBE_VALID,
            };
            return Tick::Passed;
        }
        if now < *next {
            return Tick::Idle;
        }
        // Credit for one tick at a time: a late timer does not burst.
        *credit = (*credit + *extra_bps as f64 / 8.0 * PROBE_TICK.as_secs_f64())
            .min(*extra_bps as f64 / 8.0 * PROBE_TICK.as_secs_f64() * 2.0);
        *next = now + PROBE_TICK;
        Tick::Send {
            budget: *credit,
            cursor: *cursor,
        }
    }

    /// Records what a tick sent: `bytes`, after trying `tried` recent packets from its cursor.
    pub(crate) fn sent(&mut self, bytes: usize, tried: u64) {
        if let Probe::Running { credit, cursor, .. } = self {
            *credit -= bytes as f64;
            *cursor = cursor.wrapping_add(tried);
        }
    }
}

/// What a probe asks for at a tick.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Tick {
    /// Nothing now.
    Idle,
    /// The probe passed just now.
    Passed,
    /// Send up to `budget` bytes of copies, starting from recent packet `cursor`.
    Send { budget: f64, cursor: u64 },
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_clock;

    #[test]
    fn a_probe_earns_its_rate_then_passes() {
        let t0 = test_clock::start();
        let mut probe = Probe::start(2, 400_000, t0);
        assert!(probe.running_for(2));
        let mut sent = 0.0;
        let mut now = t0;
        while now < t0 + PROBE_DURATION {
            if let Tick::Send { budget, .. } = probe.tick(now) {
                let bytes = (budget.max(0.0) / 1200.0).ceil() as usize * 1200;
                sent += bytes as f64;
                probe.sent(bytes, (bytes / 1200) as u64);
            }
            now += PROBE_TICK;
        }
        // 400 kbit/s for a second is 50 kB; whole packets round it up a little.
        assert!((45_000.0..60_000.0).contains(&sent), "{sent}");
        assert_eq!(probe.tick(now), Tick::Passed);
        assert!(probe.passed(2, now));
        assert!(!probe.passed(1, now));
        assert!(!probe.passed(2, now + PROBE_VALID));
    }

    #[test]
    fn a_late_timer_does_not_burst() {
        let t0 = test_clock::start();
        let mut probe = Probe::start(1, 1_000_000, t0);
        probe.tick(t0);
        let Tick::Send { budget, .. } = probe.tick(t0 + Duration::from_millis(500)) else {
            panic!("due");
        };
        assert!(budget <= 1_000_000.0 / 8.0 * 0.04 + 1.0, "{budget}");
    }
}
