//! Test support that Directo's crates' own tests, its end-to-end tests (`tests/`) and its
//! benchmarks (`benches/`) share, held once here:
//!
//! - [`ffmpeg`]: Debian's `ffmpeg` makes real test media, and `ffprobe`/`ffmpeg` judge a
//!   recording the way a player would.
//! - [`scratch`]: a fresh directory for one test.
//! - [`vp8`]: the header of a synthetic VP8 frame, written and read back.
//! - [`skip`]: a test that cannot run here (no root, a missing tool) says so instead of passing
//!   silently.
//!
//! It depends on no Directo crate and on nothing heavy, so even `directo-sfu` or
//! `directo-recorder` can take it as a dev-dependency. Clients that speak WebRTC live in the
//! end-to-end tests' crate (`directo-tests`), which needs the `webrtc` stack.

pub mod ffmpeg;
pub mod scratch;
pub mod skip;
pub mod vp8;
