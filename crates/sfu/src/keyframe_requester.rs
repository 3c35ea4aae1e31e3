//! Keyframe requests toward the publisher of one video track: every viewer's need for a
//! keyframe (a join, a PLI/FIR, a publisher change) collapses into at most one request per
//! [`KEYFRAME_REQUEST_INTERVAL`], repeated at that pace while any viewer still waits for its
//! first keyframe.
//!
//! Throttling matters: each request makes the encoder spend a large frame, and hundreds of
//! viewers joining at once would otherwise keep the publisher in keyframes.

use std::time::{Duration, Instant};

use crate::codec::KeyframeRequestKind;

/// The shortest time between two keyframe requests for one track: libwebrtc's own floor
/// (a browser encoder ignores requests within 300 ms of its last keyframe), so every request
/// sent can be honoured and a viewer joining during a crowd's arrival waits at most this long
/// for the next keyframe.
pub const KEYFRAME_REQUEST_INTERVAL: Duration = Duration::from_millis(300);

/// One request to send, as decided by [`KeyframeRequester::poll`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct KeyframeRequest {
    pub(crate) kind: KeyframeRequestKind,
    pub(crate) fir_seq: u8,
}

/// Collapsing and throttling state for one video track.
#[derive(Debug)]
pub(crate) struct KeyframeRequester {
    kind: KeyframeRequestKind,
    /// A request is owed but was held back by the throttle.
    owed: bool,
    last_sent: Option<Instant>,
    next_fir_seq: u8,
}

impl KeyframeRequester {
    /// A requester that asks with `kind` (what the publisher negotiated).
    pub(crate) fn new(kind: KeyframeRequestKind) -> Self {
        Self {
            kind,
            owed: false,
            last_sent: None,
            next_fir_seq: 0,
        }
    }

    /// Someone needs a keyframe; it is sent by the next [`Self::poll`] the throttle allows.
    pub(crate) fn request(&mut self) {
        self.owed = true;
    }

    /// A keyframe arrived: whatever was owed is satisfied.
    pub(crate) fn on_keyframe(&mut self) {
        self.owed = false;
    }

    /// The request to send now, if one is owed (or `viewers_waiting`) and the throttle
    /// allows it.
    pub(crate) fn poll(&mut self, now: Instant, viewers_waiting: bool) -> Option<KeyframeRequest> {
        if !self.owed && !viewers_waiting {
            return None;
        }
        if let Some(last) = self.last_sent
            && now < last + KEYFRAME_REQUEST_INTERVAL
        {
            return None;
        }
        self.owed = false;
        self.last_sent = Some(now);
        let fir_seq = match self.kind {
            KeyframeRequestKind::Pli => 0,
            KeyframeRequestKind::Fir => {
                let seq = self.next_fir_seq;
                self.next_fir_seq = seq.wrapping_add(1);
                seq
            }
        };
        Some(KeyframeRequest {
            kind: self.kind,
            fir_seq,
        })
    }

    /// When [`Self::poll`] next has something to send, if anything is pending.
    pub(crate) fn poll_timeout(&self, viewers_waiting: bool) -> Option<Instant> {
        if !self.owed && !viewers_waiting {
            return None;
        }
        self.last_sent.map(|last| last + KEYFRAME_REQUEST_INTERVAL)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_clock;

    #[test]
    fn collapses_and_throttles() {
        let t0 = test_clock::start();
        let mut requester = KeyframeRequester::new(KeyframeRequestKind::Pli);
        requester.request();
        assert!(requester.poll(t0, false).is_some());
        requester.request();
        requester.request();
        let soon = t0 + Duration::from_millis(100);
        assert!(requester.poll(soon, false).is_none());
        assert_eq!(
            requester.poll_timeout(false),
            Some(t0 + KEYFRAME_REQUEST_INTERVAL)
        );
        assert!(
            requester
                .poll(t0 + KEYFRAME_REQUEST_INTERVAL, false)
                .is_some()
        );
        assert!(
            requester
                .poll(t0 + 2 * KEYFRAME_REQUEST_INTERVAL, false)
                .is_none()
        );
    }

    #[test]
    fn keyframe_cancels_an_owed_request() {
        let t0 = test_clock::start();
        let mut requester = KeyframeRequester::new(KeyframeRequestKind::Pli);
        requester.request();
        requester.poll(t0, false);
        requester.request();
        requester.on_keyframe();
        assert_eq!(requester.poll_timeout(false), None);
        assert!(
            requester
                .poll(t0 + KEYFRAME_REQUEST_INTERVAL, false)
                .is_none()
        );
    }

    #[test]
    fn fir_sequence_increments() {
        let t0 = test_clock::start();
        let mut requester = KeyframeRequester::new(KeyframeRequestKind::Fir);
        let first = requester.poll(t0, true).unwrap();
        let second = requester
            .poll(t0 + KEYFRAME_REQUEST_INTERVAL, true)
            .unwrap();
        assert_eq!(first.kind, KeyframeRequestKind::Fir);
        assert_eq!(second.fir_seq, first.fir_seq.wrapping_add(1));
    }
}
