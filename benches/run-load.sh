#!/usr/bin/env bash
# Directo under load, on loopback only: builds release, starts directo pinned to core 0,
# runs directo-load pinned to core 1 for a few viewer counts, and prints one row per run.
#
#   benches/run-load.sh                      # 50 200 500 1000 viewers, 15 s each
#   VIEWERS="20 100" SECONDS_PER_RUN=10 benches/run-load.sh
#
# Knobs (environment): VIEWERS, SECONDS_PER_RUN, RAMP (viewers/s), BITRATE_KBPS, FPS,
# PACE_FACTOR (publisher pacing as a multiple of the bitrate, 0 = frames in bursts),
# LOAD_ARGS (more directo-load flags, e.g. "--simulcast --constrained-share 0.2"),
# HTTP_PORT, MEDIA_PORT, RECORD=1 (keep recording on), SKIP_BUILD=1 (use the existing target/release binaries),
# DIRECTO=<path> (another server binary, e.g. target/debug/directo; implies no server build),
# OUT (where the JSON lines go; default a temp file).
# Every run is bounded by `timeout`; everything started here is killed on exit.
set -euo pipefail

cd "$(dirname "$0")/.."
VIEWERS="${VIEWERS:-50 200 500 1000}"
SECONDS_PER_RUN="${SECONDS_PER_RUN:-15}"
RAMP="${RAMP:-100}"
BITRATE_KBPS="${BITRATE_KBPS:-1500}"
PACE_FACTOR="${PACE_FACTOR:-2.5}"
FPS="${FPS:-30}"
HTTP_PORT="${HTTP_PORT:-18480}"
MEDIA_PORT="${MEDIA_PORT:-18481}"
KEY="load-$$"

if [[ "${SKIP_BUILD:-0}" != 1 ]]; then
    if [[ -n "${DIRECTO:-}" ]]; then
        cargo build --release -p directo-benches --bin directo-load
    else
        cargo build --release -p directo -p directo-benches --bin directo --bin directo-load
    fi
fi
DIRECTO="${DIRECTO:-target/release/directo}"
LOAD=target/release/directo-load

WORK="$(mktemp -d)"
OUT="${OUT:-$WORK/directo.jsonl}"
: > "$OUT"
SERVER_PID=""
cleanup() {
    if [[ -n "$SERVER_PID" ]] && kill -0 "$SERVER_PID" 2>/dev/null; then
        kill "$SERVER_PID" 2>/dev/null || true
        for _ in $(seq 50); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.2; done
        kill -9 "$SERVER_PID" 2>/dev/null || true
    fi
    SERVER_PID=""
}
trap cleanup EXIT INT TERM

# Many viewers mean many sockets, on both sides.
ulimit -n 16384 2>/dev/null || true

# shellcheck source=benches/lib.sh
source benches/lib.sh

# The generator's viewers all come from one address: lift the per-address and per-stream
# limits, which protect a public server, not a benchmark. Recording is off unless RECORD=1,
# so the figures are the forwarding path's (Janus records nothing either). Environment
# variables rather than flags, so an older server binary simply ignores them.
export DIRECTO_MAX_SESSIONS_PER_IP=1000000 DIRECTO_MAX_REQUESTS_PER_MINUTE=1000000 \
    DIRECTO_NEW_SESSIONS_PER_SECOND=1000000 DIRECTO_NEW_SESSIONS_BURST=1000000 \
    DIRECTO_MAX_VIEWERS_PER_STREAM=1000000 DIRECTO_MAX_STREAMS=1000
if [[ "${RECORD:-0}" != 1 ]]; then export DIRECTO_NO_RECORD=true; fi

start_server() {
    rm -rf "$WORK/data" && mkdir -p "$WORK/data"
    taskset -c 0 "$DIRECTO" serve --http "127.0.0.1:$HTTP_PORT" --media-port "$MEDIA_PORT" \
        --media-bind 127.0.0.1 --public-ip 127.0.0.1 --data-dir "$WORK/data" \
        --publish-key "$KEY" > "$WORK/directo.log" 2>&1 &
    SERVER_PID=$!
    wait_http "$HTTP_PORT"
}

# A fresh server per viewer count: memory per viewer is growth from an idle server, not
# from one whose allocator kept the previous run's memory.
for n in $VIEWERS; do
    start_server
    limit=$(( SECONDS_PER_RUN + n / RAMP + 90 ))
    echo "directo: $n viewers for ${SECONDS_PER_RUN}s (ramp ${RAMP}/s)..." >&2
    if ! timeout "$limit" taskset -c 1 "$LOAD" --server "http://127.0.0.1:$HTTP_PORT" \
        --stream "load-$n" --key "$KEY" --viewers "$n" --seconds "$SECONDS_PER_RUN" \
        --ramp-per-s "$RAMP" --bitrate-kbps "$BITRATE_KBPS" --pace-factor "$PACE_FACTOR" --fps "$FPS" \
        --server-pid "$SERVER_PID" --json ${LOAD_ARGS:-} >> "$OUT"; then
        echo "  run with $n viewers failed or timed out; server log: $WORK/directo.log" >&2
    fi
    cleanup
done

"$LOAD" --table "$OUT"
echo "JSON lines: $OUT" >&2
