//! Polling until a condition holds, with a deadline: how tests wait without asserting latency.

use crate::error::{ClientError, Result};
use std::future::Future;
use std::time::Duration;
use tokio::time::Instant;

/// How often conditions are re-checked.
const POLL: Duration = Duration::from_millis(50);

/// Waits until `condition` is true; a [`ClientError::Timeout`] naming `what` after `timeout`.
pub async fn wait_until(
    what: &str,
    timeout: Duration,
    mut condition: impl FnMut() -> bool,
) -> Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        if condition() {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(ClientError::timeout(what, timeout));
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Like [`wait_until`] for an async condition that may fail; returns its first `Some`.
pub async fn wait_for<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Option<T>>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check().await? {
            return Ok(value);
        }
        if Instant::now() >= deadline {
            return Err(ClientError::timeout(what, timeout));
        }
        tokio::time::sleep(POLL * 4).await;
    }
}
