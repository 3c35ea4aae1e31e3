//! Audio/video sync: when a publisher's tracks are placed for good on the recording's
//! timeline, and where.
//!
//! Each track is placed by one offset (see `clock`), so inside a track the file keeps the RTP
//! spacing exactly: frames sent 1/30 s apart are written 1/30 s apart whatever the sender
//! reports say. Sync is the offset between the tracks, and it comes from the reports: each
//! track's fit (`sender_reports`) says where its RTP zero sits on the publisher's NTP clock,
//! and one NTP-to-recorder-clock offset shared by the publisher's tracks puts them all on
//! the recorder's clock.
//!
//! When that offset is applied is the choice this module makes. A track's first frames are
//! written before its reports can say much (none may have arrived yet), and a sender whose
//! reports are a little off (aiortc's are tens of milliseconds off) needs many of them:
//! ±30 ms of error averages down to a few milliseconds only over a dozen reports or more,
//! ten seconds and up. So:
//! - A track is first placed *provisionally*, by arrivals, the moment its first frame is
//!   written, and written on at that spacing.
//! - It is placed *for good* once its estimate is as good as it will get: [`SETTLED_REPORTS`]
//!   reports whose standard error is under [`SETTLED_ERROR`] (a sender with exact reports;
//!   reports ±30 ms off get there only by chance, a few times in ten thousand), or a full window
//!   of [`crate::sender_reports::REPORT_WINDOW`] reports, or [`DECISION_DEADLINE`] after its
//!   first packet; at the latest when the publisher changes or the recording ends. The
//!   tracks of a publisher are decided together, when each is ready.
//! - The difference between the two placements moves the whole track, frames already in the
//!   file included (the muxer rewrites their timestamps in place), by one whole number of
//!   milliseconds: no jump inside the track, and the first frames are as much in sync as
//!   the last.
//!
//! The alternatives were worse: deciding once early, on the first few reports, leaves the
//! tracks of such a sender some ten milliseconds apart at one standard deviation; holding every frame back until the decision leaves the first ten-odd
//! seconds unwritten, lost to a crash and invisible to anyone reading the file live; slewing
//! the offset bends the spacing and never fixes the first frames; applying the estimate only
//! at a reconnect leaves a recording without reconnects unsynced.
//!
//! The shared offset is chosen, when the first tracks are decided, so that none of them
//! moves earlier (the track that arrived with the most delay stays where it is and the
//! others move later to match it): a frame already written never moves before the start of
//! the file. A track decided later (one that started late) moves either way. A track
//! without any report keeps its arrival placement. Once decided, a track is not moved again
//! for that publisher: a drift between the publisher's RTP and NTP clocks over a long
//! recording is not followed (it would need a jump or a bent spacing). Owns the shared offset
//! and the decision; does not own the tracks' clocks or the file.

use std::time::Duration;

use directo_sfu::MediaKind;

use crate::clock::{Nanos, Placement, TrackClock};
use crate::sender_reports::REPORT_WINDOW;

/// Reports that, with a standard error under [`SETTLED_ERROR`], settle a track early.
pub(crate) const SETTLED_REPORTS: usize = 5;
/// Standard error under which a track's reports have settled.
pub(crate) const SETTLED_ERROR: Nanos = 1_000_000;
/// How long after a track's first packet its placement is decided at the latest.
pub(crate) const DECISION_DEADLINE: Duration = Duration::from_secs(30);

/// The sync state of one publisher: its NTP-to-recorder-clock offset, once decided.
#[derive(Debug, Default, Clone)]
pub(crate) struct AvSync {
    ntp_to_local: Option<i64>,
}

/// How far one track was moved when it was placed for good, in whole milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TrackShift {
    /// The track moved.
    pub kind: MediaKind,
    /// Milliseconds it moved by (later if positive).
    pub ms: i64,
}

/// Whether a provisionally placed track's estimate is as good as it will get at `now`.
fn ready(clock: &TrackClock, now: Nanos) -> bool {
    let past_deadline = clock
        .first_arrival()
        .is_some_and(|first| now - first >= DECISION_DEADLINE.as_nanos() as i64);
    let settled = clock.estimate().is_some_and(|estimate| {
        estimate.reports >= REPORT_WINDOW
            || (estimate.reports >= SETTLED_REPORTS
                && estimate.error.is_some_and(|error| error <= SETTLED_ERROR))
    });
    past_deadline || settled
}

impl AvSync {
    /// Places for good the provisionally placed tracks among `tracks` once every one of them
    /// is ready, or at once if `force`. Returns the tracks that moved.
    pub(crate) fn decide(
        &mut self,
        tracks: &mut [(MediaKind, &mut TrackClock)],
        now: Nanos,
        force: bool,
    ) -> Vec<TrackShift> {
        let provisional = |clock: &TrackClock| match clock.placement() {
            Placement::Provisional(zero) => Some(zero),
            Placement::Unplaced | Placement::Final(_) => None,
        };
        let mut pending = tracks
            .iter()
            .filter(|(_, clock)| provisional(clock).is_some())
            .peekable();
        if pending.peek().is_none() || !(force || pending.all(|(_, clock)| ready(clock, now))) {
            return Vec::new();
        }
        if self.ntp_to_local.is_none() {
            self.ntp_to_local = tracks
                .iter()
                .filter_map(|(_, clock)| Some(provisional(clock)? - clock.estimate()?.ntp_at_zero))
                .max();
        }
        let mut shifts = Vec::new();
        for (kind, clock) in tracks.iter_mut() {
            let Some(zero) = provisional(clock) else {
                continue;
            };
            let target = match (clock.estimate(), self.ntp_to_local) {
                (Some(estimate), Some(offset)) => estimate.ntp_at_zero + offset,
                _ => zero,
            };
            let ms = round_to_ms(target - zero);
            clock.place_finally(zero + ms * 1_000_000);
            tracing::debug!(
                ?kind,
                moved_ms = ms,
                reports = clock.estimate().map_or(0, |e| e.reports),
                error_us = clock.estimate().and_then(|e| e.error).map(|e| e / 1_000),
                "recorded track placed for good"
            );
            if ms != 0 {
                shifts.push(TrackShift { kind: *kind, ms });
            }
        }
        shifts
    }
}

/// `nanos` rounded to whole milliseconds, halves away from zero.
fn round_to_ms(nanos: i64) -> i64 {
    (nanos + nanos.signum() * 500_000) / 1_000_000
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: i64 = 1_000_000;
    const NTP0: i64 = 3_900_000_000 * 1_000_000_000;

    /// A track captured from `NTP0` on whose packets arrive `delay_ms` after capture, with a
    /// report once a second for `reports` seconds, each off by the next of `errors_ms`.
    fn track(rate: u32, delay_ms: i64, reports: i64, errors_ms: &[i64]) -> TrackClock {
        let mut clock = TrackClock::new(rate);
        let rate = i64::from(rate);
        clock.on_packet(0, delay_ms * MS);
        clock.place_provisionally();
        for second in 1..=reports {
            let error = errors_ms[(second as usize - 1) % errors_ms.len()];
            let rtp = (second * rate) as u32;
            clock.on_sender_report(rtp, NTP0 + second * 1_000 * MS + error * MS, 0);
        }
        clock
    }

    #[test]
    fn tracks_wait_until_every_one_is_ready_and_then_move_later_only() {
        let mut audio = track(48_000, 5, 5, &[0]);
        let mut video = track(90_000, 85, 4, &[0]);
        let mut sync = AvSync::default();
        let shifts = sync.decide(
            &mut [
                (MediaKind::Audio, &mut audio),
                (MediaKind::Video, &mut video),
            ],
            5_000 * MS,
            false,
        );
        assert_eq!(shifts, vec![], "video has four reports");
        video.on_sender_report(5 * 90_000, NTP0 + 5_000 * MS, 0);
        let shifts = sync.decide(
            &mut [
                (MediaKind::Audio, &mut audio),
                (MediaKind::Video, &mut video),
            ],
            5_000 * MS,
            false,
        );
        // Both were captured at NTP0; video arrived 80 ms later, so audio moves 80 ms later.
        assert_eq!(
            shifts,
            vec![TrackShift {
                kind: MediaKind::Audio,
                ms: 80
            }]
        );
        assert_eq!(audio.to_local(0), video.to_local(0));
        assert_eq!(video.placement(), Placement::Final(85 * MS));
    }

    #[test]
    fn noisy_reports_wait_for_a_full_window_or_the_deadline() {
        let errors = [30, -20, 10, -30, 25, -15, 0, 20, -25, 5];
        let mut audio = track(48_000, 5, 10, &errors);
        let mut sync = AvSync::default();
        assert_eq!(
            sync.decide(&mut [(MediaKind::Audio, &mut audio)], 11_000 * MS, false),
            vec![]
        );
        assert!(matches!(audio.placement(), Placement::Provisional(_)));
        let deadline = DECISION_DEADLINE.as_nanos() as i64 + 5 * MS;
        sync.decide(&mut [(MediaKind::Audio, &mut audio)], deadline, false);
        assert!(matches!(audio.placement(), Placement::Final(_)));
    }

    #[test]
    fn a_track_without_reports_keeps_its_arrival_placement() {
        let mut audio = track(48_000, 5, 0, &[0]);
        let mut sync = AvSync::default();
        let shifts = sync.decide(&mut [(MediaKind::Audio, &mut audio)], 0, true);
        assert_eq!(shifts, vec![]);
        assert_eq!(audio.placement(), Placement::Final(5 * MS));
    }
}
