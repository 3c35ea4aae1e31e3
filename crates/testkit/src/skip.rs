//! Tests that cannot run on this machine say so. libtest has no skip at run time, so such a
//! test prints `skipped: <test>: <reason>` to stderr (shown with `--nocapture`, and in the
//! output of a failing run) and returns early as passed.
//!
//! A skip must not hide where the test could have run: `./test.sh` running as root sets
//! [`REQUIRE_ROOT_TESTS`]`=1`, and then a test that needs root and still cannot run fails
//! instead (a kernel without HTB, a missing `tc`: something the machine should have).

/// The environment variable (`1`) that turns the skip of a root-only test into a failure.
pub const REQUIRE_ROOT_TESTS: &str = "DIRECTO_REQUIRE_ROOT_TESTS";

/// Reports that `test` cannot run here because of `reason`; the caller returns early.
pub fn skip(test: &str, reason: &str) {
    eprintln!("skipped: {test}: {reason}");
}

/// Reports that `test`, which needs root (or capabilities only root has), cannot run here
/// because of `reason`; the caller returns early.
///
/// # Panics
///
/// When [`REQUIRE_ROOT_TESTS`] is `1`: the run was meant to include every root-only test, so
/// not running this one is a failure.
pub fn skip_root_only(test: &str, reason: &str) {
    if root_tests_required() {
        panic!(
            "{test} needs root and could not run: {reason} ({REQUIRE_ROOT_TESTS}=1 says this \
             run must include every root-only test)"
        );
    }
    skip(test, &format!("{reason} (needs root)"));
}

/// Whether this run must include every root-only test.
pub fn root_tests_required() -> bool {
    std::env::var(REQUIRE_ROOT_TESTS).is_ok_and(|v| v == "1")
}
