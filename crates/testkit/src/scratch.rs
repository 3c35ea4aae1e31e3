//! Fresh directories under the system temp dir, one per test (or per server a test starts),
//! so tests running at once in one process or in several never share files.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};

/// Creates an empty directory `directo-{purpose}-{pid}-{n}` under the system temp dir, where
/// `n` counts up within this process.
pub fn scratch_dir(purpose: &str) -> std::io::Result<PathBuf> {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let dir = std::env::temp_dir().join(format!(
        "directo-{purpose}-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    // A directory left by an earlier process with the same id would hold its files.
    match std::fs::remove_dir_all(&dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_calls_give_two_empty_directories() {
        let a = scratch_dir("testkit").expect("first");
        let b = scratch_dir("testkit").expect("second");
        assert_ne!(a, b);
        assert_eq!(std::fs::read_dir(&a).expect("read").count(), 0);
        let _ = std::fs::remove_dir_all(a);
        let _ = std::fs::remove_dir_all(b);
    }
}
