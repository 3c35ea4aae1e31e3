//! A ban closes the member's chat and media at once and refuses them for the stream's life,
//! by id, by display name and by origin.

mod common;

use common::*;
use directo_chat::JoinError;
use serde_json::json;
use signaling_proto::{ChatErrorCode, ChatRole, ChatServerMessage};

#[test]
fn banned_member_is_disconnected_and_refused_again() {
    let mut h = Harness::new();
    h.join("host", "Host", ChatRole::Presenter);
    h.join("mod", "Mia", ChatRole::Moderator);
    h.try_join("troll", "Troll", ChatRole::Viewer, Some("203.0.113.9"))
        .unwrap();
    h.join("v1", "Ana", ChatRole::Viewer);
    // Let the joins' presence update go out, and the throttle pass.
    h.advance(secs(5));
    h.advance(secs(5));
    h.take("v1");

    h.send("mod", json!({"type": "user.ban", "user": "troll"}));
    assert_eq!(h.disconnected, ["troll"]);
    assert!(!h.room.is_member("troll"));
    let seen = h.take("v1");
    assert_eq!(
        seen[0],
        ChatServerMessage::Banned {
            user: "troll".into(),
            name: "Troll".into()
        }
    );
    assert_eq!(
        seen[1],
        ChatServerMessage::Presence {
            viewers: 2,
            watching: None
        }
    );
    // The banned member hears about it before being cut off.
    assert!(h.take("troll").contains(&seen[0]));

    // A client that ignores the ban and keeps sending is not heard.
    h.room.handle_raw(
        "troll",
        br#"{"type":"chat.send","text":"still here"}"#,
        h.now,
    );
    assert_eq!(h.room.poll_output(), None);

    // Same id, same name (any case) or same origin: refused.
    let refused = [
        ("troll", "New Name", Some("198.51.100.1")),
        ("fresh-1", " troll ", Some("198.51.100.1")),
        ("fresh-2", "Someone", Some("203.0.113.9")),
    ];
    for (id, name, origin) in refused {
        assert!(h.room.is_banned(id, name, origin), "{id} {name}");
        assert_eq!(
            h.try_join(id, name, ChatRole::Viewer, origin),
            Err(JoinError::Banned)
        );
    }
    assert_eq!(JoinError::Banned.code(), ChatErrorCode::Banned);
    assert!(!h.room.is_banned("fresh-3", "Someone", Some("198.51.100.1")));
    assert!(
        h.try_join("fresh-3", "Someone", ChatRole::Viewer, Some("198.51.100.1"))
            .is_ok()
    );
}

#[test]
fn only_staff_ban_and_never_the_presenter() {
    let mut h = Harness::new();
    h.join("host", "Host", ChatRole::Presenter);
    h.join("mod", "Mia", ChatRole::Moderator);
    h.join("v1", "Ana", ChatRole::Viewer);
    h.join("v2", "Bo", ChatRole::Viewer);
    h.send("v1", json!({"type": "user.ban", "user": "v2"}));
    h.send("mod", json!({"type": "user.ban", "user": "host"}));
    assert_eq!(h.errors("v1"), [ChatErrorCode::Forbidden]);
    assert_eq!(h.errors("mod"), [ChatErrorCode::Forbidden]);
    assert!(h.disconnected.is_empty());
    assert!(h.room.is_member("v2"));
}
