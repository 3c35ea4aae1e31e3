//! What a viewer's RTCP says of its link: receiver reports (loss), transport-wide feedback
//! (the delay trend) and REMB feed the bandwidth estimate of its video down track, and fail a
//! running probe the link did not carry. Each says whether the viewer's layer must be
//! re-decided (`layer_choice.rs`).

use std::time::Instant;

use rtc::interceptor::Usage;
use rtc::rtcp::transport_feedbacks::transport_layer_cc::TransportLayerCc;

use crate::layers::BandwidthEstimator;
use crate::probe::Probe;

use super::publication::Publication;
use super::subscribers::Subscriber;

impl Subscriber {
    /// A receiver report for the down track `media_ssrc`: its loss feeds the estimate.
    pub(super) fn on_receiver_report(
        &mut self,
        publication: &Publication,
        media_ssrc: u32,
        fraction_lost: u8,
        now: Instant,
    ) -> bool {
        let ceiling = publication.layer_ceiling(now);
        let id = self.id;
        let Some(video) = self.video.as_mut() else {
            return false;
        };
        if video.ssrc() != media_ssrc {
            return false;
        }
        if BandwidthEstimator::loss_fails_probe(fraction_lost)
            && matches!(video.probe, Probe::Running { .. })
        {
            // Loss while probing says the link cannot carry the probe, not that it cannot
            // carry the layer the viewer is on.
            return self.fail_probe(publication, "loss", now, |bwe, sending, probed| {
                bwe.on_probe_loss(fraction_lost, sending, probed, now)
            });
        }
        let sending = publication.sending_bps(video, now);
        if video
            .bwe
            .on_receiver_report(fraction_lost, sending, ceiling, now)
        {
            tracing::debug!(
                subscriber = id,
                fraction_lost,
                sending,
                estimate = ?video.bwe.estimate(),
                "viewer bandwidth estimate"
            );
            return true;
        }
        false
    }

    /// Transport-wide congestion control feedback: the delay trend of the link may lower the
    /// estimate before the link's queue overflows.
    pub(super) fn on_transport_feedback(
        &mut self,
        publication: &Publication,
        feedback: &TransportLayerCc,
        now: Instant,
    ) -> bool {
        let id = self.id;
        let (Some(twcc), Some(video)) = (self.twcc.as_mut(), self.video.as_mut()) else {
            return false;
        };
        let verdict = twcc.on_feedback(feedback, now);
        tracing::trace!(subscriber = id, ?verdict, "transport feedback");
        let sending = publication.sending_bps(video, now);
        // What got through for video: the feedback acknowledges the viewer's audio too.
        let audio = publication.audio_bps(now);
        let received = verdict
            .received_bps
            .map(|received| received.saturating_sub(audio));
        if verdict.usage == Usage::Over && matches!(video.probe, Probe::Running { .. }) {
            return self.fail_probe(
                publication,
                "the link queues",
                now,
                |bwe, sending, probed| bwe.on_probe_queue(received, sending, probed, now),
            );
        }
        if video.bwe.on_delay(verdict.usage, received, sending, now) {
            tracing::debug!(
                subscriber = id,
                ?verdict,
                sending,
                estimate = ?video.bwe.estimate(),
                "viewer link queueing: bandwidth estimate down"
            );
            return true;
        }
        false
    }

    /// A REMB (the viewer's own estimate of what it can receive, all tracks together).
    pub(super) fn on_remb(&mut self, bitrate_bps: u64) -> bool {
        let id = self.id;
        let Some(video) = self.video.as_mut() else {
            return false;
        };
        if video.bwe.on_remb(bitrate_bps) {
            tracing::debug!(subscriber = id, bitrate_bps, "viewer REMB");
            return true;
        }
        false
    }

    /// Ends a running probe that the link did not carry (`reason`); `lower` tells the
    /// estimator, given the viewer's layer's rate and the rate probed, and says whether the
    /// estimate changed (then the layer must be re-decided).
    fn fail_probe(
        &mut self,
        publication: &Publication,
        reason: &'static str,
        now: Instant,
        lower: impl FnOnce(&mut BandwidthEstimator, u64, u64) -> bool,
    ) -> bool {
        let id = self.id;
        let Some(video) = self.video.as_mut() else {
            return false;
        };
        let sending = publication.sending_bps(video, now);
        let probed = sending + video.probe.extra_bps();
        video.probe = Probe::Idle;
        tracing::debug!(
            subscriber = id,
            probed,
            reason,
            "probe failed; staying on this layer"
        );
        lower(&mut video.bwe, sending, probed)
    }
}
