//! Keyframe detection from RTP payloads: tells whether a packet is the first packet of a
//! keyframe, which is where a new viewer (or a viewer after a publisher change) can start
//! decoding. Reads only the payload descriptor and the first payload header bytes; it never
//! depacketizes a frame (that is the recorder's job) and never panics on short input.

use crate::codec::Codec;
use crate::vp8;

/// Whether `payload` (an RTP payload, padding already stripped) is the first packet of a
/// keyframe for `codec`.
///
/// Opus packets decode on their own, so every non-empty Opus payload counts as a start.
pub fn is_keyframe_start(codec: Codec, payload: &[u8]) -> bool {
    match codec {
        Codec::Opus => !payload.is_empty(),
        Codec::Vp8 => vp8_keyframe_start(payload),
        Codec::Vp9 => vp9_keyframe_start(payload),
        Codec::H264 => h264_keyframe_start(payload),
    }
}

/// VP8 (RFC 7741): payload descriptor with S=1 and PID=0, then the VP8 payload header whose
/// P bit (inverse keyframe flag) is 0.
fn vp8_keyframe_start(payload: &[u8]) -> bool {
    vp8::parse(payload)
        .filter(|descriptor| descriptor.frame_start)
        .and_then(|descriptor| payload.get(descriptor.len))
        .is_some_and(|header| header & 0x01 == 0)
}

/// VP9 (RFC 9628): payload descriptor with P=0 (not inter-picture predicted) and B=1 (start
/// of a frame), on the base spatial layer when layer indices are present.
fn vp9_keyframe_start(payload: &[u8]) -> bool {
    let Some(&first) = payload.first() else {
        return false;
    };
    let has_picture_id = first & 0x80 != 0;
    let inter_predicted = first & 0x40 != 0;
    let has_layers = first & 0x20 != 0;
    let flexible = first & 0x10 != 0;
    let begins_frame = first & 0x08 != 0;
    if inter_predicted || !begins_frame {
        return false;
    }
    let mut offset = 1;
    if has_picture_id {
        let Some(&pid) = payload.get(offset) else {
            return false;
        };
        offset += if pid & 0x80 != 0 { 2 } else { 1 };
    }
    if has_layers {
        let Some(&layer) = payload.get(offset) else {
            return false;
        };
        let spatial_id = (layer >> 1) & 0x07;
        if spatial_id != 0 {
            return false;
        }
        offset += 1;
        // Non-flexible mode carries TL0PICIDX after the layer byte.
        if !flexible {
            offset += 1;
        }
    }
    // The descriptor must be followed by frame data for this to be a usable start.
    offset < payload.len()
}

const H264_NAL_IDR: u8 = 5;
const H264_NAL_SPS: u8 = 7;
const H264_STAP_A: u8 = 24;
const H264_FU_A: u8 = 28;

/// H.264 (RFC 6184): a single IDR or SPS NAL unit, a STAP-A aggregating one, or the first
/// fragment (S=1) of an FU-A carrying an IDR slice.
fn h264_keyframe_start(payload: &[u8]) -> bool {
    let Some(&header) = payload.first() else {
        return false;
    };
    match header & 0x1F {
        H264_NAL_IDR | H264_NAL_SPS => true,
        H264_STAP_A => {
            let mut offset = 1;
            while let Some(size_bytes) = payload.get(offset..offset + 2) {
                let size = usize::from(u16::from_be_bytes([size_bytes[0], size_bytes[1]]));
                let Some(&nal) = payload.get(offset + 2) else {
                    return false;
                };
                if size > 0 && matches!(nal & 0x1F, H264_NAL_IDR | H264_NAL_SPS) {
                    return true;
                }
                offset += 2 + size;
            }
            false
        }
        H264_FU_A => match payload.get(1) {
            Some(&fu) => fu & 0x80 != 0 && fu & 0x1F == H264_NAL_IDR,
            None => false,
        },
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vp8_plain_descriptor() {
        // S=1, PID=0, then payload header with P=0.
        assert!(is_keyframe_start(Codec::Vp8, &[0x10, 0x00, 0x9d]));
        // P=1: interframe.
        assert!(!is_keyframe_start(Codec::Vp8, &[0x10, 0x01, 0x9d]));
        // S=0: continuation packet.
        assert!(!is_keyframe_start(Codec::Vp8, &[0x00, 0x00]));
        // PID=1: not the first partition.
        assert!(!is_keyframe_start(Codec::Vp8, &[0x11, 0x00]));
    }

    #[test]
    fn vp8_extended_descriptor() {
        // X=1, I=1 with 15-bit picture id, L=1, T=1: 1 + 1 + 2 + 1 + 1 bytes of descriptor.
        let key = [0x90, 0xE0, 0x81, 0x23, 0x05, 0x40, 0x00];
        assert!(is_keyframe_start(Codec::Vp8, &key));
        let delta = [0x90, 0xE0, 0x81, 0x23, 0x05, 0x40, 0x01];
        assert!(!is_keyframe_start(Codec::Vp8, &delta));
        // 7-bit picture id only.
        assert!(is_keyframe_start(Codec::Vp8, &[0x90, 0x80, 0x12, 0x00]));
        // K only.
        assert!(is_keyframe_start(Codec::Vp8, &[0x90, 0x10, 0x00, 0x00]));
    }

    #[test]
    fn vp8_truncated_descriptors_are_not_keyframes() {
        for short in [
            &[][..],
            &[0x10],
            &[0x90],
            &[0x90, 0x80],
            &[0x90, 0x80, 0x81],
            &[0x90, 0xE0, 0x81, 0x23, 0x05, 0x40],
        ] {
            assert!(!is_keyframe_start(Codec::Vp8, short), "{short:?}");
        }
    }

    #[test]
    fn vp9_descriptor_layouts() {
        // B=1, P=0, no optional fields.
        assert!(is_keyframe_start(Codec::Vp9, &[0x08, 0x82]));
        // P=1.
        assert!(!is_keyframe_start(Codec::Vp9, &[0x48, 0x82]));
        // B=0.
        assert!(!is_keyframe_start(Codec::Vp9, &[0x00, 0x82]));
        // I=1 (15-bit id), L=1 non-flexible: layer byte + TL0PICIDX.
        assert!(is_keyframe_start(
            Codec::Vp9,
            &[0xA8, 0x80, 0x01, 0x00, 0x00, 0x82]
        ));
        // Same, but spatial layer 1.
        assert!(!is_keyframe_start(
            Codec::Vp9,
            &[0xA8, 0x80, 0x01, 0x02, 0x00, 0x82]
        ));
        // Flexible mode has no TL0PICIDX.
        assert!(is_keyframe_start(Codec::Vp9, &[0xB8, 0x05, 0x00, 0x82]));
        assert!(!is_keyframe_start(Codec::Vp9, &[0xA8, 0x80]));
        assert!(!is_keyframe_start(Codec::Vp9, &[]));
    }

    #[test]
    fn h264_nal_forms() {
        assert!(is_keyframe_start(Codec::H264, &[0x65, 0x88]));
        assert!(is_keyframe_start(Codec::H264, &[0x67, 0x42]));
        assert!(!is_keyframe_start(Codec::H264, &[0x41, 0x9a]));
        // STAP-A with SPS then PPS.
        assert!(is_keyframe_start(
            Codec::H264,
            &[0x78, 0x00, 0x02, 0x67, 0x42, 0x00, 0x02, 0x68, 0xce]
        ));
        // STAP-A with only a non-IDR slice, then a size running past the end.
        assert!(!is_keyframe_start(
            Codec::H264,
            &[0x78, 0x00, 0x02, 0x41, 0x9a, 0xff, 0xff]
        ));
        // FU-A start of IDR, and its middle fragment.
        assert!(is_keyframe_start(Codec::H264, &[0x7c, 0x85, 0x00]));
        assert!(!is_keyframe_start(Codec::H264, &[0x7c, 0x05, 0x00]));
        assert!(!is_keyframe_start(Codec::H264, &[0x7c]));
        assert!(!is_keyframe_start(Codec::H264, &[0x78, 0x00]));
    }

    #[test]
    fn opus_is_always_a_start() {
        assert!(is_keyframe_start(Codec::Opus, &[0xfc]));
        assert!(!is_keyframe_start(Codec::Opus, &[]));
    }

    #[test]
    fn never_panics_on_any_short_input() {
        for codec in [Codec::Opus, Codec::Vp8, Codec::Vp9, Codec::H264] {
            for len in 0..4 {
                for seed in 0..=255u8 {
                    let payload: Vec<u8> = (0..len)
                        .map(|i| seed.wrapping_mul(31).wrapping_add(i as u8 * 97))
                        .collect();
                    let _ = is_keyframe_start(codec, &payload);
                }
            }
        }
    }
}
