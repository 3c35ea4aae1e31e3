//! A VP8 publisher in Chrome's temporal-layer pattern (L1T3), for the tests of temporal
//! thinning and of long mixed runs.

use bytes::Bytes;
use rtc::rtp::Packet;

use super::Publisher;

/// A publisher in Chrome's L1T3 pattern: temporal layers 0 2 1 2, layer-sync on the first
/// layer-1 and layer-2 frames after each layer-0 one; layer-0 frames are the biggest.
pub struct L1t3 {
    pub publisher: Publisher,
    /// Packets of a frame at each position of the pattern.
    pub packets: [usize; 4],
    frame: u64,
    tl0: u8,
}

impl L1t3 {
    /// `publisher`'s video, tagged with temporal layers.
    pub fn new(publisher: Publisher) -> Self {
        Self {
            publisher,
            packets: [4, 2, 2, 2],
            frame: 0,
            tl0: 0,
        }
    }

    /// The packets of the next frame: by default four for a layer-0 frame, two for the others.
    pub fn next_frame(&mut self, keyframe: bool) -> Vec<Packet> {
        let position = if keyframe { 0 } else { self.frame % 4 };
        if keyframe {
            self.frame = 0;
        }
        let tid = [0u8, 2, 1, 2][position as usize];
        let sync = position == 1 || position == 2;
        if tid == 0 {
            self.tl0 = self.tl0.wrapping_add(1);
        }
        let packets = self.packets[position as usize];
        let picture_id = self.publisher.picture_id;
        let mut frame = self.publisher.video_frame(keyframe, packets);
        for (i, packet) in frame.iter_mut().enumerate() {
            let mut payload = packet.payload.to_vec();
            // Turn the descriptor's extension byte into I|L|T and insert TL0PICIDX, TID/Y.
            payload[1] = 0xe0;
            payload.splice(4..4, [self.tl0, tid << 6 | if sync { 0x20 } else { 0 }]);
            assert_eq!(
                u16::from(payload[2] & 0x7f) << 8 | u16::from(payload[3]),
                picture_id
            );
            assert_eq!(payload[0] & 0x10 != 0, i == 0);
            packet.payload = Bytes::from(payload);
        }
        self.frame += 1;
        frame
    }
}

/// TID and picture id of a forwarded VP8 packet, and whether it starts a frame.
pub fn descriptor(packet: &Packet) -> (u8, u16, bool) {
    let p = &packet.payload;
    assert_eq!(p[1], 0xe0);
    (
        p[5] >> 6,
        u16::from(p[2] & 0x7f) << 8 | u16::from(p[3]),
        p[0] & 0x10 != 0,
    )
}
