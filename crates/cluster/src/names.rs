//! The names that go into Redis keys and channels, checked before any command is built.
//!
//! [`StreamName`] and [`NodeId`] can only be made by checking, and the key schema
//! ([`crate::keys`]) only takes them, so an invalid name cannot reach a Redis command by
//! construction. The separators the schema relies on (`:`) never occur in stream names or
//! namespaces; node ids may contain `:` but only ever stand last in a key.

use crate::error::{ClusterError, Result};

/// A stream name that passed `signaling_proto::is_valid_stream_name`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct StreamName<'a>(&'a str);

impl<'a> StreamName<'a> {
    /// `name`, or an error naming what is accepted.
    pub(crate) fn check(name: &'a str) -> Result<Self> {
        if signaling_proto::is_valid_stream_name(name) {
            Ok(Self(name))
        } else {
            Err(ClusterError::InvalidInput(format!(
                "stream name {} is not valid: use 1 to 64 of A-Z a-z 0-9 _ -",
                shown(name)
            )))
        }
    }

    /// The checked name.
    pub(crate) fn as_str(self) -> &'a str {
        self.0
    }
}

/// A node id of `[A-Za-z0-9._:-]{1,64}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct NodeId<'a>(&'a str);

impl<'a> NodeId<'a> {
    /// `id`, or an error naming what is accepted.
    pub(crate) fn check(id: &'a str) -> Result<Self> {
        if is_valid_node_id(id) {
            Ok(Self(id))
        } else {
            Err(ClusterError::InvalidInput(format!(
                "node id {} is not valid: use 1 to 64 of A-Z a-z 0-9 . _ : -",
                shown(id)
            )))
        }
    }

    /// The checked id.
    pub(crate) fn as_str(self) -> &'a str {
        self.0
    }
}

/// Whether `id` is a valid node id: `[A-Za-z0-9._:-]{1,64}`.
pub fn is_valid_node_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'))
}

/// Whether `namespace` is valid: `[A-Za-z0-9._-]{1,32}` (no `:`, which separates key parts).
pub fn is_valid_namespace(namespace: &str) -> bool {
    (1..=32).contains(&namespace.len())
        && namespace
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// A name as an error shows it: quoted, escaped, and cut short so that a megabyte of junk
/// does not become a megabyte of log.
fn shown(name: &str) -> String {
    const MAX_CHARS: usize = 80;
    if name.chars().count() <= MAX_CHARS {
        format!("{name:?}")
    } else {
        let head: String = name.chars().take(MAX_CHARS).collect();
        format!("{head:?}… ({} bytes)", name.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_ids() {
        assert!(is_valid_node_id("edge-1.eu-west:7"));
        assert!(!is_valid_node_id(""));
        assert!(!is_valid_node_id(&"n".repeat(65)));
        assert!(!is_valid_node_id("edge 1"));
        assert!(!is_valid_node_id("edge/1"));
        assert!(!is_valid_node_id("edge*"));
    }

    #[test]
    fn namespaces() {
        assert!(is_valid_namespace("directo"));
        assert!(is_valid_namespace("staging.eu-1"));
        assert!(!is_valid_namespace("a:b"));
        assert!(!is_valid_namespace(""));
    }

    #[test]
    fn errors_show_a_bounded_escaped_name() {
        let Err(ClusterError::InvalidInput(message)) = StreamName::check("a b\n") else {
            panic!("a space is not allowed in a stream name");
        };
        assert!(message.contains(r#""a b\n""#), "{message}");
        let Err(ClusterError::InvalidInput(message)) = NodeId::check(&"x".repeat(10_000)) else {
            panic!("a node id is at most 64 bytes");
        };
        assert!(message.len() < 300, "{message}");
    }
}
