#!/usr/bin/env bash
# Interop test of Directo against aiortc (an independent Python WebRTC stack): makes a venv in
# tests/interop/.venv with the pinned packages of requirements.txt, builds Directo unless
# DIRECTO_BIN names a binary, and runs test_interop.py with pytest (arguments go to pytest).
# Bounded: the install and the tests each get `timeout 300`.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
python="${PYTHON:-python3}"
venv="$here/.venv"

if [ -z "${DIRECTO_BIN:-}" ]; then
  (cd "$repo" && cargo build -p directo)
  export DIRECTO_BIN="$repo/target/debug/directo"
fi

# Recreate the venv when requirements.txt changed since it was filled.
stamp="$venv/.requirements"
if ! cmp -s "$here/requirements.txt" "$stamp" 2>/dev/null; then
  echo "==> interop: installing $(grep -v '^#' "$here/requirements.txt" | tr '\n' ' ')"
  rm -rf "$venv"
  "$python" -m venv "$venv"
  timeout 300 "$venv/bin/pip" install --quiet --disable-pip-version-check --only-binary av \
    -r "$here/requirements.txt"
  cp "$here/requirements.txt" "$stamp"
fi

cd "$here"
export PYTHONDONTWRITEBYTECODE=1
set +e
timeout --kill-after=10 300 "$venv/bin/python" -m pytest -p no:cacheprovider -v -s -rsx \
  test_interop.py "$@"
rc=$?
set -e
# pytest's 5 means it collected no test: that is a broken suite here, not a pass.
if [ "$rc" -eq 5 ]; then
  echo "interop: pytest collected no test" >&2
  exit 1
fi
if [ "$rc" -eq 124 ]; then
  echo "interop: timed out after 300 s" >&2
fi
exit "$rc"
