//! Every JSON message a client or peer can send (signaling over `/ws`, chat on the data
//! channel and `/ws`, error bodies and stream listings a client reads): parsing never
//! panics, and whatever parses serializes and parses back to the same value.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde::Serialize;
use serde::de::DeserializeOwned;
use signaling_proto::{
    ChatClientMessage, ChatServerMessage, ClientMessage, ErrorBody, ServerMessage, StreamInfo,
    is_valid_stream_name,
};
use std::fmt::Debug;

fn round_trip<T: Serialize + DeserializeOwned + PartialEq + Debug>(text: &str) {
    if let Ok(value) = serde_json::from_str::<T>(text) {
        let again = serde_json::to_string(&value).expect("a parsed message serializes");
        let back: T = serde_json::from_str(&again)
            .unwrap_or_else(|e| panic!("{again} does not parse back: {e}"));
        assert_eq!(value, back, "{text} -> {again}");
    }
}

fuzz_target!(|data: &[u8]| {
    let _ = serde_json::from_slice::<ClientMessage>(data);
    let _ = serde_json::from_slice::<ChatClientMessage>(data);
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    round_trip::<ClientMessage>(text);
    round_trip::<ServerMessage>(text);
    round_trip::<ChatClientMessage>(text);
    round_trip::<ChatServerMessage>(text);
    round_trip::<ErrorBody>(text);
    round_trip::<StreamInfo>(text);
    let _ = is_valid_stream_name(text);
});
