"""`make run` (scripts/run.sh) for real: DEBUG off, static files and offline API
docs served, plain error pages, a second run harmless, and Ctrl-C stops
everything cleanly within seconds.

Runs the script as a user would, on a fresh folder (PEDIGREE_VAR) and a free
port, with the web server, the Celery worker and beat it starts.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import psutil
import pytest

ROOT = Path(__file__).resolve().parent.parent
VENV = Path(sys.executable).parent.parent if (Path(sys.executable).parent / "activate").exists() else None
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(VENV is None, reason="run.sh needs the virtualenv the tests run in"),
    # run.sh brings its own SQLite database: once, in make test's SQLite pass, is enough.
    pytest.mark.skipif(os.environ.get("DATABASE_URL", "").startswith("postgres"), reason="runs in the SQLite pass"),
]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _get(url: str) -> tuple[int, str, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.headers.get("Content-Type", ""), response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers.get("Content-Type", ""), error.read()


def _processes_using(var: Path) -> list[psutil.Process]:
    found = []
    for process in psutil.process_iter(["cmdline"]):
        cmdline = " ".join(process.info["cmdline"] or [])
        if str(var) in cmdline and process.pid != os.getpid():
            found.append(process)
    return found


def _as_in_a_terminal() -> None:
    """Ctrl-C's signal at its default, as in a terminal: when these tests run in the
    background, SIGINT is ignored and children inherit that, and bash cannot trap a
    signal ignored when it started."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


class Server:
    """scripts/run.sh started in its own process group, as a terminal would."""

    def __init__(self, var: Path, port: int) -> None:
        self.var, self.port = var, port
        self.log = var.parent / f"run-{port}.log"
        env = {key: value for key, value in os.environ.items() if key not in {"DJANGO_SETTINGS_MODULE", "DATABASE_URL", "SECRET_KEY", "DEBUG", "CELERY_TASK_ALWAYS_EAGER", "PEDIGREE_ARTIFACTS"}}
        env.update({"PEDIGREE_VAR": str(var), "PORT": str(port), "VENV": str(VENV), "PEDIGREE_PII_AUTO_SCAN": "0"})
        self.process = subprocess.Popen(
            ["bash", "scripts/run.sh"], cwd=ROOT, env=env, stdout=self.log.open("wb"), stderr=subprocess.STDOUT,
            start_new_session=True, preexec_fn=_as_in_a_terminal,
        )

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def wait_ready(self, timeout: float = 240) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process.poll() is None, self.output()
            try:
                if _get(self.url("/readyz"))[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.5)
        raise AssertionError(f"not ready in {timeout}s:\n{self.output()}")

    def ctrl_c(self) -> float:
        """SIGINT to the foreground process group, as Ctrl-C in a terminal; seconds until the script exits."""
        started = time.monotonic()
        os.killpg(self.process.pid, signal.SIGINT)
        self.process.wait(timeout=60)
        return time.monotonic() - started

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def kill(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
        for process in _processes_using(self.var):
            process.kill()


@pytest.fixture
def var(tmp_path: Path) -> Any:
    var = tmp_path / "var"
    yield var
    for process in _processes_using(var):
        process.kill()


def test_make_run_serves_with_debug_off_and_stops_cleanly_on_ctrl_c(var: Path) -> None:
    server = Server(var, _free_port())
    try:
        server.wait_ready()
        # DEBUG is off: a 404 lists no URL patterns; static files are still served.
        status, content_type, body = _get(server.url("/no-such-page/"))
        assert status == 404 and content_type.startswith("text/plain") and b"URLconf" not in body
        status, content_type, body = _get(server.url("/api/v1/no-such-thing/"))
        assert status == 404 and b"not_found" in body and b"api/v1/" not in body
        assert _get(server.url("/static/admin/css/base.css"))[0] == 200
        # /api/docs/ with every asset from this server (works offline).
        status, _, page = _get(server.url("/api/docs/"))
        assets = re.findall(r'(?:src|href)="([^"]+\.(?:js|css))"', page.decode())
        assert status == 200 and assets and all(asset.startswith("/static/") for asset in assets), assets
        assert all(_get(server.url(asset))[0] == 200 for asset in assets)
        # The files the service created are private.
        assert oct(var.stat().st_mode & 0o777) == "0o700"
        assert oct((var / "pedigree.sqlite3").stat().st_mode & 0o777) == "0o600"
        assert oct((var / "secret_key").stat().st_mode & 0o777) == "0o600"
        children = _processes_using(var)
        assert len(children) >= 3, [process.info["cmdline"] for process in children]

        seconds = server.ctrl_c()
        print(f"Ctrl-C stopped the web server, worker and beat in {seconds:.1f}s")
        output = server.output()
        assert server.process.returncode == 0, output
        assert seconds < 20, f"Ctrl-C took {seconds:.1f}s\n{output}"
        assert "Stopped." in output and "SIGKILL" not in output, output
        assert not [process for process in children if process.is_running() and process.status() != psutil.STATUS_ZOMBIE]
    finally:
        server.kill()

    # Running it again does no harm: same folder, same key, the seed leaves the demo alone.
    key = (var / "secret_key").read_text()
    again = Server(var, _free_port())
    try:
        again.wait_ready()
        assert (var / "secret_key").read_text() == key
        assert "(present)" in again.output()
        assert again.ctrl_c() < 20 and again.process.returncode == 0
    finally:
        again.kill()
