//! Who may publish: a bearer key compared in constant time.

use signaling_proto::ErrorCode;
use subtle::ConstantTimeEq;

use crate::error::ApiError;

/// Access rules for the server.
#[derive(Clone, Debug)]
pub struct Access {
    /// The key publishers must present; `None` means anyone may publish (dev mode).
    pub publish_key: Option<String>,
    /// The key moderators present (as a viewer's bearer token or in the WS join); `None`
    /// means nobody is a moderator.
    pub moderator_key: Option<String>,
}

impl Access {
    /// Check an `Authorization` header value for publishing.
    pub fn check_publisher(&self, authorization: Option<&str>) -> Result<(), ApiError> {
        if self.publish_key.is_none() {
            return Ok(());
        }
        let presented = authorization
            .and_then(|h| h.strip_prefix("Bearer "))
            .map(str::trim)
            .ok_or_else(|| {
                ApiError::new(
                    ErrorCode::Unauthorized,
                    "publishing needs `Authorization: Bearer <publish key>`",
                )
            })?;
        self.check_key(presented)
    }

    /// Check a key given in a signaling message.
    pub fn check_key(&self, presented: &str) -> Result<(), ApiError> {
        let Some(expected) = &self.publish_key else {
            return Ok(());
        };
        if same(presented, expected) {
            Ok(())
        } else {
            Err(ApiError::new(
                ErrorCode::Unauthorized,
                "the publish key is wrong",
            ))
        }
    }

    /// Whether a viewer's `Authorization` header makes it a moderator. A bearer token that is
    /// not the moderator key is refused rather than ignored, so a typo is not silent.
    pub fn check_viewer(&self, authorization: Option<&str>) -> Result<bool, ApiError> {
        let Some(presented) = authorization
            .and_then(|h| h.strip_prefix("Bearer "))
            .map(str::trim)
        else {
            return Ok(false);
        };
        self.is_moderator_key(presented)
    }

    /// Whether `presented` is the moderator key (an error if it is not).
    pub fn is_moderator_key(&self, presented: &str) -> Result<bool, ApiError> {
        match &self.moderator_key {
            Some(expected) if same(presented, expected) => Ok(true),
            _ => Err(ApiError::new(
                ErrorCode::Unauthorized,
                "the moderator key is wrong (viewers need no key)",
            )),
        }
    }
}

/// Constant-time comparison, so a key cannot be guessed byte by byte from response times.
fn same(presented: &str, expected: &str) -> bool {
    bool::from(presented.as_bytes().ct_eq(expected.as_bytes()))
}

/// Validate a display name: trimmed, control characters removed, 1–32 characters.
pub fn check_name(name: &str) -> Result<String, ApiError> {
    let clean: String = name.chars().filter(|c| !c.is_control()).collect();
    let clean = clean.trim();
    let count = clean.chars().count();
    if (1..=32).contains(&count) {
        Ok(clean.to_owned())
    } else {
        Err(ApiError::new(
            ErrorCode::InvalidName,
            "a display name is 1 to 32 characters",
        ))
    }
}
