//! RTP and RTCP as they arrive from peers, after SRTP: the `rtc` parsers Directo relies on
//! never panic, and what parses marshals again.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rtc::shared::marshal::{Marshal, Unmarshal};

fuzz_target!(|data: &[u8]| {
    let mut buf = data;
    if let Ok(packet) = rtc::rtp::Packet::unmarshal(&mut buf) {
        let _ = packet.marshal();
    }
    let mut buf = data;
    if let Ok(packets) = rtc::rtcp::packet::unmarshal(&mut buf) {
        for packet in packets {
            let _ = packet.marshal();
            let _ = packet.destination_ssrc();
        }
    }
});
