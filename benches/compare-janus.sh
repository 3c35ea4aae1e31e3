#!/usr/bin/env bash
# Directo and Janus side by side, same machine, same load generator, same synthetic media.
#
# Janus's Streaming plugin gets an RTP mountpoint (VP8 pt 96 + Opus pt 111 on local UDP
# ports, keyframe requests back over its video RTCP port) fed with plain RTP by directo-load,
# whose viewers watch it through the Janus HTTP API; then Directo gets the same viewers over
# WHEP with the same media over WHIP. Each server runs pinned to core 0, the generator to
# core 1. Prints one row per run and the Janus/Directo ratios.
#
# Janus (libnice) never gathers candidates on a loopback interface, so everything runs in a
# private network namespace made here: inside it, a veth pair carries the extra loopback-range
# address 127.0.1.1, which Janus and the synthetic peers use. No packet leaves the namespace;
# it is deleted on exit. Needs root (ip netns) and Debian's janus package (installed if missing).
#
#   VIEWERS="20 100" SECONDS_PER_RUN=10 benches/compare-janus.sh
#
# Knobs: VIEWERS, SECONDS_PER_RUN, RAMP, BITRATE_KBPS, FPS, PACE_FACTOR, RECORD=1, SKIP_BUILD=1, OUT_DIR,
# DIRECTO=<path> (another server binary, e.g. target/debug/directo; implies no server build).
set -euo pipefail

cd "$(dirname "$0")/.."
VIEWERS="${VIEWERS:-20 100 200}"
SECONDS_PER_RUN="${SECONDS_PER_RUN:-10}"
RAMP="${RAMP:-50}"
BITRATE_KBPS="${BITRATE_KBPS:-1500}"
PACE_FACTOR="${PACE_FACTOR:-2.5}"
FPS="${FPS:-30}"
JANUS_HTTP=18088
AUDIO_PORT=15002
VIDEO_PORT=15004
VIDEO_RTCP_PORT=15005
DIRECTO_HTTP=18480
DIRECTO_MEDIA=18481
PEER_IP=127.0.1.1
KEY="compare-$$"
NS="directo-bench-$$"

if ! command -v janus >/dev/null 2>&1; then
    apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y janus
fi
if [[ "${SKIP_BUILD:-0}" != 1 ]]; then
    if [[ -n "${DIRECTO:-}" ]]; then
        cargo build --release -p directo-benches --bin directo-load
    else
        cargo build --release -p directo -p directo-benches --bin directo --bin directo-load
    fi
fi
DIRECTO="$(realpath "${DIRECTO:-target/release/directo}")"
LOAD="$PWD/target/release/directo-load"

WORK="$(mktemp -d)"
OUT_DIR="${OUT_DIR:-$WORK}"
mkdir -p "$OUT_DIR"
: > "$OUT_DIR/directo.jsonl"
: > "$OUT_DIR/janus.jsonl"
SERVER_PID=""

stop_server() {
    if [[ -n "$SERVER_PID" ]] && kill -0 "$SERVER_PID" 2>/dev/null; then
        kill "$SERVER_PID" 2>/dev/null || true
        for _ in $(seq 50); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.2; done
        kill -9 "$SERVER_PID" 2>/dev/null || true
    fi
    SERVER_PID=""
}
cleanup() {
    stop_server
    ip netns del "$NS" 2>/dev/null || true
}
trap cleanup EXIT INT TERM

ip netns add "$NS"
in_ns() { ip netns exec "$NS" "$@"; }
in_ns ip link set lo up
in_ns ip link add bench0 type veth peer name bench1
in_ns ip link set bench1 up
in_ns ip link set bench0 up
in_ns ip addr add "$PEER_IP/32" dev bench0
ulimit -n 16384 2>/dev/null || true

wait_http() {
    for _ in $(seq 100); do
        if in_ns bash -c "exec 3<>/dev/tcp/127.0.0.1/$1" 2>/dev/null; then return 0; fi
        sleep 0.1
    done
    echo "nothing listens on 127.0.0.1:$1" >&2
    return 1
}

write_janus_config() {
    local dir="$1" lib=/usr/lib/x86_64-linux-gnu/janus
    [[ -d "$lib" ]] || lib="$(dirname "$(dirname "$(find /usr/lib -name libjanus_streaming.so -print -quit)")")"
    local keep_plugins="libjanus_streaming.so" keep_transports="libjanus_http.so"
    local disabled_plugins disabled_transports
    disabled_plugins="$(cd "$lib/plugins" && ls libjanus_*.so | grep -vx "$keep_plugins" | paste -sd, -)"
    disabled_transports="$(cd "$lib/transports" && ls libjanus_*.so | grep -vx "$keep_transports" | paste -sd, -)"
    cat > "$dir/janus.jcfg" <<JCFG
general: {
	configs_folder = "$dir"
	plugins_folder = "$lib/plugins"
	transports_folder = "$lib/transports"
	events_folder = "$lib/events"
	loggers_folder = "$lib/loggers"
	debug_level = 2
	session_timeout = 120
}
media: {
	ipv6 = false
	rtp_port_range = "30000-39999"
}
nat: {
	full_trickle = false
	ice_enforce_list = "bench0"
}
plugins: {
	disable = "$disabled_plugins"
}
transports: {
	disable = "$disabled_transports"
}
loggers: {
	disable = "libjanus_jsonlog.so"
}
events: {
	broadcast = false
}
JCFG
    cat > "$dir/janus.transport.http.jcfg" <<JCFG
general: {
	json = "plain"
	base_path = "/janus"
	http = true
	port = $JANUS_HTTP
	ip = "127.0.0.1"
	https = false
}
admin: {
	admin_http = false
}
JCFG
    cat > "$dir/janus.plugin.streaming.jcfg" <<JCFG
general: {
}
load: {
	type = "rtp"
	id = 1
	description = "directo-load synthetic Opus/VP8"
	audio = true
	video = true
	audioport = $AUDIO_PORT
	audioiface = "127.0.0.1"
	audiopt = 111
	audiocodec = "opus"
	audiortpmap = "opus/48000/2"
	videoport = $VIDEO_PORT
	videortcpport = $VIDEO_RTCP_PORT
	videoiface = "127.0.0.1"
	videopt = 96
	videocodec = "vp8"
	videortpmap = "VP8/90000"
}
JCFG
}

run_load() {
    local out="$1" n="$2"; shift 2
    local limit=$(( SECONDS_PER_RUN + n / RAMP + 90 ))
    if ! timeout "$limit" ip netns exec "$NS" taskset -c 1 "$LOAD" --viewers "$n" \
        --seconds "$SECONDS_PER_RUN" --ramp-per-s "$RAMP" --bitrate-kbps "$BITRATE_KBPS" --pace-factor "$PACE_FACTOR" \
        --fps "$FPS" --server-pid "$SERVER_PID" --json "$@" >> "$out"; then
        echo "  run with $n viewers failed or timed out" >&2
    fi
}

# The generator's viewers all come from one address: lift the per-address and per-stream
# limits, which protect a public server, not a benchmark. Recording is off unless RECORD=1,
# so the figures are the forwarding path's (Janus records nothing either). Environment
# variables rather than flags, so an older server binary simply ignores them.
export DIRECTO_MAX_SESSIONS_PER_IP=1000000 DIRECTO_MAX_REQUESTS_PER_MINUTE=1000000 \
    DIRECTO_NEW_SESSIONS_PER_SECOND=1000000 DIRECTO_NEW_SESSIONS_BURST=1000000 \
    DIRECTO_MAX_VIEWERS_PER_STREAM=1000000 DIRECTO_MAX_STREAMS=1000
if [[ "${RECORD:-0}" != 1 ]]; then export DIRECTO_NO_RECORD=true; fi

# Janus first, a fresh process per viewer count.
mkdir -p "$WORK/janus"
write_janus_config "$WORK/janus"
for n in $VIEWERS; do
    ip netns exec "$NS" taskset -c 0 janus -C "$WORK/janus/janus.jcfg" -F "$WORK/janus" \
        > "$WORK/janus.log" 2>&1 &
    SERVER_PID=$!
    wait_http "$JANUS_HTTP"
    echo "janus: $n viewers for ${SECONDS_PER_RUN}s..." >&2
    run_load "$OUT_DIR/janus.jsonl" "$n" --janus "http://127.0.0.1:$JANUS_HTTP/janus" \
        --janus-mountpoint 1 --janus-audio-port "$AUDIO_PORT" --janus-video-port "$VIDEO_PORT" \
        --janus-video-rtcp-port "$VIDEO_RTCP_PORT" --bind-ip "$PEER_IP"
    stop_server
done

# Then Directo, same namespace, same generator, a fresh process per viewer count.
for n in $VIEWERS; do
    rm -rf "$WORK/directo-data" && mkdir -p "$WORK/directo-data"
    ip netns exec "$NS" taskset -c 0 "$DIRECTO" serve --http "127.0.0.1:$DIRECTO_HTTP" \
        --media-port "$DIRECTO_MEDIA" --media-bind 127.0.0.1 --public-ip 127.0.0.1 \
        --data-dir "$WORK/directo-data" --publish-key "$KEY" > "$WORK/directo.log" 2>&1 &
    SERVER_PID=$!
    wait_http "$DIRECTO_HTTP"
    echo "directo: $n viewers for ${SECONDS_PER_RUN}s..." >&2
    run_load "$OUT_DIR/directo.jsonl" "$n" --server "http://127.0.0.1:$DIRECTO_HTTP" \
        --stream "compare-$n" --key "$KEY"
    stop_server
done

"$LOAD" --table "$OUT_DIR/directo.jsonl" "$OUT_DIR/janus.jsonl"
echo "JSON lines: $OUT_DIR/directo.jsonl $OUT_DIR/janus.jsonl; logs in $WORK" >&2
