#!/usr/bin/env bash
# Runs every fuzz target (or those named) for a bounded time each, starting from the seeds
# in fuzz/seeds/<target>/ plus whatever corpus earlier runs left in fuzz/corpus/<target>/.
#
#   fuzz/run.sh                  # every target, 60 s each
#   fuzz/run.sh 300 sfu_stream   # one target, 5 minutes
#
# Environment: FUZZ_SANITIZER (default `none`: the code under test is safe Rust, so panics,
# overflows and debug assertions are what is hunted, at full speed; `address` for ASan),
# FUZZ_JOBS (parallel fuzzing jobs per target, default 1).
# A crash leaves its input in fuzz/artifacts/<target>/; replay it with
#   cargo +nightly fuzz run <target> fuzz/artifacts/<target>/<file>
# cargo-fuzz needs nightly: `+nightly` when rustup has it, else RUSTC_BOOTSTRAP=1 on stable.
set -euo pipefail
cd "$(dirname "$0")"

seconds="${1:-60}"
shift || true
sanitizer="${FUZZ_SANITIZER:-none}"
jobs="${FUZZ_JOBS:-1}"

if ! command -v cargo-fuzz >/dev/null; then
    cargo install cargo-fuzz --locked
fi
if rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
    cargo=(cargo +nightly)
else
    export RUSTC_BOOTSTRAP=1
    cargo=(cargo)
fi

if [ "$#" -gt 0 ]; then
    targets=("$@")
else
    mapfile -t targets < <("${cargo[@]}" fuzz list)
fi

"${cargo[@]}" fuzz build -s "$sanitizer"

extra=()
if [ "$jobs" -gt 1 ]; then
    extra=(-jobs="$jobs" -workers="$jobs")
fi

failed=()
for target in "${targets[@]}"; do
    mkdir -p "corpus/$target"
    if [ -d "seeds/$target" ]; then
        cp -n "seeds/$target"/* "corpus/$target/" 2>/dev/null || true
    fi
    echo "=== $target: ${seconds}s ==="
    set +e
    "${cargo[@]}" fuzz run -s "$sanitizer" "$target" "corpus/$target" -- \
        -max_total_time="$seconds" "${extra[@]}" \
        -rss_limit_mb=4096 -timeout=20 -print_final_stats=1 >"corpus/$target.log" 2>&1
    status=$?
    set -e
    grep -E '^#[0-9]+ +DONE|stat::number_of_executed_units|stat::peak_rss_mb|SUMMARY|panicked at' \
        "corpus/$target.log" || true
    if [ "$status" -ne 0 ]; then
        echo "--- $target exited with $status:"
        grep -a -A2 -E 'panicked at|ERROR: libFuzzer|SUMMARY' "corpus/$target.log" | cut -c1-400 || true
        grep -a -E '^\s+(Reproduce|cargo fuzz run)|artifacts/' "corpus/$target.log" | head -3 || true
        failed+=("$target")
    fi
done

# The recorder targets' scratch files.
rm -rf "${TMPDIR:-/tmp}"/directo-fuzz-recorder-* "${TMPDIR:-/tmp}"/directo-fuzz-recover-*

if [ "${#failed[@]}" -gt 0 ]; then
    echo "FAILED: ${failed[*]} (inputs in fuzz/artifacts/)"
    exit 1
fi
echo "every target ran ${seconds}s without a crash: ${targets[*]}"
