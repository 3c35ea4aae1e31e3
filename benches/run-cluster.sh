#!/usr/bin/env bash
# A Directo cluster under load, on loopback only: a throw-away Redis, one origin and three
# edges (release builds, all servers pinned to core 0), and directo-load (core 1) publishing
# to the origin while its viewers watch either on the origin itself (the baseline) or spread
# over the edges, each of which pulls the stream once from the origin over WebRTC. Prints one
# table per setup; "server CPU" is the origin's in every row.
#
#   benches/run-cluster.sh                   # 60 and 240 viewers, 15 s each
#   VIEWERS="100" SECONDS_PER_RUN=10 benches/run-cluster.sh
#
# What to read: the delay of the edge rows minus the direct rows is what one relay hop adds;
# the origin's CPU in the edge rows stays flat as viewers grow (it serves three pulls); join
# through an edge against a direct join.
# Knobs (environment): VIEWERS, SECONDS_PER_RUN, RAMP, BITRATE_KBPS, SKIP_BUILD=1, BASE_PORT.
# Every run is bounded by `timeout`; everything started here is killed on exit.
set -euo pipefail

cd "$(dirname "$0")/.."
VIEWERS="${VIEWERS:-60 240}"
SECONDS_PER_RUN="${SECONDS_PER_RUN:-15}"
RAMP="${RAMP:-50}"
BITRATE_KBPS="${BITRATE_KBPS:-1500}"
BASE_PORT="${BASE_PORT:-18600}"
KEY="cluster-load-$$"
SECRET="cluster-load-secret-$$"

command -v redis-server >/dev/null || { echo "needs redis-server (apt-get install redis-server)" >&2; exit 1; }
if [[ "${SKIP_BUILD:-0}" != 1 ]]; then
    cargo build --release -p directo -p directo-benches --bin directo --bin directo-load
fi
DIRECTO=target/release/directo
LOAD=target/release/directo-load

WORK="$(mktemp -d)"
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    sleep 0.5
    for pid in "${PIDS[@]}"; do kill -9 "$pid" 2>/dev/null || true; done
    PIDS=()
}
trap cleanup EXIT INT TERM
ulimit -n 16384 2>/dev/null || true

# shellcheck source=benches/lib.sh
source benches/lib.sh

export DIRECTO_MAX_SESSIONS_PER_IP=1000000 DIRECTO_MAX_REQUESTS_PER_MINUTE=1000000 \
    DIRECTO_NEW_SESSIONS_PER_SECOND=1000000 DIRECTO_NEW_SESSIONS_BURST=1000000 \
    DIRECTO_MAX_VIEWERS_PER_STREAM=1000000 DIRECTO_MAX_STREAMS=1000 DIRECTO_NO_RECORD=true

REDIS_PORT=$((BASE_PORT))
ORIGIN_PID=""
start_cluster() {
    cleanup
    rm -rf "$WORK/redis" && mkdir -p "$WORK/redis"
    redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --dir "$WORK/redis" --save '' \
        --appendonly no > "$WORK/redis.log" 2>&1 &
    PIDS+=($!); disown $!
    wait_http "$REDIS_PORT"
    for i in 0 1 2 3; do
        local http=$((BASE_PORT + 10 + i)) media=$((BASE_PORT + 20 + i))
        rm -rf "$WORK/data-$i" && mkdir -p "$WORK/data-$i"
        taskset -c 0 "$DIRECTO" serve --cluster "redis://127.0.0.1:$REDIS_PORT" \
            --secret "$SECRET" --node-id "node-$i" --node-url "http://127.0.0.1:$http" \
            --http "127.0.0.1:$http" --media-port "$media" --media-bind 127.0.0.1 \
            --public-ip 127.0.0.1 --data-dir "$WORK/data-$i" --publish-key "$KEY" \
            > "$WORK/node-$i.log" 2>&1 &
        PIDS+=($!); disown $!
        [[ $i == 0 ]] && ORIGIN_PID=$!
        wait_http "$http"
    done
}

run() { # label viewers [--viewer-server URL ...]
    local label=$1 n=$2; shift 2
    start_cluster
    local limit=$(( SECONDS_PER_RUN + n / RAMP + 90 ))
    echo "$label: $n viewers for ${SECONDS_PER_RUN}s..." >&2
    if ! timeout "$limit" taskset -c 1 "$LOAD" --server "http://127.0.0.1:$((BASE_PORT + 10))" \
        --stream "cluster-$n" --key "$KEY" --viewers "$n" --seconds "$SECONDS_PER_RUN" \
        --ramp-per-s "$RAMP" --bitrate-kbps "$BITRATE_KBPS" --server-pid "$ORIGIN_PID" \
        --json "$@" >> "$WORK/$label.jsonl"; then
        echo "  run failed or timed out; logs in $WORK" >&2
    fi
    cleanup
}

EDGES=()
for i in 1 2 3; do EDGES+=(--viewer-server "http://127.0.0.1:$((BASE_PORT + 10 + i))"); done
for n in $VIEWERS; do
    run direct "$n"
    run edges "$n" "${EDGES[@]}"
done

echo "== viewers on the origin (no relay)"
"$LOAD" --table "$WORK/direct.jsonl"
echo "== viewers spread over three edges, each pulling once from the origin (server CPU: the origin's)"
"$LOAD" --table "$WORK/edges.jsonl"
echo "logs and JSON lines: $WORK" >&2
