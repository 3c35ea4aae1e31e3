//! Synthetic VP8 frames: the payload header a real encoder writes (RFC 6386 §9.1: the frame
//! tag, and on a keyframe the start code and the picture size) in front of filler instead of a
//! picture. That header is all an SFU, a depacketizer or a test viewer looks at, so the test
//! clients and the load generator write it here and read it back here; the RTP payload
//! descriptor in front of it (RFC 7741) is theirs, as each writes a different one.

/// The VP8 keyframe start code.
pub const KEYFRAME_START_CODE: [u8; 3] = [0x9d, 0x01, 0x2a];

/// The header of a frame of `frame_len` bytes: the 3-byte frame tag (shown, P=0 on a keyframe,
/// P=1 otherwise), and on a keyframe the start code and `width`×`height` (14 bits each).
pub fn frame_header(keyframe: bool, frame_len: usize, width: u16, height: u16) -> Vec<u8> {
    // The first partition's size is 19 bits; any plausible value inside the frame will do.
    let first_partition = (frame_len / 2).min(0x7ffff) as u32;
    let inter = u32::from(!keyframe);
    let show_frame = 1 << 4;
    let tag = (first_partition << 5) | show_frame | inter;
    let mut header = vec![tag as u8, (tag >> 8) as u8, (tag >> 16) as u8];
    if keyframe {
        header.extend_from_slice(&KEYFRAME_START_CODE);
        header.extend_from_slice(&(width & 0x3fff).to_le_bytes());
        header.extend_from_slice(&(height & 0x3fff).to_le_bytes());
    }
    header
}

/// The picture size a keyframe's header announces, if `frame` (a VP8 payload without its RTP
/// descriptor) starts one.
pub fn keyframe_size(frame: &[u8]) -> Option<(u16, u16)> {
    if frame.len() < 10 || frame[0] & 0x01 != 0 || frame[3..6] != KEYFRAME_START_CODE {
        return None;
    }
    Some((
        u16::from_le_bytes([frame[6], frame[7]]) & 0x3fff,
        u16::from_le_bytes([frame[8], frame[9]]) & 0x3fff,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_keyframe_header_reads_back_with_its_size_and_an_inter_frame_does_not() {
        let key = frame_header(true, 5000, 640, 360);
        assert_eq!(key.len(), 10);
        assert_eq!(keyframe_size(&key), Some((640, 360)));
        let inter = frame_header(false, 1000, 640, 360);
        assert_eq!(inter.len(), 3);
        assert_eq!(inter[0] & 0x01, 1);
        assert_eq!(keyframe_size(&inter), None);
    }
}
