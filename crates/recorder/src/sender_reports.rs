//! One track's RTP-to-NTP mapping estimated from the publisher's RTCP sender reports, the way
//! libwebrtc's `RtpToNtpEstimator` does it: a least-squares fit over the last
//! [`REPORT_WINDOW`] reports, with reports that cannot be right left out.
//!
//! The fit's slope is pinned to the codec's nominal clock rate: the recording keeps every
//! track's RTP spacing exactly, so the only thing the reports can still tell is where the
//! track's RTP time zero sits on the publisher's wall clock — one offset. (A least-squares
//! line with a free slope, evaluated at the centre of its reports, gives that same offset;
//! evaluated anywhere else it adds the error of a slope fitted over a few seconds of noisy
//! reports.) What is left out:
//! - a report whose NTP or RTP time does not advance past the previous one's (libwebrtc's
//!   checks), or that puts RTP time zero more than [`MAX_DISAGREEMENT`] from where the
//!   others do; after [`MAX_INVALID_IN_A_ROW`] of those in a row the publisher has restarted
//!   its clocks, and the fit starts over from the newest report;
//! - reports whose offset lies far from the median of the others (a sender that stalled
//!   while stamping one): more than three scaled median absolute deviations, and never less
//!   than [`OUTLIER_FLOOR`], so exact reports do not turn their sub-millisecond rounding into
//!   outliers.
//!
//! Owns the reports of one track; does not own RTP unwrapping or the recorder's clock.

use std::collections::VecDeque;

use crate::clock::{Nanos, ticks_to_nanos};

/// How many of the newest reports the estimate rests on (libwebrtc uses 20 too).
pub(crate) const REPORT_WINDOW: usize = 20;
/// Invalid reports in a row after which the publisher is taken to have restarted its clocks.
const MAX_INVALID_IN_A_ROW: u32 = 3;
/// A report this close to the median is never an outlier.
const OUTLIER_FLOOR: Nanos = 5_000_000;
/// A report further than this from the median is invalid, not just an outlier: no sender's
/// clocks disagree by a second, but one that restarted them does.
const MAX_DISAGREEMENT: Nanos = 1_000_000_000;

/// Where a track's RTP time zero sits on the publisher's NTP clock, and how sure that is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ReportEstimate {
    /// NTP time (nanoseconds) of extended RTP time zero.
    pub ntp_at_zero: i64,
    /// Standard error of `ntp_at_zero`, once two reports or more are kept.
    pub error: Option<Nanos>,
    /// How many reports it rests on (outliers left out).
    pub reports: usize,
}

/// The sender reports of one track and the estimate they give.
#[derive(Debug, Clone)]
pub(crate) struct ReportFit {
    rate: i64,
    /// `(extended rtp, ntp nanos)`, oldest first.
    reports: VecDeque<(i64, i64)>,
    invalid_in_a_row: u32,
    estimate: Option<ReportEstimate>,
}

impl ReportFit {
    /// An empty fit for a track whose RTP clock ticks `rate` times a second.
    pub(crate) fn new(rate: i64) -> Self {
        ReportFit {
            rate,
            reports: VecDeque::with_capacity(REPORT_WINDOW),
            invalid_in_a_row: 0,
            estimate: None,
        }
    }

    /// The NTP time of RTP time zero according to one report.
    fn offset(&self, (rtp, ntp): (i64, i64)) -> i64 {
        ntp - ticks_to_nanos(rtp, self.rate)
    }

    /// Takes a report: NTP time `ntp` (nanoseconds) is extended RTP time `rtp`.
    pub(crate) fn add(&mut self, rtp: i64, ntp: i64) {
        if let Some(&(last_rtp, last_ntp)) = self.reports.back() {
            if (rtp, ntp) == (last_rtp, last_ntp) {
                // The same report again (a retransmitted compound packet): nothing new.
                return;
            }
            let disagreement = self
                .estimate
                .map_or(0, |e| (self.offset((rtp, ntp)) - e.ntp_at_zero).abs());
            if ntp <= last_ntp || rtp <= last_rtp || disagreement > MAX_DISAGREEMENT {
                self.invalid_in_a_row += 1;
                if self.invalid_in_a_row < MAX_INVALID_IN_A_ROW {
                    return;
                }
                self.reports.clear();
            }
        }
        self.invalid_in_a_row = 0;
        if self.reports.len() == REPORT_WINDOW {
            self.reports.pop_front();
        }
        self.reports.push_back((rtp, ntp));
        self.estimate = self.fit();
    }

    /// The current estimate, once there is a report.
    pub(crate) fn estimate(&self) -> Option<ReportEstimate> {
        self.estimate
    }

    /// The pinned-slope least-squares fit: the mean offset of the reports that are not
    /// outliers, and its standard error.
    fn fit(&self) -> Option<ReportEstimate> {
        let offsets: Vec<i64> = self.reports.iter().map(|&r| self.offset(r)).collect();
        let middle = median(&offsets)?;
        let deviations: Vec<i64> = offsets.iter().map(|o| (o - middle).abs()).collect();
        let mad = median(&deviations)?;
        // 1.4826 scales a median absolute deviation to a standard deviation; three of those.
        let limit = (mad.saturating_mul(4_448) / 1_000).max(OUTLIER_FLOOR);
        // Deviations from the median are small, so they add up in f64 without losing the
        // nanoseconds that the 10^18-sized NTP times themselves would.
        let kept: Vec<f64> = offsets
            .iter()
            .map(|o| o - middle)
            .filter(|d| d.abs() <= limit)
            .map(|d| d as f64)
            .collect();
        let n = kept.len() as f64;
        let mean = kept.iter().sum::<f64>() / n;
        let error = (kept.len() >= 2).then(|| {
            let variance = kept.iter().map(|d| (d - mean).powi(2)).sum::<f64>() / (n - 1.0);
            (variance / n).sqrt().round() as Nanos
        });
        Some(ReportEstimate {
            ntp_at_zero: middle + mean.round() as i64,
            error,
            reports: kept.len(),
        })
    }
}

/// The median of `values` (the lower middle one for an even count).
fn median(values: &[i64]) -> Option<i64> {
    let mut sorted = values.to_vec();
    sorted.sort_unstable();
    sorted.get(sorted.len().saturating_sub(1) / 2).copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: i64 = 1_000_000;
    const NTP0: i64 = 3_900_000_000 * 1_000_000_000;

    /// Reports once a second of a 90 kHz track whose RTP time zero is at `NTP0`, each off
    /// by the given error.
    fn fit_with_errors(errors_ms: &[i64]) -> ReportFit {
        let mut fit = ReportFit::new(90_000);
        for (second, error) in errors_ms.iter().enumerate() {
            let second = second as i64;
            fit.add(second * 90_000, NTP0 + second * 1_000 * MS + error * MS);
        }
        fit
    }

    #[test]
    fn exact_reports_give_the_offset_with_no_error() {
        let estimate = fit_with_errors(&[0, 0, 0]).estimate().expect("estimate");
        assert_eq!(estimate.ntp_at_zero, NTP0);
        assert_eq!(estimate.error, Some(0));
        assert_eq!(estimate.reports, 3);
    }

    #[test]
    fn noisy_reports_average_out_and_say_how_sure_they_are() {
        let estimate = fit_with_errors(&[10, -10, 20, -20, 5, -5])
            .estimate()
            .expect("estimate");
        assert_eq!(estimate.ntp_at_zero, NTP0);
        let error = estimate.error.expect("an error");
        assert!((5 * MS..7 * MS).contains(&error), "{error}");
    }

    #[test]
    fn an_outlier_is_left_out() {
        let estimate = fit_with_errors(&[1, -1, 0, 400, 1, -1])
            .estimate()
            .expect("estimate");
        assert_eq!(estimate.reports, 5);
        assert_eq!(estimate.ntp_at_zero, NTP0);
    }

    #[test]
    fn the_window_keeps_the_newest_reports() {
        let mut errors = vec![300; 5];
        errors.extend([0; REPORT_WINDOW]);
        let estimate = fit_with_errors(&errors).estimate().expect("estimate");
        assert_eq!(estimate.ntp_at_zero, NTP0);
        assert_eq!(estimate.reports, REPORT_WINDOW);
    }

    #[test]
    fn a_publisher_that_restarts_its_clocks_is_followed_after_three_reports() {
        let mut fit = fit_with_errors(&[0, 0, 0]);
        let restarted = NTP0 + 3_600 * 1_000 * MS;
        for second in 0..3 {
            fit.add(second * 90_000, restarted + second * 1_000 * MS);
            assert_eq!(
                fit.estimate().map(|e| e.ntp_at_zero),
                Some(if second < 2 { NTP0 } else { restarted }),
                "after {} reports of the new clock",
                second + 1
            );
        }
    }
}
