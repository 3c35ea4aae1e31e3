//! At most 5 messages per 10 s per user: a viewer's 6th is refused and mutes them for a
//! minute, and everyone is told. A flooding client gains nothing by ignoring it.

mod common;

use common::*;
use std::time::Duration;

use signaling_proto::{ChatErrorCode, ChatRole, ChatServerMessage};

#[test]
fn sixth_message_in_ten_seconds_mutes_for_a_minute() {
    let mut h = Harness::new();
    h.join("v1", "Ana", ChatRole::Viewer);
    h.join("v2", "Bo", ChatRole::Viewer);
    h.advance(secs(1));
    h.take("v2");

    for i in 0..5 {
        h.say("v1", &format!("msg {i}"));
        h.advance(Duration::from_millis(100));
    }
    h.say("v1", "msg 5");
    assert_eq!(h.texts("v2").len(), 5);
    assert_eq!(h.errors("v1"), [ChatErrorCode::RateLimited]);
    let until = WALL_START_MS + 1_500 + 60_000;
    assert_eq!(
        h.take("v2").last(),
        Some(&ChatServerMessage::Muted {
            user: "v1".into(),
            name: "Ana".into(),
            until
        })
    );

    // Keeps flooding: all refused as muted, nobody sees anything.
    for _ in 0..100 {
        h.say("v1", "flood");
    }
    h.advance(secs(30));
    h.say("v1", "flood");
    assert!(h.take("v2").is_empty());
    assert_eq!(h.errors("v1").len(), 102);
    assert!(
        h.errors("v1")[1..]
            .iter()
            .all(|&c| c == ChatErrorCode::Muted)
    );

    h.advance(secs(30));
    h.say("v1", "calm now");
    assert_eq!(h.texts("v2"), ["calm now"]);
}

#[test]
fn spaced_out_messages_are_fine() {
    let mut h = Harness::new();
    h.join("v1", "Ana", ChatRole::Viewer);
    for i in 0..30 {
        h.say("v1", &format!("msg {i}"));
        h.advance(secs(2));
    }
    assert!(h.errors("v1").is_empty());
    assert_eq!(h.texts("v1").len(), 30);
}

#[test]
fn staff_are_held_to_the_limit_but_not_muted() {
    let mut h = Harness::new();
    h.join("host", "Host", ChatRole::Presenter);
    h.join("v1", "Ana", ChatRole::Viewer);
    for i in 0..6 {
        h.say("host", &format!("msg {i}"));
    }
    assert_eq!(h.errors("host"), [ChatErrorCode::RateLimited]);
    assert_eq!(h.texts("v1").len(), 5);
    assert!(
        !h.take("v1")
            .iter()
            .any(|m| matches!(m, ChatServerMessage::Muted { .. }))
    );
    h.advance(secs(10));
    h.say("host", "again");
    assert_eq!(h.errors("host").len(), 1);
}
