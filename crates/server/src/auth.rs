//! Who may publish: a bearer key compared in constant time.

use signaling_proto::ErrorCode;
use subtle::ConstantTimeEq;

use crate::error::ApiError;

/// Access rules for the server.
#[derive(Clone, Debug)]
pub struct Access {
    /// The key publishers must present; `None` means anyone may publish (dev mode).
    pub publish_key: Option<String>,
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
        if bool::from(presented.as_bytes().ct_eq(expected.as_bytes())) {
            Ok(())
        } else {
            Err(ApiError::new(
                ErrorCode::Unauthorized,
                "the publish key is wrong",
            ))
        }
    }
}
