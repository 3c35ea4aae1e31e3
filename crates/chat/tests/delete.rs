//! A moderator deletes a message: it goes for everyone, and a viewer who joins later does
//! not get it in the history. Only moderators and the presenter may delete.

mod common;

use common::*;
use serde_json::json;
use signaling_proto::{ChatErrorCode, ChatRole, ChatServerMessage};

#[test]
fn deleted_message_is_gone_for_everyone_and_from_history() {
    let mut h = Harness::new();
    h.join("mod", "Mia", ChatRole::Moderator);
    h.join("v1", "Ana", ChatRole::Viewer);
    h.join("v2", "Bo", ChatRole::Viewer);
    h.say("v1", "keep me");
    h.say("v2", "spam spam");
    let spam = h.messages("v1")[1].id.clone();
    h.take("v1");

    h.send("mod", json!({"type": "chat.delete", "id": spam}));
    assert_eq!(
        h.take("v1"),
        [ChatServerMessage::Deleted { id: spam.clone() }]
    );
    assert!(h.errors("mod").is_empty());

    h.join("late", "Cy", ChatRole::Viewer);
    assert_eq!(h.history_texts("late"), ["keep me"]);

    // Replying to a deleted message is refused.
    h.reply("v2", &spam, "but why");
    assert_eq!(h.errors("v2"), [ChatErrorCode::NotFound]);
}

#[test]
fn viewers_cannot_delete() {
    let mut h = Harness::new();
    h.join("v1", "Ana", ChatRole::Viewer);
    h.join("v2", "Bo", ChatRole::Viewer);
    h.say("v1", "mine");
    let id = h.messages("v2")[0].id.clone();
    h.send("v2", json!({"type": "chat.delete", "id": id}));
    assert_eq!(h.errors("v2"), [ChatErrorCode::Forbidden]);
    h.join("late", "Cy", ChatRole::Viewer);
    assert_eq!(h.history_texts("late"), ["mine"]);
}

#[test]
fn deleting_an_unknown_message_is_not_found() {
    let mut h = Harness::new();
    h.join("host", "Host", ChatRole::Presenter);
    h.send("host", json!({"type": "chat.delete", "id": "nope"}));
    assert_eq!(h.errors("host"), [ChatErrorCode::NotFound]);
}

#[test]
fn deleting_the_pinned_message_unpins_it() {
    let mut h = Harness::new();
    h.join("host", "Host", ChatRole::Presenter);
    h.join("v1", "Ana", ChatRole::Viewer);
    h.say("host", "Q&A at 5pm");
    let id = h.messages("v1")[0].id.clone();
    h.send("host", json!({"type": "chat.pin", "id": id}));
    assert!(
        matches!(h.take("v1").last(), Some(ChatServerMessage::Pinned { message: Some(m) }) if m.id == id)
    );
    h.send("host", json!({"type": "chat.delete", "id": id}));
    assert_eq!(
        h.take("v1"),
        [
            ChatServerMessage::Deleted { id },
            ChatServerMessage::Pinned { message: None }
        ]
    );
    assert!(h.room.pinned().is_none());
}

#[test]
fn clear_empties_the_chat_for_everyone() {
    let mut h = Harness::new();
    h.join("host", "Host", ChatRole::Presenter);
    h.join("v1", "Ana", ChatRole::Viewer);
    h.say("v1", "one");
    h.say("v1", "two");
    h.take("v1");
    h.send("v1", json!({"type": "chat.clear"}));
    assert_eq!(h.errors("v1"), [ChatErrorCode::Forbidden]);
    h.send("host", json!({"type": "chat.clear"}));
    assert_eq!(h.take("v1").last(), Some(&ChatServerMessage::Cleared));
    h.join("late", "Cy", ChatRole::Viewer);
    assert!(h.history_texts("late").is_empty());
}
