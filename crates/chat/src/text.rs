//! Cleaning and checking what people type: display names and message text.
//!
//! Both get the same treatment: control characters go (whitespace ones such as a newline
//! become a space, so words do not run together), then the ends are trimmed, then the
//! length is counted in characters. Nothing is escaped: text stays plain text, and the
//! pages render it with `textContent`.

use signaling_proto::ChatErrorCode;

/// The longest display name, in characters.
pub const MAX_NAME_CHARS: usize = 32;
/// The longest message text, in characters.
pub const MAX_TEXT_CHARS: usize = 500;

/// `input` without control characters and trimmed.
pub fn sanitize(input: &str) -> String {
    let cleaned: String = input
        .chars()
        .filter_map(|c| match c {
            c if c.is_control() && c.is_whitespace() => Some(' '),
            c if c.is_control() => None,
            c => Some(c),
        })
        .collect();
    cleaned.trim().to_owned()
}

/// A display name cleaned and checked: 1–32 characters once cleaned.
pub fn clean_name(raw: &str) -> Option<String> {
    let name = sanitize(raw);
    let chars = name.chars().count();
    (1..=MAX_NAME_CHARS).contains(&chars).then_some(name)
}

/// The key bans match names by: cleaned and case-folded, so "Ana" and " ana" are one name.
pub(crate) fn name_key(raw: &str) -> String {
    sanitize(raw).to_lowercase()
}

/// Message text cleaned and checked: 1–500 characters once cleaned.
pub(crate) fn clean_text(raw: &str) -> Result<String, (ChatErrorCode, String)> {
    let text = sanitize(raw);
    let chars = text.chars().count();
    if chars == 0 {
        return Err((
            ChatErrorCode::TextEmpty,
            "the message is empty; write 1 to 500 characters".to_owned(),
        ));
    }
    if chars > MAX_TEXT_CHARS {
        return Err((
            ChatErrorCode::TextTooLong,
            format!("the message has {chars} characters; at most {MAX_TEXT_CHARS} are allowed"),
        ));
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_go_and_ends_are_trimmed() {
        assert_eq!(sanitize("  a\u{7}b\u{0}c  "), "abc");
        assert_eq!(sanitize("one\ntwo\r\nthree\t"), "one two  three");
        assert_eq!(sanitize("\u{1b}[31mred"), "[31mred");
    }

    #[test]
    fn names_are_1_to_32_characters() {
        assert_eq!(clean_name("  Ana \n").as_deref(), Some("Ana"));
        assert_eq!(clean_name(" \u{7} "), None);
        assert_eq!(
            clean_name(&"é".repeat(32)).map(|n| n.chars().count()),
            Some(32)
        );
        assert_eq!(clean_name(&"é".repeat(33)), None);
    }

    #[test]
    fn text_limits_count_characters_after_trimming() {
        assert_eq!(clean_text("  hi  "), Ok("hi".to_owned()));
        assert_eq!(clean_text(" \n ").unwrap_err().0, ChatErrorCode::TextEmpty);
        assert!(clean_text(&format!("  {}  ", "ü".repeat(500))).is_ok());
        assert_eq!(
            clean_text(&"a".repeat(501)).unwrap_err().0,
            ChatErrorCode::TextTooLong
        );
    }

    #[test]
    fn html_is_left_alone() {
        let text = r#"<img src=x onerror="alert(1)"> &amp; <b>"#;
        assert_eq!(clean_text(text), Ok(text.to_owned()));
    }

    #[test]
    fn name_keys_ignore_case_and_padding() {
        assert_eq!(name_key(" Ana\t"), name_key("aNA"));
    }
}
