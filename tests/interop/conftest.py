"""Pytest plumbing for the interop tests: the Directo server fixture and its log on failure.

The server runs once per test session on free loopback ports with a throw-away data dir; a
failing test gets the tail of the server's log attached to its report, because most interop
failures are only explained by what the server said (codec negotiation, ICE, DTLS).
"""

import os
import re
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PUBLISH_KEY = "interop-publish-key"
LOG_TAIL_LINES = 80


def _free_port(kind: int) -> int:
    # Bind to port 0 and let the kernel choose; the tiny race until Directo binds is acceptable
    # for a test on loopback.
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """A running Directo: where to reach it and where it logs."""

    def __init__(
        self, base_url: str, log_path: Path, process: subprocess.Popen, data_dir: Path
    ):
        self.base_url = base_url
        self.data_dir = data_dir
        self.log_path = log_path
        self.process = process
        self.publish_key = PUBLISH_KEY

    def log_tail(self, lines: int = LOG_TAIL_LINES) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError as e:
            return f"(cannot read the server log: {e})"
        text = re.sub(r"\x1b\[[0-9;]*m", "", text)
        return "\n".join(text.splitlines()[-lines:])


@pytest.fixture(scope="session")
def server(tmp_path_factory):
    binary = Path(os.environ.get("DIRECTO_BIN", REPO / "target" / "debug" / "directo"))
    if not binary.exists():
        pytest.fail(f"no Directo binary at {binary}: run `cargo build -p directo` first")
    data_dir = tmp_path_factory.mktemp("directo-data")
    log_path = data_dir.parent / "directo.log"
    http_port = _free_port(socket.SOCK_STREAM)
    media_port = _free_port(socket.SOCK_DGRAM)
    env = dict(os.environ)
    env.setdefault("RUST_LOG", "info,rtc_dtls=error")
    env.setdefault("NO_COLOR", "1")
    log = open(log_path, "wb")
    process = subprocess.Popen(
        [
            str(binary),
            "serve",
            "--http",
            f"127.0.0.1:{http_port}",
            "--media-port",
            str(media_port),
            "--media-bind",
            "127.0.0.1",
            "--public-ip",
            "127.0.0.1",
            "--data-dir",
            str(data_dir),
            "--publish-key",
            PUBLISH_KEY,
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
    )
    base_url = f"http://127.0.0.1:{http_port}"
    srv = Server(base_url, log_path, process, data_dir)
    deadline = time.monotonic() + 30
    while True:
        if process.poll() is not None:
            pytest.fail(f"Directo exited with {process.returncode}:\n{srv.log_tail()}")
        try:
            with urllib.request.urlopen(f"{base_url}/healthz", timeout=2) as r:
                if r.status == 200:
                    break
        except OSError:
            pass
        if time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"Directo did not answer /healthz within 30 s:\n{srv.log_tail()}")
        time.sleep(0.2)
    print(f"Directo on {base_url}, media udp 127.0.0.1:{media_port}, log {log_path}")
    yield srv
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)
    log.close()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.when == "call" and report.failed:
        srv = item.funcargs.get("server")
        if isinstance(srv, Server):
            report.sections.append(("Directo log (tail)", srv.log_tail()))
