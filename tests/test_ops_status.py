"""`make status` (and `ops/services.sh status`) fails when a service it started is down.

The script is run from a copy of the repository's layout in a temporary folder, so
its ``.run/`` pid files are the test's own and the real services are never touched.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
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


def _dead_service(module: str) -> int:
    """The pid of a pretend service that has already exited."""
    dead = _pretend_service(module)
    dead.kill()
    dead.wait()
    return dead.pid


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
    dead = _dead_service("consumers.projector")
    try:
        (ops_copy / ".run" / "relay.pid").write_text(str(relay.pid))
        (ops_copy / ".run" / "projector.pid").write_text(str(dead))
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


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    return "\nState:\tZ" not in state


def test_the_supervisor_restarts_a_service_that_died_and_stop_stops_both(ops_copy):
    # The services' python is a stand-in that sleeps with "-m <module>" on its command line.
    venv = ops_copy / ".venv" / "bin"
    venv.mkdir(parents=True)
    (venv / "python").write_text(f'#!/bin/sh\nexec {sys.executable} -c "import time; time.sleep(120)" "$@"\n')
    (venv / "python").chmod(0o755)
    relay, detector = _pretend_service("consumers.relay"), _pretend_service("consumers.detector")
    run = ops_copy / ".run"
    (run / "relay.pid").write_text(str(relay.pid))
    (run / "detector.pid").write_text(str(detector.pid))
    script = str(ops_copy / "ops" / "services.sh")
    supervisor = subprocess.Popen(["bash", script, "supervise"], env={**os.environ, "TRACELEDGER_SUPERVISE_SECONDS": "0.2"},
                                  stdout=open(run / "supervisor.log", "ab"), stderr=subprocess.STDOUT, start_new_session=True)
    try:
        for _ in range(50):
            if (run / "supervisor.pid").exists():
                break
            time.sleep(0.1)
        assert _status(ops_copy).returncode == 0
        relay.kill()
        relay.wait()
        restarted = None
        for _ in range(100):
            pid = int((run / "relay.pid").read_text())
            if pid != relay.pid and _alive(pid):
                restarted = pid
                break
            time.sleep(0.1)
        assert restarted, (run / "supervisor.log").read_text()
        assert "relay (pid" in (run / "supervisor.log").read_text() and "restarting" in (run / "supervisor.log").read_text()
        out = _status(ops_copy)
        assert out.returncode == 0 and "relay: running" in out.stdout and "supervisor: running" in out.stdout, out.stdout

        stop = subprocess.run(["bash", script, "stop"], capture_output=True, text=True, timeout=60)
        assert stop.returncode == 0, stop.stderr
        supervisor.wait(10)
        assert not _alive(restarted) and not _alive(detector.pid)
        assert not (run / "relay.pid").exists() and not (run / "supervisor.pid").exists()
    finally:
        for p in (relay, detector, supervisor):
            p.kill()


def test_status_fails_when_the_supervisor_died(ops_copy):
    (ops_copy / ".run" / "supervisor.pid").write_text("999999")
    out = _status(ops_copy)
    assert out.returncode == 1 and "supervisor: NOT RUNNING" in out.stdout


# ------------------------------------------------------------------ `make status` itself


@pytest.fixture
def make_copy(ops_copy) -> Path:
    """The Makefile beside ops/services.sh, with ops/stack.sh a stand-in whose ``status``
    answers as PostgreSQL and Kafka would (``STACK_STATUS_RC``): the test never asks the
    shared stack, and can show a stack that does not answer."""
    shutil.copy(ROOT / "Makefile", ops_copy / "Makefile")
    (ops_copy / "ops" / "stack.sh").write_text('echo "stack: stand-in"; exit "${STACK_STATUS_RC:-0}"\n')
    return ops_copy


def _make_status(repo: Path, stack_rc: int = 0) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("KAFKA_BROKERS", "KAFKA_PORT", "PGPORT", "TRACELEDGER_LISTEN_PORT", "MAKEFLAGS")}
    return subprocess.run(["make", "--no-print-directory", "-C", str(repo), "status"], env={**env, "STACK_STATUS_RC": str(stack_rc)},
                          capture_output=True, text=True, timeout=30)


def test_make_status_fails_when_a_started_service_died_and_passes_when_it_runs(make_copy):
    relay = _pretend_service("consumers.relay")
    dead = _dead_service("consumers.detector")
    try:
        (make_copy / ".run" / "relay.pid").write_text(str(relay.pid))
        ok = _make_status(make_copy)
        assert ok.returncode == 0, ok.stdout + ok.stderr
        assert "stack: stand-in" in ok.stdout and "relay: running" in ok.stdout
        (make_copy / ".run" / "detector.pid").write_text(str(dead))
        down = _make_status(make_copy)
        assert down.returncode != 0, down.stdout
        assert "detector: NOT RUNNING" in down.stdout and "relay: running" in down.stdout
    finally:
        relay.kill()


def test_make_status_fails_when_the_stack_does_not_answer(make_copy):
    out = _make_status(make_copy, stack_rc=1)
    assert out.returncode != 0, out.stdout
    assert "relay: stopped" in out.stdout  # the services' report is printed too
