//! The `rtc` crate's depacketizers, wrapped so the recorder can tell when one failed.
//!
//! `SampleBuilder` silently skips a frame whose payload its depacketizer rejects, which would
//! leave a hole in the video that the next frames reference. The wrapper counts rejections so
//! the track can treat them as loss (drop until the next keyframe). For VP8 it also tightens
//! the "first packet of a frame" test to the start of partition 0, as RFC 7741 defines it,
//! so a frame whose first packet was lost is never assembled from a later partition.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use directo_sfu::Codec;
use rtc::rtp::codec::{h264::H264Packet, opus::OpusPacket, vp8::Vp8Packet, vp9::Vp9Packet};
use rtc::rtp::packetizer::Depacketizer;
use rtc::shared::error::Result;

/// A codec's depacketizer that counts the payloads it could not read.
pub(crate) struct CountingDepacketizer {
    codec: Codec,
    inner: Box<dyn Depacketizer + Send>,
    failures: Arc<AtomicU64>,
}

impl CountingDepacketizer {
    /// The depacketizer for `codec`; H264 comes out in AVCC form (length-prefixed NAL units),
    /// the form Matroska stores. Failures are added to `failures`.
    pub(crate) fn new(codec: Codec, failures: Arc<AtomicU64>) -> Self {
        let inner: Box<dyn Depacketizer + Send> = match codec {
            Codec::Opus => Box::new(OpusPacket),
            Codec::Vp8 => Box::<Vp8Packet>::default(),
            Codec::Vp9 => Box::<Vp9Packet>::default(),
            Codec::H264 => {
                let mut h264 = H264Packet::default();
                h264.is_avc = true;
                Box::new(h264)
            }
        };
        CountingDepacketizer {
            codec,
            inner,
            failures,
        }
    }
}

impl Depacketizer for CountingDepacketizer {
    fn depacketize(&mut self, payload: &Bytes) -> Result<Bytes> {
        let result = self.inner.depacketize(payload);
        if result.is_err() {
            self.failures.fetch_add(1, Ordering::Relaxed);
        }
        result
    }

    fn is_partition_head(&self, payload: &Bytes) -> bool {
        match self.codec {
            // S bit set and partition index 0.
            Codec::Vp8 => payload
                .first()
                .is_some_and(|b| b & 0x10 != 0 && b & 0x07 == 0),
            _ => self.inner.is_partition_head(payload),
        }
    }

    fn is_partition_tail(&self, marker: bool, payload: &Bytes) -> bool {
        self.inner.is_partition_tail(marker, payload)
    }
}
