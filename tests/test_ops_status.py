"""`ops/services.sh status` (and so `make status`) fails when a service it started is down.

The script is run from a copy of the repository's layout in a temporary folder, so
its ``.run/`` pid files are the test's own and the real services are never touched.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def ops_copy(tmp_path) -> Path:
    (tmp_path / "ops").mkdir()
    shutil.copy(ROOT / "ops" / "services.sh", tmp_path / "ops" / "services.sh")
    (tmp_path / ".run").mkdir()
    return tmp_path


def _pretend_service(module: str) -> subprocess.Popen:
    """A process whose command line reads like ``python -m <module>`` (what `status` checks)."""
    return subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)", "-m", module])


def _status(repo: Path) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(repo / "ops" / "services.sh"), "status"], capture_output=True, text=True, timeout=30)


def test_status_is_zero_when_every_started_service_runs(ops_copy):
    relay, detector = _pretend_service("consumers.relay"), _pretend_service("consumers.detector")
    try:
        (ops_copy / ".run" / "relay.pid").write_text(str(relay.pid))
        (ops_copy / ".run" / "detector.pid").write_text(str(detector.pid))
        out = _status(ops_copy)
        assert out.returncode == 0, out.stdout + out.stderr
        assert "relay: running" in out.stdout and "detector: running" in out.stdout
        assert "api: stopped" in out.stdout  # never started: not an error
    finally:
        relay.kill()
        detector.kill()


def test_status_fails_when_a_started_service_died(ops_copy):
    relay = _pretend_service("consumers.relay")
    dead = _pretend_service("consumers.projector")
    dead.kill()
    dead.wait()
    try:
        (ops_copy / ".run" / "relay.pid").write_text(str(relay.pid))
        (ops_copy / ".run" / "projector.pid").write_text(str(dead.pid))
        out = _status(ops_copy)
        assert out.returncode == 1, out.stdout
        assert "projector: NOT RUNNING" in out.stdout
        assert "relay: running" in out.stdout
    finally:
        relay.kill()


def test_status_fails_when_the_pid_was_recycled_by_another_program(ops_copy):
    other = _pretend_service("something.else")
    try:
        (ops_copy / ".run" / "api.pid").write_text(str(other.pid))
        out = _status(ops_copy)
        assert out.returncode == 1, out.stdout
        assert "api: NOT RUNNING" in out.stdout
    finally:
        other.kill()
