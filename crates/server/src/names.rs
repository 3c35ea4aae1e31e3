//! The names a client chooses: a stream's name (from a path or a request body) and a display
//! name (from a query, a token request or a WebSocket message), checked the same way wherever
//! they come in.

use signaling_proto::{ErrorCode, is_valid_stream_name};

use crate::error::ApiError;

/// Check a stream name from a path.
pub fn check_stream_name(stream: &str) -> Result<(), ApiError> {
    if is_valid_stream_name(stream) {
        Ok(())
    } else {
        Err(ApiError::new(
            ErrorCode::InvalidStreamName,
            "stream names are 1 to 64 characters of A-Z, a-z, 0-9, '_' and '-'",
        ))
    }
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
