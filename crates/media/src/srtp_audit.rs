//! A check of the rule that keeps SRTP safe: under one key, a packet index is protected once.
//!
//! AES-GCM turns the (SSRC, index) pair into its nonce; protecting two different packets under
//! the same pair leaks the keystream and the authentication key. Directo's structure is meant
//! to make that impossible (one context per forwarded SSRC, retransmissions on their own RTX
//! sequence): this audit, off by default (`--srtp-audit`), watches it happen. Every leg
//! records the extended sequence numbers it protects per SSRC; the engine reports a viewer's
//! forwarded SSRC appearing in what its `rtc` connection sends (a second context). Both count
//! into `directo_srtp_index_reuse_total`. It costs a hash insert per forwarded packet.

use metrics::Counter;
use std::collections::{HashMap, HashSet};

/// Where reuses are counted; cloned into every leg when the audit is on.
#[derive(Clone)]
pub(crate) struct SrtpAudit {
    reused: Counter,
}

impl SrtpAudit {
    pub(crate) fn new(reused: Counter) -> Self {
        SrtpAudit { reused }
    }

    /// A forwarded SSRC left through another context than its leg's.
    pub(crate) fn second_context(&self, ssrc: u32) {
        tracing::error!(
            ssrc,
            "SRTP audit: a forwarded SSRC was protected by a second context"
        );
        self.reused.increment(1);
    }
}

/// What one leg protected, per SSRC.
pub(crate) struct LegAudit {
    audit: SrtpAudit,
    seen: HashMap<u32, (Unwrapper, HashSet<u64>)>,
}

impl LegAudit {
    pub(crate) fn new(audit: SrtpAudit) -> Self {
        LegAudit {
            audit,
            seen: HashMap::new(),
        }
    }

    /// The leg is about to protect `seq` of `ssrc`.
    pub(crate) fn record(&mut self, ssrc: u32, seq: u16) {
        let (unwrapper, seen) = self.seen.entry(ssrc).or_default();
        let index = unwrapper.unwrap(seq);
        if !seen.insert(index) {
            tracing::error!(
                ssrc,
                index,
                "SRTP audit: an (SSRC, index) pair protected twice"
            );
            self.audit.reused.increment(1);
        }
    }
}

/// Extends 16-bit sequence numbers with a rollover count, as an SRTP sender does (RFC 3711
/// §3.3.1): the index nearest the highest one so far.
#[derive(Default)]
struct Unwrapper {
    highest: Option<u64>,
}

impl Unwrapper {
    fn unwrap(&mut self, seq: u16) -> u64 {
        let Some(highest) = self.highest else {
            self.highest = Some(u64::from(seq));
            return u64::from(seq);
        };
        let roc = highest >> 16;
        let candidates = [roc.wrapping_sub(1), roc, roc + 1]
            .into_iter()
            .filter(|r| *r <= u64::from(u32::MAX))
            .map(|r| (r << 16) | u64::from(seq));
        let index = candidates
            .min_by_key(|i| i.abs_diff(highest))
            .unwrap_or(u64::from(seq));
        self.highest = Some(highest.max(index));
        index
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indexes_continue_across_a_rollover() {
        let mut u = Unwrapper::default();
        assert_eq!(u.unwrap(65_534), 65_534);
        assert_eq!(u.unwrap(65_535), 65_535);
        assert_eq!(u.unwrap(0), 65_536);
        // A late packet from before the wrap keeps its own index.
        assert_eq!(u.unwrap(65_533), 65_533);
        assert_eq!(u.unwrap(1), 65_537);
    }
}
