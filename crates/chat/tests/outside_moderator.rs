//! Moderation from outside the room (the server's admin API): it acts as a moderator, but
//! nobody hears it join, the audience does not count it, and it is no member afterwards, so
//! the room can be let go once its real members have left.

mod common;

use common::*;
use directo_chat::Output;
use serde_json::json;
use signaling_proto::{ChatErrorCode, ChatRole, ChatServerMessage};

const ADMIN: &str = "admin-api";

fn moderate(h: &mut Harness, message: serde_json::Value) {
    let raw = message.to_string();
    h.room
        .handle_raw_as_moderator(ADMIN, "Admin", raw.as_bytes(), h.now);
    h.drain();
}

#[test]
fn deletes_and_bans_without_joining() {
    let mut h = Harness::new();
    h.join("v1", "Ana", ChatRole::Viewer);
    h.join("v2", "Bo", ChatRole::Viewer);
    h.say("v2", "spam");
    let spam = h.messages("v1")[0].id.clone();
    h.advance(secs(2));
    h.take("v1");

    moderate(&mut h, json!({"type": "chat.delete", "id": spam}));
    assert_eq!(
        h.take("v1"),
        [ChatServerMessage::Deleted { id: spam }],
        "no join, no presence: only the deletion"
    );

    h.advance(secs(2));
    moderate(&mut h, json!({"type": "user.ban", "user": "v2"}));
    assert_eq!(h.disconnected, ["v2"]);
    assert_eq!(
        h.take("v1"),
        [
            ChatServerMessage::Banned {
                user: "v2".into(),
                name: "Bo".into()
            },
            ChatServerMessage::Presence {
                viewers: 1,
                watching: None
            }
        ]
    );
    assert!(!h.room.is_member(ADMIN));
    assert_eq!(h.room.member_count(), 1);
    assert_eq!(h.room.viewer_count(), 1);
}

#[test]
fn a_refusal_goes_to_the_outside_moderator_alone() {
    let mut h = Harness::new();
    h.join("v1", "Ana", ChatRole::Viewer);
    h.take("v1");
    h.room.handle_raw_as_moderator(
        ADMIN,
        "Admin",
        br#"{"type":"chat.delete","id":"nope"}"#,
        h.now,
    );
    match h.room.poll_output() {
        Some(Output::Send {
            to,
            message: ChatServerMessage::Error { code, .. },
        }) => {
            assert_eq!(to, ADMIN);
            assert_eq!(code, ChatErrorCode::NotFound);
        }
        other => panic!("expected a refusal to the admin, got {other:?}"),
    }
    assert_eq!(h.room.poll_output(), None);
    assert!(!h.room.is_member(ADMIN));
}
