//! Recording files as a crash may leave them (or as anyone may drop them into the data
//! directory): `recover` and `RecordingInfo::read` return an error for what they cannot
//! use, never panic, and a recovered file reads back. (Whether it reads back *seekable* is
//! not asserted: a file cut before its first complete cluster recovers to no media and no
//! Cues, which `recover` reports as `Ok` with `seekable: false`.)
#![no_main]

use directo_recorder::{RecordingInfo, recover};
use libfuzzer_sys::fuzz_target;
use std::path::PathBuf;
use std::sync::OnceLock;

fn file() -> &'static PathBuf {
    static FILE: OnceLock<PathBuf> = OnceLock::new();
    FILE.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("directo-fuzz-recover-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("a scratch directory");
        dir.join("2026-01-01T00-00-00Z.webm")
    })
}

fuzz_target!(|data: &[u8]| {
    let path = file();
    std::fs::write(path, data).expect("write the input");
    let _ = RecordingInfo::read(path);
    if let Ok(info) = recover(path) {
        let again = RecordingInfo::read(path).expect("a recovered file reads back");
        assert_eq!(
            again.seekable, info.seekable,
            "recover and read disagree: {info:?}"
        );
    }
});
