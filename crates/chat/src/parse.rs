//! Raw bytes from a client to a [`ChatClientMessage`], telling the ways it can be wrong
//! apart so the client gets a useful error code.

use signaling_proto::{ChatClientMessage, ChatErrorCode};

/// The largest raw message accepted; bigger ones are refused before parsing.
pub const MAX_RAW_BYTES: usize = 4096;

/// Parses one raw message: over 4 KiB is `too_large`, a `type` nobody knows is
/// `unknown_type`, anything else wrong is `bad_request`.
pub(crate) fn parse(raw: &[u8]) -> Result<ChatClientMessage, (ChatErrorCode, String)> {
    if raw.len() > MAX_RAW_BYTES {
        return Err((
            ChatErrorCode::TooLarge,
            format!(
                "the message is {} bytes; at most {MAX_RAW_BYTES} are accepted",
                raw.len()
            ),
        ));
    }
    let value: serde_json::Value = serde_json::from_slice(raw).map_err(|e| {
        (
            ChatErrorCode::BadRequest,
            format!("the message is not JSON: {e}"),
        )
    })?;
    let Some(kind) = value.get("type").and_then(serde_json::Value::as_str) else {
        return Err((
            ChatErrorCode::BadRequest,
            "the message must be a JSON object with a string `type`".to_owned(),
        ));
    };
    if !ChatClientMessage::TYPES.contains(&kind) {
        let known = ChatClientMessage::TYPES.join(", ");
        return Err((
            ChatErrorCode::UnknownType,
            format!(
                "unknown message type `{}`; known types: {known}",
                truncate(kind)
            ),
        ));
    }
    let kind = kind.to_owned();
    serde_json::from_value(value).map_err(|e| {
        (
            ChatErrorCode::BadRequest,
            format!("bad `{kind}` message: {e}"),
        )
    })
}

/// At most 64 characters of client input, so an error does not echo a whole message.
fn truncate(s: &str) -> String {
    s.chars().take(64).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(raw: &[u8]) -> ChatErrorCode {
        parse(raw).unwrap_err().0
    }

    #[test]
    fn tells_the_failures_apart() {
        assert_eq!(code(&[b' '; MAX_RAW_BYTES + 1]), ChatErrorCode::TooLarge);
        assert_eq!(code(b"not json"), ChatErrorCode::BadRequest);
        assert_eq!(code(b"[1,2]"), ChatErrorCode::BadRequest);
        assert_eq!(code(br#"{"type":7}"#), ChatErrorCode::BadRequest);
        assert_eq!(
            code(br#"{"type":"chat.dance"}"#),
            ChatErrorCode::UnknownType
        );
        assert_eq!(code(br#"{"type":"chat.send"}"#), ChatErrorCode::BadRequest);
        assert_eq!(
            code(br#"{"type":"chat.send","text":"x","extra":1}"#),
            ChatErrorCode::BadRequest
        );
        assert_eq!(code(&[0xff, 0xfe]), ChatErrorCode::BadRequest);
    }

    #[test]
    fn accepts_a_message_of_exactly_the_limit() {
        let prefix = br#"{"type":"chat.send","text":""#;
        let suffix = br#""}"#;
        let mut raw = prefix.to_vec();
        raw.resize(MAX_RAW_BYTES - suffix.len(), b'a');
        raw.extend_from_slice(suffix);
        assert_eq!(raw.len(), MAX_RAW_BYTES);
        assert!(matches!(parse(&raw), Ok(ChatClientMessage::Send { .. })));
    }
}
