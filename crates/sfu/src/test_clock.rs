//! The one clock read in this crate's tests: where a test's simulated time starts. The crate
//! itself never reads a clock (its `clippy.toml` forbids it); a test only needs some instant to
//! add durations to. Unit tests reach it as `crate::test_clock`, the behaviour tests in
//! `tests/` through `common`.

use std::time::Instant;

/// An instant for a test's simulated time to start at.
#[allow(clippy::disallowed_methods)]
pub fn start() -> Instant {
    Instant::now()
}
