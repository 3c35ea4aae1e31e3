//! Who is banned from a stream: by user id, by display name and by origin (e.g. the IP
//! address), so a banned person cannot come back under a new connection id.

use std::collections::HashSet;

use crate::text::name_key;

/// The stream's bans; they last as long as the stream's log.
#[derive(Debug, Default)]
pub(crate) struct Bans {
    users: HashSet<String>,
    names: HashSet<String>,
    origins: HashSet<String>,
}

impl Bans {
    /// Bans `user`, the display name `name` and, if known, `origin`.
    pub(crate) fn insert(&mut self, user: &str, name: &str, origin: Option<&str>) {
        self.users.insert(user.to_owned());
        let key = name_key(name);
        if !key.is_empty() {
            self.names.insert(key);
        }
        if let Some(origin) = origin.filter(|o| !o.is_empty()) {
            self.origins.insert(origin.to_owned());
        }
    }

    /// Whether any of the id, the name (case-insensitively) or the origin is banned.
    pub(crate) fn matches(&self, user: &str, name: &str, origin: Option<&str>) -> bool {
        self.users.contains(user)
            || self.names.contains(&name_key(name))
            || origin.is_some_and(|o| !o.is_empty() && self.origins.contains(o))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_of_id_name_or_origin_matches() {
        let mut bans = Bans::default();
        bans.insert("u1", "Troll", Some("203.0.113.9"));
        assert!(bans.matches("u1", "Someone", None));
        assert!(bans.matches("u2", " troll ", None));
        assert!(bans.matches("u3", "Other", Some("203.0.113.9")));
        assert!(!bans.matches("u4", "Other", Some("198.51.100.1")));
        assert!(!bans.matches("u4", "Other", Some("")));
    }
}
