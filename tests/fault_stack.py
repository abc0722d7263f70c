"""A private PostgreSQL cluster and Kafka broker for the fault-injection tests.

The fault tests stop, restart and fill up their database server and broker;
doing that to the shared ones (127.0.0.1:5432 / :9092) would break every
other test running at the same time. So they get their own: a second Debian
cluster (``15/faults`` by default, via ``ops/postgres.sh`` with ``PG_CLUSTER``)
and a second KRaft broker from the same cached jars (``ops/kafka.sh`` with its
own ports, data dir, pid and log file under ``.run/faults/``). Both are made
on first use and removed again when the session ends.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from ledger.config import REPO_ROOT, Settings
from traceledger import sandbox

OPS = REPO_ROOT / "ops"
CLUSTER = "faults"


def _run(cmd: list[str], env: dict | None = None, timeout: float = 180) -> str:
    out = subprocess.run(cmd, env=(os.environ | (env or {})), capture_output=True, text=True, timeout=timeout, cwd=REPO_ROOT)
    if out.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({out.returncode}):\n{out.stdout[-2000:]}\n{out.stderr[-2000:]}")
    return out.stdout


def pg_version() -> str:
    """The installed PostgreSQL major version that ops/postgres.sh uses."""
    return sorted((p.name for p in Path("/usr/lib/postgresql").iterdir() if (p / "bin" / "postgres").exists()), key=int)[-1]


@dataclass
class FaultStack:
    """Handles to the private server and broker: start, stop, restart, remove."""

    pg_port: int
    kafka_port: int
    controller_port: int
    home: Path = field(default_factory=lambda: REPO_ROOT / ".run" / "faults")
    version: str = field(default_factory=pg_version)
    databases: list[str] = field(default_factory=list)

    @property
    def kafka_env(self) -> dict[str, str]:
        return {
            "KAFKA_PORT": str(self.kafka_port),
            "KAFKA_CONTROLLER_PORT": str(self.controller_port),
            "KAFKA_DATA_DIR": str(self.home / "kafka" / "data"),
            "KAFKA_PID_FILE": str(self.home / "kafka.pid"),
            "KAFKA_LOG_FILE": str(self.home / "kafka.log"),
        }

    @property
    def kafka_data(self) -> Path:
        return self.home / "kafka" / "data"

    @property
    def settings(self) -> Settings:
        return Settings(pg_port=self.pg_port, kafka_bootstrap=f"127.0.0.1:{self.kafka_port}", kafka_credentials=self.home / "kafka" / "credentials")

    # --- PostgreSQL

    def start_postgres(self) -> None:
        _run(["bash", str(OPS / "postgres.sh"), "start"], {"PG_CLUSTER": CLUSTER, "PGPORT": str(self.pg_port)})

    def pg_ctl(self, action: str, *options: str) -> None:
        """``pg_ctlcluster VERSION faults ACTION``: start, stop, restart."""
        _run(["pg_ctlcluster", *options, self.version, CLUSTER, action])

    def psql_superuser(self, sql: str) -> str:
        return _run(["runuser", "-u", "postgres", "--", f"/usr/lib/postgresql/{self.version}/bin/psql",
                     "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", "-p", str(self.pg_port), "-d", "postgres", "-c", sql])

    # --- Kafka

    def start_kafka(self) -> None:
        _run(["bash", str(OPS / "kafka.sh"), "start"], self.kafka_env)

    def stop_kafka(self) -> None:
        _run(["bash", str(OPS / "kafka.sh"), "stop"], self.kafka_env)

    def restart_kafka(self) -> None:
        self.stop_kafka()
        self.start_kafka()

    # --- per test

    def fresh_settings(self, **changes) -> Settings:
        """Settings on a new database and topic prefix of this stack."""
        run_id = uuid.uuid4().hex[:10]
        db = f"tl_fault_{run_id}"
        sandbox.create_database(self.settings, db)
        self.databases.append(db)
        return self.settings.with_(pg_db=db, topic_prefix=f"fault-{run_id}.", partitions=4, **changes)

    # --- whole stack

    def up(self) -> "FaultStack":
        self.home.mkdir(parents=True, exist_ok=True)
        self.start_postgres()
        self.start_kafka()
        return self

    def remove(self) -> None:
        """Stop both and delete their data (the cluster with pg_dropcluster)."""
        errors = []
        try:
            self.stop_kafka()
        except Exception as exc:  # noqa: BLE001 -- still remove the database cluster
            errors.append(exc)
        shutil.rmtree(self.home, ignore_errors=True)
        try:
            _run(["pg_dropcluster", "--stop", self.version, CLUSTER])
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)
        if errors:
            raise errors[0]
