#!/usr/bin/env bash
# Directo soak, on loopback only: builds release, starts directo, and for SOAK_SECONDS runs
# `directo-load --churn` against it: streams that go live and end under fresh names, viewers
# joining and leaving at tens a second with their chat channels, each saying something. Every
# SAMPLE_SECONDS it prints the server's resident memory, open files and threads; once the
# churn is over and the server had QUIET_SECONDS to let the last streams go, a verdict:
#
#   - memory: RSS at the end of the full churn (the last sample before the streams stop being
#     replaced, STREAM_LIFE before the end) within 10 % of its value after the first minute,
#     the same load; and once everything ended, no more than 10 % over that value either;
#   - open files and threads: back to where they were before the churn.
#
#   benches/soak.sh                          # 10 minutes
#   SOAK_SECONDS=120 benches/soak.sh         # a quick look
#
# Knobs (environment): SOAK_SECONDS (600), SAMPLE_SECONDS (30), QUIET_SECONDS (40), STREAMS
# (live at a time, 4), STREAM_LIFE (seconds each stream is live, 30), JOINS (viewers a second,
# 20), WATCH (seconds a viewer stays, on average, 6), BITRATE_KBPS (300), FPS (15), RECORD
# (1: streams are recorded, as by default; 0: not), NICE (scheduling niceness of the server and
# the generator, 10, so others' work on the machine is not starved), HTTP_PORT, MEDIA_PORT,
# SKIP_BUILD=1 (use the existing target/release binaries), DIRECTO=<path> (another server
# binary, e.g. an older build to compare with). Exits 0 when the verdict is good.
# Everything started here is killed on exit.
set -euo pipefail

cd "$(dirname "$0")/.."
SOAK_SECONDS="${SOAK_SECONDS:-600}"
SAMPLE_SECONDS="${SAMPLE_SECONDS:-30}"
QUIET_SECONDS="${QUIET_SECONDS:-40}"
STREAMS="${STREAMS:-4}"
STREAM_LIFE="${STREAM_LIFE:-30}"
JOINS="${JOINS:-20}"
WATCH="${WATCH:-6}"
BITRATE_KBPS="${BITRATE_KBPS:-300}"
FPS="${FPS:-15}"
NICE="${NICE:-10}"
HTTP_PORT="${HTTP_PORT:-18580}"
MEDIA_PORT="${MEDIA_PORT:-18581}"
KEY="soak-$$"

if [[ "${SKIP_BUILD:-0}" != 1 ]]; then
    nice -n "$NICE" cargo build --release -p directo -p directo-benches --bin directo --bin directo-load
fi
DIRECTO="${DIRECTO:-target/release/directo}"
LOAD=target/release/directo-load

WORK="$(mktemp -d)"
SERVER_PID=""
LOAD_PID=""
KEEP_LOGS=0
cleanup() {
    for pid in "$LOAD_PID" "$SERVER_PID"; do
        if [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null; then
            kill "$pid" 2>/dev/null || true
            for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
            kill -9 "$pid" 2>/dev/null || true
        fi
    done
    if (( KEEP_LOGS )); then
        rm -rf "$WORK/data"
        echo "logs kept in $WORK" >&2
    else
        rm -rf "$WORK"
    fi
}
trap cleanup EXIT INT TERM

ulimit -n 16384 2>/dev/null || true

# shellcheck source=benches/lib.sh
source benches/lib.sh

# All viewers come from one address: lift the per-address limits, which protect a public
# server, not a soak.
export DIRECTO_MAX_SESSIONS_PER_IP=1000000 DIRECTO_MAX_REQUESTS_PER_MINUTE=1000000 \
    DIRECTO_NEW_SESSIONS_PER_SECOND=1000000 DIRECTO_NEW_SESSIONS_BURST=1000000
if [[ "${RECORD:-1}" != 1 ]]; then export DIRECTO_NO_RECORD=true; fi

mkdir -p "$WORK/data"
nice -n "$NICE" "$DIRECTO" serve --http "127.0.0.1:$HTTP_PORT" --media-port "$MEDIA_PORT" \
    --media-bind 127.0.0.1 --public-ip 127.0.0.1 --data-dir "$WORK/data" \
    --publish-key "$KEY" > "$WORK/directo.log" 2>&1 &
SERVER_PID=$!
wait_http "$HTTP_PORT"
sleep 2

rss_kib() { awk '/^VmRSS:/ { print $2 }' "/proc/$SERVER_PID/status"; }
threads() { awk '/^Threads:/ { print $2 }' "/proc/$SERVER_PID/status"; }
open_files() { find "/proc/$SERVER_PID/fd" -mindepth 1 -maxdepth 1 | wc -l; }
sample() {
    printf '%6ss  rss %7.1f MiB  open files %4s  threads %3s  %s\n' "$1" \
        "$(awk -v k="$(rss_kib)" 'BEGIN { print k / 1024 }')" "$(open_files)" "$(threads)" "${2:-}"
}

BASE_FILES="$(open_files)"
BASE_THREADS="$(threads)"
echo "soak: ${SOAK_SECONDS}s of churn: $STREAMS streams live at a time for ${STREAM_LIFE}s each," \
    "$JOINS viewers/s watching ~${WATCH}s with chat, ${BITRATE_KBPS} kbit/s at $FPS fps" >&2
sample 0 "(baseline, before the churn)"

START=$(date +%s)
nice -n "$NICE" timeout $(( SOAK_SECONDS + 120 )) "$LOAD" --churn --server "http://127.0.0.1:$HTTP_PORT" \
    --stream soak --key "$KEY" --seconds "$SOAK_SECONDS" --churn-streams "$STREAMS" \
    --stream-life-s "$STREAM_LIFE" --ramp-per-s "$JOINS" --watch-s "$WATCH" \
    --bitrate-kbps "$BITRATE_KBPS" --fps "$FPS" --json > "$WORK/churn.json" &
LOAD_PID=$!

RSS_MINUTE=""
RSS_LATE=""
next=$SAMPLE_SECONDS
while kill -0 "$LOAD_PID" 2>/dev/null; do
    sleep 1
    elapsed=$(( $(date +%s) - START ))
    if (( elapsed >= next )); then
        sample "$elapsed"
        if [[ -z "$RSS_MINUTE" ]] && (( elapsed >= 60 )); then RSS_MINUTE="$(rss_kib)"; fi
        # The churn tapers off in its last STREAM_LIFE (ended streams are no longer replaced).
        if (( elapsed >= 60 && elapsed <= SOAK_SECONDS - STREAM_LIFE )); then RSS_LATE="$(rss_kib)"; fi
        next=$(( next + SAMPLE_SECONDS ))
    fi
done
LOAD_STATUS=0
wait "$LOAD_PID" || LOAD_STATUS=$?
LOAD_PID=""
elapsed=$(( $(date +%s) - START ))
sample "$elapsed" "(churn over)"
echo "churn: $(cat "$WORK/churn.json")" >&2
if (( LOAD_STATUS != 0 )); then
    echo "directo-load exited with $LOAD_STATUS" >&2
fi

# Ended streams' rooms linger 10 s and are looked at every 5 s; idle runtime threads exit
# after 10 s.
sleep "$QUIET_SECONDS"
elapsed=$(( $(date +%s) - START ))
sample "$elapsed" "(after ${QUIET_SECONDS}s quiet)"
RSS_END="$(rss_kib)"
FILES_END="$(open_files)"
THREADS_END="$(threads)"
RSS_MINUTE="${RSS_MINUTE:-$RSS_END}"
RSS_LATE="${RSS_LATE:-$RSS_MINUTE}"

mib() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }
pct() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%+.1f", (b - a) * 100 / a }'; }
verdict=0
if awk -v a="$RSS_MINUTE" -v b="$RSS_LATE" -v c="$RSS_END" \
    'BEGIN { exit !((b - a) / a <= 0.10 && (a - b) / a <= 0.10 && (c - a) / a <= 0.10) }'; then
    memory="ok"
else
    memory="NOT ok"
    verdict=1
fi
echo "memory: $memory: RSS $(mib "$RSS_MINUTE") MiB after the first minute, $(mib "$RSS_LATE") MiB" \
    "at the end of the full churn ($(pct "$RSS_MINUTE" "$RSS_LATE") %), $(mib "$RSS_END") MiB once" \
    "everything ended ($(pct "$RSS_MINUTE" "$RSS_END") %)"
if (( FILES_END <= BASE_FILES )); then
    echo "open files: ok: $BASE_FILES before, $FILES_END after"
else
    echo "open files: NOT ok: $BASE_FILES before, $FILES_END after"
    verdict=1
fi
if (( THREADS_END <= BASE_THREADS )); then
    echo "threads: ok: $BASE_THREADS before, $THREADS_END after"
else
    echo "threads: NOT ok: $BASE_THREADS before, $THREADS_END after"
    verdict=1
fi
if (( LOAD_STATUS != 0 )); then verdict=1; fi
KEEP_LOGS=$verdict
exit "$verdict"
