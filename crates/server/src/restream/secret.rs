//! Stream keys are secrets: the API shows them masked, and anything an ffmpeg process says
//! (its stderr may quote the URL it was given) is redacted before it is logged or shown.

/// `••••` and the key's last four characters (or only `••••` for a key of four or fewer).
pub(crate) fn mask(key: &str) -> String {
    let chars: Vec<char> = key.chars().collect();
    if chars.len() <= 4 {
        return "••••".to_owned();
    }
    let tail: String = chars[chars.len() - 4..].iter().collect();
    format!("••••{tail}")
}

/// Removes a destination's key from text, as written and as percent-encoded.
#[derive(Debug, Clone)]
pub(crate) struct Redactor {
    secrets: Vec<String>,
}

impl Redactor {
    /// A redactor for `key`.
    pub(crate) fn new(key: &str) -> Self {
        let mut secrets = vec![key.to_owned()];
        let encoded = url::form_urlencoded::byte_serialize(key.as_bytes()).collect::<String>();
        if encoded != key {
            secrets.push(encoded);
        }
        // Longest first, so a key that contains another is removed whole.
        secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        secrets.retain(|s| !s.is_empty());
        Redactor { secrets }
    }

    /// `text` with every occurrence of the key replaced by its mask.
    pub(crate) fn redact(&self, text: &str) -> String {
        let mut out = text.to_owned();
        for secret in &self.secrets {
            if out.contains(secret.as_str()) {
                out = out.replace(secret.as_str(), "<stream key>");
            }
        }
        // Control characters from a child process do not reach the log or the API.
        out.chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_masked_to_their_last_four_characters() {
        assert_eq!(mask("abcd-efgh-ijkl"), "••••ijkl");
        assert_eq!(mask("abc"), "••••");
        assert_eq!(mask("ünïcødé"), "••••cødé");
    }

    #[test]
    fn ffmpeg_output_loses_the_key() {
        let redactor = Redactor::new("sk_live?x=1&y");
        let line = "[rtmp @ 0x1] Cannot open rtmp://host/app/sk_live?x=1&y: refused";
        assert_eq!(
            redactor.redact(line),
            "[rtmp @ 0x1] Cannot open rtmp://host/app/<stream key>: refused"
        );
        let encoded = "rtmp://host/app/sk_live%3Fx%3D1%26y\u{1b}[0m";
        assert!(!redactor.redact(encoded).contains("sk_live"));
        assert!(!redactor.redact(encoded).contains('\u{1b}'));
    }
}
