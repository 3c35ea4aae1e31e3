//! Keeps the Redis password out of logs, `Debug`, `Display` and errors.
//!
//! Two tools: [`redact_url`] for showing the configured URL, and [`Redactor`] for scrubbing
//! text that came from elsewhere (the Redis client's own errors may quote what they were
//! given, and we do not audit every message of a dependency).

/// What a redacted password looks like.
const HIDDEN: &str = "***";

/// `url` with its password (if any) replaced by `***`; something unparseable is hidden whole,
/// since we cannot tell where a password would sit in it.
pub(crate) fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) => {
            if parsed.password().is_some() && parsed.set_password(Some(HIDDEN)).is_err() {
                return "<Redis URL hidden>".to_owned();
            }
            parsed.to_string()
        }
        Err(_) => "<unparseable Redis URL hidden>".to_owned(),
    }
}

/// Scrubs the password of one Redis URL out of any text.
#[derive(Clone, Default)]
pub(crate) struct Redactor {
    /// The password as written in the URL and percent-decoded (what Redis is sent); empty
    /// strings are never kept, they would match everywhere.
    secrets: Vec<String>,
}

impl Redactor {
    /// A redactor for the password in `url` (none if it has none or does not parse).
    pub(crate) fn for_url(url: &str) -> Self {
        let mut secrets = Vec::new();
        if let Ok(parsed) = url::Url::parse(url)
            && let Some(raw) = parsed.password()
        {
            let decoded = percent_decode(raw);
            for secret in [raw.to_owned(), decoded] {
                if !secret.is_empty() && !secrets.contains(&secret) {
                    secrets.push(secret);
                }
            }
        }
        // Longest first, so a password that contains another form of itself is hidden whole.
        secrets.sort_by_key(|secret| std::cmp::Reverse(secret.len()));
        Self { secrets }
    }

    /// `text` with every occurrence of the password replaced by `***`.
    pub(crate) fn scrub(&self, text: &str) -> String {
        self.secrets
            .iter()
            .fold(text.to_owned(), |text, secret| text.replace(secret, HIDDEN))
    }
}

impl std::fmt::Debug for Redactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Redactor { .. }")
    }
}

/// `%XX` sequences decoded; anything malformed is kept as written.
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|pair| std::str::from_utf8(pair).ok())
            .and_then(|pair| u8::from_str_radix(pair, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_lose_their_password() {
        assert_eq!(
            redact_url("redis://:hunter2@cache.internal:6379/2"),
            "redis://:***@cache.internal:6379/2"
        );
        assert_eq!(
            redact_url("rediss://user:p%40ss@cache:6380"),
            "rediss://user:***@cache:6380"
        );
        assert_eq!(redact_url("redis://cache:6379"), "redis://cache:6379");
        assert!(!redact_url("redis://:hunter2@[bad").contains("hunter2"));
    }

    #[test]
    fn text_loses_both_forms_of_the_password() {
        let redactor = Redactor::for_url("redis://:p%40ss@cache:6379");
        assert_eq!(
            redactor.scrub("sent p@ss, configured p%40ss"),
            "sent ***, configured ***"
        );
        assert_eq!(Redactor::for_url("redis://cache").scrub("text"), "text");
    }
}
