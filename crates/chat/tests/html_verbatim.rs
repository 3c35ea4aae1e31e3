//! Text is never HTML: what a member types arrives byte for byte in the JSON `text` field,
//! markup included, for the pages to render with `textContent`.

mod common;

use common::*;
use signaling_proto::{ChatRole, ChatServerMessage};

#[test]
fn markup_is_delivered_verbatim() {
    let mut h = Harness::new();
    h.join("v1", "<b>Ana</b>", ChatRole::Viewer);
    h.join("v2", "Bo", ChatRole::Viewer);
    let text = r#"<script>alert("x")</script> <img src=x onerror=alert(1)> &lt; &amp;"#;
    h.say("v1", text);

    let received = h.messages("v2");
    assert_eq!(received[0].text, text);
    assert_eq!(received[0].from.name, "<b>Ana</b>");

    // And on the wire: JSON string escaping only, no HTML entities.
    let wire = serde_json::to_value(ChatServerMessage::Message(received[0].clone())).unwrap();
    assert_eq!(wire["text"].as_str(), Some(text));

    h.join("late", "Cy", ChatRole::Viewer);
    assert_eq!(h.history_texts("late"), [text]);
}
