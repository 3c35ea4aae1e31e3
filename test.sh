#!/usr/bin/env bash
# Runs every check and test of Directo, installing what they need on Debian if it is missing:
# Chromium and Firefox ESR (browser tests), ffmpeg (recordings, restreaming and its RTMP test
# receivers; `nice` from coreutils runs it at a lower priority), Node.js/npm (the SDK and
# browser tests), iproute2 (`ip`, `tc`: the simulcast tests narrow viewers' loopback links and
# the Firefox tests run in a network namespace of their own, both of which need root),
# coturn (the TURN relay tests), redis-server and openssl (the cluster tests start their own
# Redis, one of them behind TLS);
# Python packages for the interop suite go into tests/interop/.venv.
set -euo pipefail
cd "$(dirname "$0")"

missing=()
command -v ffmpeg >/dev/null 2>&1 || missing+=(ffmpeg)
command -v nice >/dev/null 2>&1 || missing+=(coreutils)
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
command -v firefox-esr >/dev/null 2>&1 || missing+=(firefox-esr)
command -v node >/dev/null 2>&1 || missing+=(nodejs)
command -v npm >/dev/null 2>&1 || missing+=(npm)
command -v python3 >/dev/null 2>&1 || missing+=(python3)
command -v tc >/dev/null 2>&1 || [ -x /usr/sbin/tc ] || missing+=(iproute2)
command -v turnserver >/dev/null 2>&1 || missing+=(coturn)
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
command -v openssl >/dev/null 2>&1 || missing+=(openssl)
python3 -c 'import venv, ensurepip' >/dev/null 2>&1 || missing+=(python3-venv)
if ((${#missing[@]})); then
  echo "==> installing ${missing[*]} (Debian packages)"
  sudo=""
  [ "$(id -u)" -ne 0 ] && sudo=sudo
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}"
fi

# Root-only tests (kernel-shaped links) skip themselves without root, saying so; run as root,
# this script wants every one of them to run, and a skip fails instead.
if [ "$(id -u)" -eq 0 ]; then
  export DIRECTO_REQUIRE_ROOT_TESTS=1
fi

echo "==> format and lints"
cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings

echo "==> Rust tests (unit, in-memory sessions, end-to-end over real WebRTC)"
cargo build -p directo
cargo test --workspace

echo "==> interop with an independent WebRTC stack (aiortc, from PyPI)"
DIRECTO_BIN="$PWD/target/debug/directo" tests/interop/run.sh

echo "==> browser tests (Debian Chromium driven by playwright-core, Debian Firefox ESR by puppeteer-core)"
(cd tests/browser && npm ci --no-audit --no-fund --loglevel=error && npm test)
