//! A muted user cannot write until the mute ends, however often its client tries; only
//! moderators and the presenter mute, and only people below them.

mod common;

use common::*;
use serde_json::json;
use signaling_proto::{ChatErrorCode, ChatRole, ChatServerMessage};

#[test]
fn muted_viewer_is_refused_until_the_mute_ends() {
    let mut h = Harness::new();
    h.join("mod", "Mia", ChatRole::Moderator);
    h.join("v1", "Ana", ChatRole::Viewer);
    h.join("v2", "Bo", ChatRole::Viewer);
    h.take("v2");

    h.send(
        "mod",
        json!({"type": "user.mute", "user": "v1", "minutes": 5}),
    );
    let expected_until = WALL_START_MS + 5 * 60_000;
    assert_eq!(
        h.take("v2"),
        [ChatServerMessage::Muted {
            user: "v1".into(),
            name: "Ana".into(),
            until: expected_until
        }]
    );

    // A client that ignores the mute keeps sending; nothing gets through.
    for _ in 0..20 {
        h.advance(secs(10));
        h.say("v1", "let me talk");
    }
    assert!(h.texts("v2").is_empty());
    assert!(
        h.errors("v1")
            .iter()
            .all(|&code| code == ChatErrorCode::Muted)
    );
    assert_eq!(h.errors("v1").len(), 20);
    assert!(h.room.is_member("v1"), "a mute does not disconnect");

    h.advance(secs(100)); // 5 min 0 s after the mute
    h.say("v1", "back");
    assert_eq!(h.texts("v2"), ["back"]);
}

#[test]
fn only_staff_mute_and_only_below_them() {
    let mut h = Harness::new();
    h.join("host", "Host", ChatRole::Presenter);
    h.join("mod", "Mia", ChatRole::Moderator);
    h.join("v1", "Ana", ChatRole::Viewer);

    h.send(
        "v1",
        json!({"type": "user.mute", "user": "mod", "minutes": 1}),
    );
    h.send(
        "mod",
        json!({"type": "user.mute", "user": "host", "minutes": 1}),
    );
    h.send(
        "mod",
        json!({"type": "user.mute", "user": "mod", "minutes": 1}),
    );
    assert_eq!(h.errors("v1"), [ChatErrorCode::Forbidden]);
    assert_eq!(
        h.errors("mod"),
        [ChatErrorCode::Forbidden, ChatErrorCode::Forbidden]
    );

    h.send(
        "mod",
        json!({"type": "user.mute", "user": "ghost", "minutes": 1}),
    );
    h.send(
        "mod",
        json!({"type": "user.mute", "user": "v1", "minutes": 0}),
    );
    assert_eq!(
        &h.errors("mod")[2..],
        [ChatErrorCode::NotFound, ChatErrorCode::BadRequest]
    );

    // The presenter outranks moderators.
    h.send(
        "host",
        json!({"type": "user.mute", "user": "mod", "minutes": 1}),
    );
    h.say("mod", "hi");
    assert_eq!(h.errors("mod").last(), Some(&ChatErrorCode::Muted));
}

#[test]
fn a_user_who_left_can_be_muted_from_their_messages() {
    let mut h = Harness::new();
    h.join("mod", "Mia", ChatRole::Moderator);
    h.join("v1", "Ana", ChatRole::Viewer);
    h.say("v1", "rude");
    h.leave("v1");
    h.send(
        "mod",
        json!({"type": "user.mute", "user": "v1", "minutes": 10}),
    );
    assert!(h.errors("mod").is_empty());
    h.join("v1", "Ana", ChatRole::Viewer);
    h.say("v1", "hello again");
    assert_eq!(h.errors("v1"), [ChatErrorCode::Muted]);
}
