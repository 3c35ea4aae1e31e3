//! Directo patch: a context's per-SSRC SRTP states. A context protects or unprotects a handful
//! of SSRCs (a viewer's leg: audio, video and its RTX), and its state is looked up once per
//! packet: the first [`INLINE`] live in the context itself, found by a comparison each, instead
//! of a hash map entry (a hash and a cache miss on the table per packet). Any more go to a map
//! as before.

use std::collections::HashMap;

use super::SrtpSsrcState;

/// States kept in the context itself.
pub(crate) const INLINE: usize = 4;

#[derive(Default)]
pub(crate) struct SsrcStates {
    inline: [Option<SrtpSsrcState>; INLINE],
    more: HashMap<u32, SrtpSsrcState>,
}

impl SsrcStates {
    /// The state of `ssrc`, made with `new` if it has none yet.
    pub(crate) fn get_or_insert_with(
        &mut self,
        ssrc: u32,
        new: impl FnOnce() -> SrtpSsrcState,
    ) -> &mut SrtpSsrcState {
        let inline = self
            .inline
            .iter()
            .position(|state| state.as_ref().is_none_or(|state| state.ssrc == ssrc));
        match inline {
            // Its own slot, or the first free one (slots are never freed: while one is free,
            // nothing is in the map).
            Some(slot) => self.inline[slot].get_or_insert_with(new),
            None => self.more.entry(ssrc).or_insert_with(new),
        }
    }

    /// The state of `ssrc`, if it has one.
    pub(crate) fn get(&self, ssrc: u32) -> Option<&SrtpSsrcState> {
        self.inline
            .iter()
            .flatten()
            .find(|state| state.ssrc == ssrc)
            .or_else(|| self.more.get(&ssrc))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_ssrc_keeps_its_own_state_inline_or_in_the_map() {
        let mut states = SsrcStates::default();
        let ssrcs: Vec<u32> = (0..3 * INLINE as u32).map(|i| i * 7919 + 1).collect();
        for (i, &ssrc) in ssrcs.iter().enumerate() {
            let state = states.get_or_insert_with(ssrc, || SrtpSsrcState {
                ssrc,
                ..Default::default()
            });
            state.index = i as u64;
        }
        for (i, &ssrc) in ssrcs.iter().enumerate() {
            assert_eq!(states.get(ssrc).map(|s| s.index), Some(i as u64));
            let again = states.get_or_insert_with(ssrc, || unreachable!("made twice"));
            assert_eq!(again.index, i as u64);
        }
        assert!(states.get(2).is_none());
        assert_eq!(states.more.len(), ssrcs.len() - INLINE);
    }
}
