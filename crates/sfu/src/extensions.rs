//! Header-extension translation from a publisher to one viewer: each extension id the
//! publisher negotiated is mapped through its URI to the id the viewer negotiated, and
//! every extension the viewer did not negotiate is dropped.
//!
//! Some extensions are never forwarded because they describe the hop, not the media: the
//! MID/RID ones name the publisher's transceiver (the engine's peer connection sets the
//! viewer's MID itself, if at all) and transport-wide congestion control numbers packets
//! per transport (the engine's peer connection stamps its own).

use bytes::Bytes;
use rtc::rtp::header::{EXTENSION_PROFILE_ONE_BYTE, EXTENSION_PROFILE_TWO_BYTE, Extension, Header};

/// Extension URIs that are per hop and so never forwarded.
const NOT_FORWARDED: &[&str] = &[
    "urn:ietf:params:rtp-hdrext:sdes:mid",
    "urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id",
    "urn:ietf:params:rtp-hdrext:sdes:repaired-rtp-stream-id",
    "http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01",
];

/// The largest id a one-byte extension header can carry (RFC 8285).
const ONE_BYTE_MAX_ID: u8 = 14;
/// The largest payload a one-byte extension header can carry.
const ONE_BYTE_MAX_LEN: usize = 16;

/// Publisher extension id -> viewer extension id, for one publisher track and one viewer.
#[derive(Debug, Clone)]
pub(crate) struct ExtensionMap {
    /// Indexed by the publisher's id; 0 means "drop".
    to_viewer: [u8; 256],
    /// Whether any target id needs the two-byte header form.
    needs_two_byte: bool,
}

impl Default for ExtensionMap {
    fn default() -> Self {
        Self {
            to_viewer: [0; 256],
            needs_two_byte: false,
        }
    }
}

impl ExtensionMap {
    /// Builds the map from both sides' negotiated `(id, uri)` lists.
    pub(crate) fn new(publisher: &[(u8, String)], viewer: &[(u8, String)]) -> Self {
        let mut map = Self::default();
        for (publisher_id, uri) in publisher {
            if *publisher_id == 0 || NOT_FORWARDED.contains(&uri.as_str()) {
                continue;
            }
            let Some((viewer_id, _)) = viewer
                .iter()
                .find(|(id, viewer_uri)| *id != 0 && viewer_uri == uri)
            else {
                continue;
            };
            map.to_viewer[usize::from(*publisher_id)] = *viewer_id;
            map.needs_two_byte |= *viewer_id > ONE_BYTE_MAX_ID;
        }
        map
    }

    fn target(&self, publisher_id: u8) -> Option<u8> {
        match self.to_viewer[usize::from(publisher_id)] {
            0 => None,
            id => Some(id),
        }
    }

    /// Writes the translated extensions of `source` into `header`, whose extension block
    /// must be empty. Goes through `Header::set_extension` so the extension flag, profile
    /// and padding stay consistent for marshalling.
    pub(crate) fn translate_into(&self, source: &Header, header: &mut Header) {
        if !source.extension || source.extensions.is_empty() {
            return;
        }
        let mut kept = 0;
        let mut two_byte = self.needs_two_byte;
        for ext in &source.extensions {
            if self.target(ext.id).is_some() {
                kept += 1;
                two_byte |= ext.payload.is_empty() || ext.payload.len() > ONE_BYTE_MAX_LEN;
            }
        }
        if kept == 0 {
            return;
        }
        header.extension = true;
        header.extension_profile = if two_byte {
            EXTENSION_PROFILE_TWO_BYTE
        } else {
            EXTENSION_PROFILE_ONE_BYTE
        };
        // One more: a viewer's transport-wide sequence number is stamped after translation.
        header.extensions = Vec::with_capacity(kept + 1);
        header.extensions_padding = 0;
        for Extension { id, payload } in &source.extensions {
            if let Some(target) = self.target(*id) {
                // Only fails on an id or size the chosen profile cannot carry, which the
                // profile choice above rules out; dropping that one extension is the
                // right answer either way.
                let _ = header.set_extension(target, Bytes::clone(payload));
            }
        }
        if header.extensions.is_empty() {
            header.extension = false;
            header.extension_profile = 0;
            header.extensions_padding = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rtc::rtp::Packet;
    use rtc::shared::marshal::{Marshal, Unmarshal};

    const AUDIO_LEVEL: &str = "urn:ietf:params:rtp-hdrext:ssrc-audio-level";
    const ABS_SEND_TIME: &str = "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time";
    const MID: &str = "urn:ietf:params:rtp-hdrext:sdes:mid";

    fn source() -> Header {
        let mut header = Header {
            version: 2,
            ..Default::default()
        };
        header
            .set_extension(1, Bytes::from_static(&[0x80]))
            .unwrap();
        header
            .set_extension(3, Bytes::from_static(&[1, 2, 3]))
            .unwrap();
        header.set_extension(4, Bytes::from_static(b"0")).unwrap();
        header
    }

    fn round_trip(header: Header) -> Header {
        let packet = Packet {
            header,
            payload: Bytes::from_static(&[1, 2, 3]),
        };
        let mut buf = packet.marshal().unwrap().freeze();
        Packet::unmarshal(&mut buf).unwrap().header
    }

    #[test]
    fn remaps_ids_and_drops_the_rest() {
        let publisher = vec![
            (1, AUDIO_LEVEL.to_string()),
            (3, ABS_SEND_TIME.to_string()),
            (4, MID.to_string()),
        ];
        let viewer = vec![(5, AUDIO_LEVEL.to_string()), (4, MID.to_string())];
        let map = ExtensionMap::new(&publisher, &viewer);
        let mut header = Header {
            version: 2,
            ..Default::default()
        };
        map.translate_into(&source(), &mut header);
        let parsed = round_trip(header);
        assert_eq!(parsed.get_extension_ids(), vec![5]);
        assert_eq!(parsed.get_extension(5).as_deref(), Some(&[0x80][..]));
    }

    #[test]
    fn nothing_kept_means_no_extension_block() {
        let map = ExtensionMap::new(&[(1, AUDIO_LEVEL.to_string())], &[]);
        let mut header = Header {
            version: 2,
            ..Default::default()
        };
        map.translate_into(&source(), &mut header);
        assert!(!header.extension);
        assert!(round_trip(header).extensions.is_empty());
    }

    #[test]
    fn high_viewer_ids_use_the_two_byte_form() {
        let publisher = vec![(1, AUDIO_LEVEL.to_string()), (3, ABS_SEND_TIME.to_string())];
        let viewer = vec![
            (20, AUDIO_LEVEL.to_string()),
            (2, ABS_SEND_TIME.to_string()),
        ];
        let map = ExtensionMap::new(&publisher, &viewer);
        let mut header = Header {
            version: 2,
            ..Default::default()
        };
        map.translate_into(&source(), &mut header);
        assert_eq!(header.extension_profile, EXTENSION_PROFILE_TWO_BYTE);
        let parsed = round_trip(header);
        assert_eq!(parsed.get_extension(20).as_deref(), Some(&[0x80][..]));
        assert_eq!(parsed.get_extension(2).as_deref(), Some(&[1, 2, 3][..]));
    }
}
