//! The delay-based overuse detector of Google congestion control, as libwebrtc runs it
//! (`TrendlineEstimator`): packets are grouped into 5 ms send bursts, each group's delay
//! change against the previous one (arrival spread minus send spread) is accumulated and
//! smoothed, and the slope of a linear fit over the last 20 groups — scaled by the number of
//! samples and a gain of 4 — is compared with an adaptive threshold (12.5 ms to start, 6–600
//! ms, rising slowly and falling fast). A slope above it for more than 10 ms, and still
//! rising, is overuse: the link's queue is filling.
//!
//! It is the trendline rather than the draft's Kalman filter because a forwarding SFU sends
//! frames in bursts as they arrive from the publisher: a queue growing by a few milliseconds a
//! frame must read as overuse well before it overflows, which the Kalman filter's unscaled
//! estimate against a 12.5 ms threshold does not.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use rtc::interceptor::Usage;

/// Packets sent within this span of a group's first one belong to its group.
const BURST: Duration = Duration::from_millis(5);
/// Groups in the linear fit.
const WINDOW: usize = 20;
/// Smoothing of the accumulated delay.
const SMOOTHING: f64 = 0.9;
/// Gain on the slope before it meets the threshold.
const GAIN: f64 = 4.0;
/// How many deltas the scaling counts at most.
const MAX_DELTAS: u32 = 60;
/// How long the slope must stay above the threshold.
const OVERUSE_TIME_MS: f64 = 10.0;
/// The threshold: start, bounds, how fast it follows the slope up and down, and how far
/// above it a slope may be and still move it (a spike does not).
const THRESHOLD_START: f64 = 12.5;
const THRESHOLD_MIN: f64 = 6.0;
const THRESHOLD_MAX: f64 = 600.0;
const K_UP: f64 = 0.0087;
const K_DOWN: f64 = 0.039;
const MAX_ADAPT_OFFSET: f64 = 15.0;

#[derive(Debug, Clone, Copy)]
struct Group {
    first_departure: Instant,
    departure: Instant,
    arrival: Duration,
}

/// One viewer link's delay trend and its verdict.
#[derive(Debug, Clone)]
pub(crate) struct Trendline {
    current: Option<Group>,
    previous: Option<Group>,
    first_arrival: Option<Duration>,
    deltas: u32,
    accumulated_ms: f64,
    smoothed_ms: f64,
    /// (arrival ms since the first, smoothed accumulated delay ms)
    history: VecDeque<(f64, f64)>,
    previous_trend: f64,
    threshold: f64,
    last_threshold_update: Option<Duration>,
    over_ms: Option<f64>,
    over_count: u32,
    usage: Usage,
}

impl Default for Trendline {
    fn default() -> Self {
        Self {
            current: None,
            previous: None,
            first_arrival: None,
            deltas: 0,
            accumulated_ms: 0.0,
            smoothed_ms: 0.0,
            history: VecDeque::with_capacity(WINDOW + 1),
            previous_trend: 0.0,
            threshold: THRESHOLD_START,
            last_threshold_update: None,
            over_ms: None,
            over_count: 0,
            usage: Usage::Normal,
        }
    }
}

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

impl Trendline {
    /// The current verdict.
    pub(crate) fn usage(&self) -> Usage {
        self.usage
    }

    /// One packet that arrived (`arrival` on the receiver's clock), in send order.
    pub(crate) fn on_packet(&mut self, departure: Instant, arrival: Duration) {
        let Some(current) = self.current.as_mut() else {
            self.current = Some(Group {
                first_departure: departure,
                departure,
                arrival,
            });
            return;
        };
        if departure.saturating_duration_since(current.first_departure) <= BURST {
            current.departure = current.departure.max(departure);
            current.arrival = current.arrival.max(arrival);
            return;
        }
        let closed = *current;
        self.current = Some(Group {
            first_departure: departure,
            departure,
            arrival,
        });
        if let Some(previous) = self.previous.replace(closed) {
            let send_ms = ms(closed
                .departure
                .saturating_duration_since(previous.departure));
            let recv_ms = ms(closed.arrival) - ms(previous.arrival);
            self.update(recv_ms - send_ms, send_ms, closed.arrival);
        }
    }

    fn update(&mut self, delta_ms: f64, send_delta_ms: f64, arrival: Duration) {
        self.deltas = (self.deltas + 1).min(1000);
        let first = *self.first_arrival.get_or_insert(arrival);
        self.accumulated_ms += delta_ms;
        self.smoothed_ms = SMOOTHING * self.smoothed_ms + (1.0 - SMOOTHING) * self.accumulated_ms;
        self.history
            .push_back((ms(arrival.saturating_sub(first)), self.smoothed_ms));
        if self.history.len() > WINDOW {
            self.history.pop_front();
        }
        let trend = if self.history.len() == WINDOW {
            slope(&self.history).unwrap_or(self.previous_trend)
        } else {
            self.previous_trend
        };
        self.detect(trend, send_delta_ms, ms(arrival));
    }

    fn detect(&mut self, trend: f64, send_delta_ms: f64, now_ms: f64) {
        if self.deltas < 2 {
            self.usage = Usage::Normal;
            return;
        }
        let modified = f64::from(self.deltas.min(MAX_DELTAS)) * trend * GAIN;
        if modified > self.threshold {
            let over = match self.over_ms {
                None => send_delta_ms / 2.0,
                Some(over) => over + send_delta_ms,
            };
            self.over_ms = Some(over);
            self.over_count += 1;
            if over > OVERUSE_TIME_MS && self.over_count > 1 && trend >= self.previous_trend {
                self.over_ms = Some(0.0);
                self.over_count = 0;
                self.usage = Usage::Over;
            }
        } else if modified < -self.threshold {
            self.over_ms = None;
            self.over_count = 0;
            self.usage = Usage::Under;
        } else {
            self.over_ms = None;
            self.over_count = 0;
            self.usage = Usage::Normal;
        }
        self.previous_trend = trend;
        self.adapt_threshold(modified, now_ms);
    }

    fn adapt_threshold(&mut self, modified: f64, now_ms: f64) {
        let now = Duration::from_secs_f64(now_ms.max(0.0) / 1000.0);
        let last = *self.last_threshold_update.get_or_insert(now);
        self.last_threshold_update = Some(now);
        if modified.abs() > self.threshold + MAX_ADAPT_OFFSET {
            return;
        }
        let k = if modified.abs() < self.threshold {
            K_DOWN
        } else {
            K_UP
        };
        let elapsed = ms(now.saturating_sub(last)).min(100.0);
        self.threshold = (self.threshold + k * (modified.abs() - self.threshold) * elapsed)
            .clamp(THRESHOLD_MIN, THRESHOLD_MAX);
    }
}

/// The least-squares slope of `points`, if they are not all at one x.
fn slope(points: &VecDeque<(f64, f64)>) -> Option<f64> {
    let n = points.len() as f64;
    let (sum_x, sum_y) = points
        .iter()
        .fold((0.0, 0.0), |(sx, sy), (x, y)| (sx + x, sy + y));
    let (mean_x, mean_y) = (sum_x / n, sum_y / n);
    let (mut numerator, mut denominator) = (0.0, 0.0);
    for (x, y) in points {
        numerator += (x - mean_x) * (y - mean_y);
        denominator += (x - mean_x) * (x - mean_x);
    }
    (denominator != 0.0).then(|| numerator / denominator)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_clock;

    /// Frames of `packets` packets every 33 ms through a link that takes `per_packet_ms` to
    /// carry each packet; the verdicts after each frame.
    fn frames(count: u32, packets: u32, per_packet_ms: f64) -> Vec<Usage> {
        let t0 = test_clock::start();
        let mut trend = Trendline::default();
        let mut link_free_ms = 0.0f64;
        let mut verdicts = Vec::new();
        for frame in 0..count {
            let sent_ms = f64::from(frame) * 33.0;
            for _ in 0..packets {
                link_free_ms = link_free_ms.max(sent_ms) + per_packet_ms;
                trend.on_packet(
                    t0 + Duration::from_secs_f64(sent_ms / 1000.0),
                    Duration::from_secs_f64((20.0 + link_free_ms) / 1000.0),
                );
            }
            verdicts.push(trend.usage());
        }
        verdicts
    }

    #[test]
    fn a_link_with_room_is_normal() {
        // 5 packets per frame, each taking 2 ms: the link is 30 % busy.
        assert!(frames(200, 5, 2.0).iter().all(|u| *u == Usage::Normal));
    }

    #[test]
    fn a_queue_growing_a_few_ms_a_frame_is_overuse_within_a_second() {
        // 5 packets per frame at 7.4 ms each: 37 ms of link time every 33 ms, the queue grows
        // 4 ms a frame (the link carries 90 % of what is sent).
        let verdicts = frames(60, 5, 7.4);
        let first = verdicts.iter().position(|u| *u == Usage::Over);
        assert!(first.is_some_and(|frame| frame < 30), "{verdicts:?}");
    }
}
