//! Oversize, empty, too long, malformed and unknown messages each get an `error` with its
//! own code, and the member stays connected and can go on chatting.

mod common;

use common::*;
use directo_chat::{JoinError, MAX_RAW_BYTES};
use signaling_proto::{ChatErrorCode, ChatRole};

#[test]
fn each_bad_message_gets_its_error_and_the_member_stays() {
    let mut h = Harness::new();
    h.join("v1", "Ana", ChatRole::Viewer);
    h.join("v2", "Bo", ChatRole::Viewer);

    let oversize = format!(
        r#"{{"type":"chat.send","text":"{}"}}"#,
        "a".repeat(MAX_RAW_BYTES)
    );
    let too_long = format!(r#"{{"type":"chat.send","text":"{}"}}"#, "é".repeat(501));
    let cases: Vec<(&[u8], ChatErrorCode)> = vec![
        (oversize.as_bytes(), ChatErrorCode::TooLarge),
        (
            br#"{"type":"chat.send","text":""}"#,
            ChatErrorCode::TextEmpty,
        ),
        (
            br#"{"type":"chat.send","text":"  \n\t\u0007 "}"#,
            ChatErrorCode::TextEmpty,
        ),
        (too_long.as_bytes(), ChatErrorCode::TextTooLong),
        (b"{not json", ChatErrorCode::BadRequest),
        (b"", ChatErrorCode::BadRequest),
        (b"\"chat.send\"", ChatErrorCode::BadRequest),
        (br#"{"text":"no type"}"#, ChatErrorCode::BadRequest),
        (br#"{"type":"chat.send"}"#, ChatErrorCode::BadRequest),
        (br#"{"type":"chat.clear","x":1}"#, ChatErrorCode::BadRequest),
        (
            br#"{"type":"user.mute","user":"v2","minutes":"ten"}"#,
            ChatErrorCode::BadRequest,
        ),
        (
            br#"{"type":"chat.launch_rocket"}"#,
            ChatErrorCode::UnknownType,
        ),
        (
            br#"{"type":"join","stream":"x"}"#,
            ChatErrorCode::UnknownType,
        ),
        (
            br#"{"type":"chat.send","text":"hi","reply_to":"missing"}"#,
            ChatErrorCode::NotFound,
        ),
    ];
    for (raw, code) in &cases {
        h.raw("v1", raw);
        assert_eq!(
            h.errors("v1").last(),
            Some(code),
            "{}",
            String::from_utf8_lossy(&raw[..raw.len().min(60)])
        );
        assert!(h.room.is_member("v1"));
    }
    assert_eq!(h.errors("v1").len(), cases.len());
    assert!(h.disconnected.is_empty());
    assert!(h.texts("v2").is_empty(), "nothing bad was delivered");
    assert!(h.errors("v2").is_empty(), "errors go to the sender only");

    h.say("v1", "  still here \u{0}");
    assert_eq!(h.texts("v2"), ["still here"]);
}

#[test]
fn names_are_checked_on_join() {
    let mut h = Harness::new();
    for name in ["", "   ", "\u{7}\u{8}", &"x".repeat(33)] {
        assert_eq!(
            h.try_join("v1", name, ChatRole::Viewer, None),
            Err(JoinError::InvalidName)
        );
    }
    let user = h
        .try_join("v1", "  Ana\u{0}\nMaria ", ChatRole::Viewer, None)
        .unwrap();
    assert_eq!(user.name, "Ana Maria");
    assert_eq!(JoinError::InvalidName.code(), ChatErrorCode::InvalidName);
}

#[test]
fn unjoined_senders_are_ignored() {
    let mut h = Harness::new();
    h.join("v1", "Ana", ChatRole::Viewer);
    h.room.handle_raw("stranger", b"garbage", h.now);
    assert_eq!(h.room.poll_output(), None);
}
