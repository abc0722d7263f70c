"""Fixtures for tests against the real PostgreSQL server and Kafka broker.

The session makes sure ops/ has both up (starting them if needed), and every
test that needs isolation gets its own database (migrated, as ``make demo``'s is)
and topic prefix from ``fresh_settings``; everything created is dropped at the
end of the session.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import pytest

from ledger.config import REPO_ROOT, Settings
from traceledger import sandbox

ARTIFACTS = REPO_ROOT / "test-artifacts"

# Modules that kill processes, restart brokers or databases, or wait on recovery under
# timeouts: `make test` runs them alone (marker ``serial``), before the rest runs on
# several pytest-xdist workers, so a busy neighbour cannot starve their deadlines.
SERIAL_MODULES = {
    "test_faults", "test_crash_recovery", "test_crash_points", "test_scan_recovery", "test_startup_race",
    "test_broker_wait", "test_api_workers", "test_ops_status", "test_cluster",
}


def pytest_collection_modifyitems(config, items):
    for item in items:
        if item.module.__name__.rsplit(".", 1)[-1] in SERIAL_MODULES:
            item.add_marker(pytest.mark.serial)


def _answers(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


@pytest.fixture(scope="session")
def base_settings() -> Settings:
    s = Settings.from_env()
    kafka_host, kafka_port = s.kafka_bootstrap.split(",")[0].rsplit(":", 1)
    if not (_answers(s.pg_host, s.pg_port) and _answers(kafka_host, int(kafka_port))):
        subprocess.run(["bash", str(REPO_ROOT / "ops" / "stack.sh"), "up"], check=True)
    return s


@pytest.fixture(scope="session")
def _created(base_settings):
    """Databases and topic prefixes made by this session; dropped at its end."""
    made: dict[str, list[str]] = {"dbs": [], "prefixes": []}
    yield made
    # Housekeeping, not a test: dropping a database costs PostgreSQL a checkpoint, so a
    # session's hundreds of them are dropped by a detached process the run does not wait
    # for (python -m traceledger.sandbox; its errors go to the run dir's sandbox-drop.log).
    if made["dbs"] or made["prefixes"]:
        (REPO_ROOT / ".run").mkdir(exist_ok=True)
        log = open(REPO_ROOT / ".run" / "sandbox-drop.log", "ab")  # noqa: SIM115 - handed to the child
        subprocess.Popen([sys.executable, "-m", "traceledger.sandbox", *made["dbs"], "--prefixes", *made["prefixes"]],
                         stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True, cwd=REPO_ROOT)
        log.close()


@pytest.fixture(scope="session")
def _run_root(tmp_path_factory) -> Path:
    """Where each test's run dir goes: never the dev stack's ``.run`` (its ``log.key``)."""
    return tmp_path_factory.mktemp("run")


@pytest.fixture
def fresh_settings(base_settings, _created, _run_root):
    """A factory: each call gives Settings on a new database (its tables made by the
    migrations; none with ``migrated=False``), topic prefix and run dir (so a relay
    without ``log_key`` makes and signs with a log key of its own)."""

    def make(*, migrated: bool = True, **changes) -> Settings:
        run_id = uuid.uuid4().hex[:10]
        db = f"tl_test_{run_id}"
        sandbox.create_database(base_settings, db, migrated=migrated)
        _created["dbs"].append(db)
        prefix = f"test-{run_id}."
        _created["prefixes"].append(prefix)
        run_dir = _run_root / run_id
        run_dir.mkdir()
        # The broker's passwords stay where ops/kafka.sh wrote them (under the dev run dir).
        return base_settings.with_(pg_db=db, topic_prefix=prefix, partitions=4, run_dir=run_dir,
                                   kafka_credentials=base_settings.kafka_credentials_dir, **changes)

    return make


@pytest.fixture
def settings(fresh_settings) -> Settings:
    return fresh_settings()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Service:
    """One of traceledger's processes run as a real subprocess (killable)."""

    def __init__(self, module: str, settings: Settings, log_dir: Path, name: str | None = None):
        self.module = module
        self.settings = settings
        self.name = name or module.rsplit(".", 1)[-1]
        self.log_path = log_dir / f"{self.name}.log"
        self.proc: subprocess.Popen | None = None

    def start(self) -> "Service":
        env = {k: v for k, v in os.environ.items() if not k.startswith("TRACELEDGER_")} | self.settings.to_env()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", self.module], env=env, cwd=REPO_ROOT,
            stdout=open(self.log_path, "ab"), stderr=subprocess.STDOUT, start_new_session=True,
        )
        return self

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


@pytest.fixture
def services(tmp_path):
    """Factory for subprocess services; all stopped at the end of the test."""
    started: list[Service] = []

    def start(module: str, settings: Settings, name: str | None = None) -> Service:
        svc = Service(module, settings, tmp_path, name).start()
        started.append(svc)
        return svc

    yield start
    for svc in started:
        svc.stop()


def wait_for(predicate, timeout: float = 60, interval: float = 0.2, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


@pytest.fixture
def api(settings, services, tmp_path):
    """The HTTP API as a subprocess on a free port, with a registered-later gateway key."""
    from tests.helpers import Cast

    cast = Cast()
    key_path = tmp_path / "gateway.key"
    cast.keys["gateway"].save(key_path)
    port = free_port()
    s = settings.with_(listen_port=port, api_url=f"http://127.0.0.1:{port}", gateway_key=key_path)
    svc = services("traceledger.api", s)
    wait_for_api(svc, s.api_url)
    return {"settings": s, "cast": cast, "service": svc, "url": s.api_url}


def wait_for_api(svc: Service, url: str, timeout: float = 60) -> None:
    """Until the API subprocess answers /healthz; fail with its log if it exits."""

    def healthy():
        if not svc.running():
            raise AssertionError(f"api exited: {svc.log_path.read_text()[-2000:]}")
        try:
            return httpx.get(f"{url}/healthz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    wait_for(healthy, timeout, what="the API")
