"""A private three-broker Kafka cluster (``KAFKA_BROKERS=3 ops/kafka.sh``) for the cluster tests.

The broker fault tests kill and stop brokers; doing that to the shared broker
(127.0.0.1:9092) would break every other test. So they get a cluster of their own
from the same ops/ script and cached jars: six consecutive free ports (three client,
three controller), data, pid and log files under ``.run/cluster_<random>/``, removed
at the end. PostgreSQL stays the shared server: each test has its own database.
"""

from __future__ import annotations

import os
import random
import shutil
import socket
import subprocess
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from ledger.config import REPO_ROOT, Settings

OPS = REPO_ROOT / "ops"


def free_port_run(count: int) -> int:
    """The first of ``count`` consecutive ports that are all free on 127.0.0.1."""
    for _ in range(200):
        base = random.randrange(20000, 40000 - count)
        try:
            socks = []
            for port in range(base, base + count):
                s = socket.socket()
                socks.append(s)
                s.bind(("127.0.0.1", port))
            return base
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise RuntimeError(f"no {count} consecutive free ports found")


@dataclass
class ClusterStack:
    """Handles to the private cluster: start (every node not running), kill or stop one node, remove."""

    brokers: int = 3
    name: str = field(default_factory=lambda: f"cluster_{uuid.uuid4().hex[:8]}")
    port: int = field(default_factory=lambda: free_port_run(6))

    @property
    def home(self) -> Path:
        return REPO_ROOT / ".run" / self.name

    @property
    def env(self) -> dict[str, str]:
        return {
            "KAFKA_BROKERS": str(self.brokers),
            "KAFKA_PORT": str(self.port),
            "KAFKA_CONTROLLER_PORT": str(self.port + self.brokers),
            "KAFKA_DATA_DIR": str(self.home / "kafka" / "data"),
            "KAFKA_PID_FILE": str(self.home / "kafka.pid"),
            "KAFKA_LOG_FILE": str(self.home / "kafka.log"),
            # A restarted node first recovers every log it holds; on a busy 2-core box that takes a while.
            "KAFKA_START_TIMEOUT": "300",
        }

    @property
    def bootstrap(self) -> str:
        return ",".join(f"127.0.0.1:{self.port + i}" for i in range(self.brokers))

    @property
    def credentials(self) -> Path:
        return self.home / "kafka" / "credentials"

    def on(self, settings: Settings) -> Settings:
        """``settings`` pointed at this cluster (every broker, its credentials)."""
        return settings.with_(kafka_bootstrap=self.bootstrap, kafka_credentials=self.credentials)

    def kafka(self, *args: str, timeout: float = 300) -> str:
        out = subprocess.run(["bash", str(OPS / "kafka.sh"), *args], env=os.environ | self.env, capture_output=True,
                             text=True, timeout=timeout, cwd=REPO_ROOT)
        if out.returncode != 0:
            raise RuntimeError(f"ops/kafka.sh {' '.join(args)} failed ({out.returncode}):\n{out.stdout[-2000:]}\n{out.stderr[-3000:]}")
        return out.stdout + out.stderr

    def start(self) -> "ClusterStack":
        self.home.mkdir(parents=True, exist_ok=True)
        self.kafka("start")
        return self

    def kill_node(self, node: int) -> None:
        self.kafka("kill-node", str(node))

    def stop_node(self, node: int) -> None:
        self.kafka("stop-node", str(node))

    def remove(self) -> None:
        """SIGKILL every node (its data goes anyway: no controlled shutdown to wait for) and delete it all."""
        try:
            for node in range(1, self.brokers + 1):
                self.kill_node(node)
        finally:
            shutil.rmtree(self.home, ignore_errors=True)
