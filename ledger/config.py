"""All configuration in one place, read from the environment.

Every process (API, relay, projector, CLI, tests) builds a :class:`Settings`
with :meth:`Settings.from_env`; nothing else reads ``os.environ``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


def _int(env, name: str, default: int) -> int:
    raw = env.get(name)
    if raw in (None, ""):
        return default
    try:
        return int(raw)
    except ValueError:
        raise SystemExit(f"{name} must be an integer, got {raw!r}") from None


def _float(env, name: str, default: float) -> float:
    raw = env.get(name)
    if raw in (None, ""):
        return default
    try:
        return float(raw)
    except ValueError:
        raise SystemExit(f"{name} must be a number, got {raw!r}") from None


def _count(env, name: str) -> int | None:
    """A number of threads or processes: None when unset (the reader's default), else 0 or more."""
    raw = env.get(name)
    if raw in (None, ""):
        return None
    if not raw.isdigit():
        raise SystemExit(f"{name} must be a whole number (0 or more), got {raw!r}")
    return int(raw)


def _cidrs(env, name: str, default: tuple[str, ...]) -> tuple[str, ...]:
    """Comma-separated networks (``none``: no proxy is trusted); each must parse."""
    import ipaddress

    raw = env.get(name)
    if raw in (None, ""):
        return default
    if raw.strip().lower() == "none":
        return ()
    nets = tuple(n.strip() for n in raw.split(",") if n.strip())
    for net in nets:
        try:
            ipaddress.ip_network(net, strict=False)
        except ValueError:
            raise SystemExit(f"{name} must be comma-separated networks (CIDR) or none, got {net!r}") from None
    return nets


def crash_plan_from_env(env=None) -> str:
    """``TRACELEDGER_CRASH_AT``: deliberate crash points for the recovery tests (``ledger.crash_points``)."""
    return (os.environ if env is None else env).get("TRACELEDGER_CRASH_AT", "")


@dataclass(frozen=True)
class Settings:
    pg_host: str = "127.0.0.1"
    pg_port: int = 5432
    pg_db: str = "traceledger"
    pg_user: str = "traceledger"
    pg_password: str = "traceledger"
    kafka_bootstrap: str = "127.0.0.1:9092"
    # The broker principal (SASL/SCRAM-SHA-512) this process logs in as; "" logs in
    # as nobody (plain TCP, anonymous: the local broker refuses it). Its password is
    # TRACELEDGER_KAFKA_PASSWORD, else the file <kafka_credentials>/<user> that
    # ops/kafka.sh wrote. ops/services.sh gives each service its own principal;
    # everything else (CLI, tests, benchmarks) defaults to the super user admin.
    kafka_user: str = "admin"
    kafka_password: str | None = None
    kafka_credentials: Path | None = None
    topic_prefix: str = ""
    partitions: int = 6
    # How long the relay's producer tries to deliver a record before giving up on it
    # (Kafka's delivery.timeout.ms); the relay then starts over from its resume path.
    kafka_delivery_timeout_ms: int = 120_000
    # How long a Kafka client's constructor waits for a first broker before raising (kafka-python's
    # bootstrap_timeout_ms, 30 s when unset); the long-running consumers then retry (consumers/broker_wait.py).
    kafka_bootstrap_timeout_ms: int | None = None
    # The API's /readyz fails while the verification projectors trail the log by more entries than this.
    ready_max_lag: int = 10_000
    # /readyz fails while a record has been parked (waiting for its label's batch) longer than this.
    ready_max_parked_seconds: float = 300.0
    # A stream process's Prometheus endpoint (ledger/metrics.py); 0: none. The API serves /metrics itself.
    metrics_port: int = 0
    api_url: str = "http://127.0.0.1:8000"
    listen_host: str = "127.0.0.1"
    listen_port: int = 8000
    resolver_host: str = "id.traceledger.example"
    gateway_key: Path | None = None
    # The detector's key (role detector): it signs AlertRaised for each alert (consumers/alert_raiser.py);
    # without one, alerts are bound to their producer by the ledger's alert_owners table only.
    detector_key: Path | None = None
    run_dir: Path = field(default=REPO_ROOT / ".run")
    relay_batch: int = 1000
    scan_batch: int = 500
    # API server processes (uvicorn workers); one per core serves reads on every core.
    api_workers: int = 1
    # Admission control per API worker (traceledger/api/admission.py): requests served at once,
    # and requests waiting for a turn; beyond both, 503 with Retry-After at once.
    api_max_inflight: int = 8
    api_max_queue: int = 8
    # The integrity sweep (projections/integrity_sweep.py): seconds between passes re-hashing every
    # label's stored chain against its published hashes; a store edit is flagged within a pass plus this.
    integrity_sweep_seconds: float = 5.0
    # The global Merkle log (issue 6): the key that signs checkpoints (generated
    # under run_dir on first use when unset), the origin line of every
    # checkpoint, and how often the relay publishes one.
    log_key: Path | None = None
    log_origin: str = "traceledger.example/log"
    checkpoint_events: int = 1000
    checkpoint_seconds: float = 10.0
    # Signature-checking threads of each verifying process (the API's writes, the projector,
    # the auditor: ledger.sigcheck's shared pool). None: one per core; 0: none (checked on the spot).
    verify_threads: int | None = None
    # Decoding and verifying worker processes of an audit run of PROCESS_MIN_RECORDS new records
    # or more (consumers.auditor). None: one per core on a machine with several; 0: none.
    audit_processes: int | None = None
    # Anonymous clients (issue 15; traceledger/api/client_identity.py, ledger/client_limits.py).
    # Proxies (CIDRs) whose X-Forwarded-For is believed: loopback by default, so the local
    # stack, tests and load generators can stand in for many clients. Requests per client per
    # window (0: unlimited) on each shopper channel; a label's public query count moves by at
    # most one per client per window.
    trusted_proxies: tuple[str, ...] = ("127.0.0.0/8", "::1/128")
    client_window_seconds: int = 3600
    limit_scans: int = 120
    limit_pin_checks: int = 30
    limit_reports: int = 10
    limit_sms: int = 30
    limit_calls: int = 20
    # Address blocks and number prefixes -> region (ledger/places.py): the place the server
    # records for a consumer scan: a CSV file, "local" (private 10.PP.CC.x blocks, for the local
    # stack and the simulator) or "none" (scans get no server place, never the client's word).
    region_table: str = "local"
    # Tests only: where a process kills itself on purpose (``ledger.crash_points``); empty: nowhere.
    crash_at: str = ""
    # EPCIS webhook subscriptions (ledger/webhook_targets.py): networks a webhook may reach although
    # they are loopback/private/link-local (an operator's allow-list; default none), and whether plain
    # http is allowed (default: https only, as in production).
    epcis_webhook_allow: tuple[str, ...] = ()
    epcis_webhook_http: bool = False

    @classmethod
    def from_env(cls, env=None) -> "Settings":
        env = os.environ if env is None else env
        d = cls()
        gateway_key = env.get("TRACELEDGER_GATEWAY_KEY")
        detector_key = env.get("TRACELEDGER_DETECTOR_KEY")
        log_key = env.get("TRACELEDGER_LOG_KEY")
        kafka_credentials = env.get("TRACELEDGER_KAFKA_CREDENTIALS")
        return cls(
            pg_host=env.get("TRACELEDGER_PG_HOST", d.pg_host),
            pg_port=_int(env, "TRACELEDGER_PG_PORT", d.pg_port),
            pg_db=env.get("TRACELEDGER_PG_DB", d.pg_db),
            pg_user=env.get("TRACELEDGER_PG_USER", d.pg_user),
            pg_password=env.get("TRACELEDGER_PG_PASSWORD", d.pg_password),
            kafka_bootstrap=env.get("TRACELEDGER_KAFKA", d.kafka_bootstrap),
            kafka_user=env.get("TRACELEDGER_KAFKA_USER", d.kafka_user),
            kafka_password=env.get("TRACELEDGER_KAFKA_PASSWORD") or None,
            kafka_credentials=Path(kafka_credentials) if kafka_credentials else None,
            topic_prefix=env.get("TRACELEDGER_TOPIC_PREFIX", d.topic_prefix),
            partitions=_int(env, "TRACELEDGER_PARTITIONS", d.partitions),
            kafka_delivery_timeout_ms=_int(env, "TRACELEDGER_KAFKA_DELIVERY_TIMEOUT_MS", d.kafka_delivery_timeout_ms),
            kafka_bootstrap_timeout_ms=_int(env, "TRACELEDGER_KAFKA_BOOTSTRAP_TIMEOUT_MS", 0) or None,
            ready_max_lag=_int(env, "TRACELEDGER_READY_MAX_LAG", d.ready_max_lag),
            ready_max_parked_seconds=_float(env, "TRACELEDGER_READY_MAX_PARKED_SECONDS", d.ready_max_parked_seconds),
            metrics_port=_int(env, "TRACELEDGER_METRICS_PORT", d.metrics_port),
            api_url=env.get("TRACELEDGER_API", d.api_url).rstrip("/"),
            listen_host=env.get("TRACELEDGER_LISTEN_HOST", d.listen_host),
            listen_port=_int(env, "TRACELEDGER_LISTEN_PORT", d.listen_port),
            resolver_host=env.get("TRACELEDGER_RESOLVER_HOST", d.resolver_host),
            gateway_key=Path(gateway_key) if gateway_key else None,
            detector_key=Path(detector_key) if detector_key else None,
            run_dir=Path(env.get("TRACELEDGER_RUN_DIR", d.run_dir)),
            relay_batch=_int(env, "TRACELEDGER_RELAY_BATCH", d.relay_batch),
            scan_batch=_int(env, "TRACELEDGER_SCAN_BATCH", d.scan_batch),
            api_workers=_int(env, "TRACELEDGER_API_WORKERS", d.api_workers),
            api_max_inflight=_int(env, "TRACELEDGER_API_MAX_INFLIGHT", d.api_max_inflight),
            api_max_queue=_int(env, "TRACELEDGER_API_MAX_QUEUE", d.api_max_queue),
            integrity_sweep_seconds=_float(env, "TRACELEDGER_INTEGRITY_SWEEP_SECONDS", d.integrity_sweep_seconds),
            log_key=Path(log_key) if log_key else None,
            log_origin=env.get("TRACELEDGER_LOG_ORIGIN", d.log_origin),
            checkpoint_events=_int(env, "TRACELEDGER_CHECKPOINT_EVENTS", d.checkpoint_events),
            checkpoint_seconds=_float(env, "TRACELEDGER_CHECKPOINT_SECONDS", d.checkpoint_seconds),
            verify_threads=_count(env, "TRACELEDGER_VERIFY_THREADS"),
            audit_processes=_count(env, "TRACELEDGER_AUDIT_PROCESSES"),
            trusted_proxies=_cidrs(env, "TRACELEDGER_TRUSTED_PROXIES", d.trusted_proxies),
            client_window_seconds=_int(env, "TRACELEDGER_CLIENT_WINDOW_SECONDS", d.client_window_seconds),
            limit_scans=_int(env, "TRACELEDGER_LIMIT_SCANS", d.limit_scans),
            limit_pin_checks=_int(env, "TRACELEDGER_LIMIT_PIN_CHECKS", d.limit_pin_checks),
            limit_reports=_int(env, "TRACELEDGER_LIMIT_REPORTS", d.limit_reports),
            limit_sms=_int(env, "TRACELEDGER_LIMIT_SMS", d.limit_sms),
            limit_calls=_int(env, "TRACELEDGER_LIMIT_CALLS", d.limit_calls),
            region_table=env.get("TRACELEDGER_REGION_TABLE") or d.region_table,
            crash_at=crash_plan_from_env(env),
            epcis_webhook_allow=_cidrs(env, "TRACELEDGER_EPCIS_WEBHOOK_ALLOW", d.epcis_webhook_allow),
            epcis_webhook_http=env.get("TRACELEDGER_EPCIS_WEBHOOK_HTTP", "") == "1",
        )

    def to_env(self) -> dict[str, str]:
        """The environment variables that make ``from_env`` return these settings."""
        env = {
            "TRACELEDGER_PG_HOST": self.pg_host,
            "TRACELEDGER_PG_PORT": str(self.pg_port),
            "TRACELEDGER_PG_DB": self.pg_db,
            "TRACELEDGER_PG_USER": self.pg_user,
            "TRACELEDGER_PG_PASSWORD": self.pg_password,
            "TRACELEDGER_KAFKA": self.kafka_bootstrap,
            "TRACELEDGER_KAFKA_USER": self.kafka_user,
            "TRACELEDGER_TOPIC_PREFIX": self.topic_prefix,
            "TRACELEDGER_PARTITIONS": str(self.partitions),
            "TRACELEDGER_KAFKA_DELIVERY_TIMEOUT_MS": str(self.kafka_delivery_timeout_ms),
            "TRACELEDGER_KAFKA_BOOTSTRAP_TIMEOUT_MS": str(self.kafka_bootstrap_timeout_ms or 0),
            "TRACELEDGER_READY_MAX_LAG": str(self.ready_max_lag),
            "TRACELEDGER_READY_MAX_PARKED_SECONDS": str(self.ready_max_parked_seconds),
            "TRACELEDGER_METRICS_PORT": str(self.metrics_port),
            "TRACELEDGER_API": self.api_url,
            "TRACELEDGER_LISTEN_HOST": self.listen_host,
            "TRACELEDGER_LISTEN_PORT": str(self.listen_port),
            "TRACELEDGER_RESOLVER_HOST": self.resolver_host,
            "TRACELEDGER_RUN_DIR": str(self.run_dir),
            "TRACELEDGER_RELAY_BATCH": str(self.relay_batch),
            "TRACELEDGER_SCAN_BATCH": str(self.scan_batch),
            "TRACELEDGER_API_WORKERS": str(self.api_workers),
            "TRACELEDGER_API_MAX_INFLIGHT": str(self.api_max_inflight),
            "TRACELEDGER_API_MAX_QUEUE": str(self.api_max_queue),
            "TRACELEDGER_INTEGRITY_SWEEP_SECONDS": str(self.integrity_sweep_seconds),
            "TRACELEDGER_LOG_ORIGIN": self.log_origin,
            "TRACELEDGER_CHECKPOINT_EVENTS": str(self.checkpoint_events),
            "TRACELEDGER_CHECKPOINT_SECONDS": str(self.checkpoint_seconds),
            "TRACELEDGER_TRUSTED_PROXIES": ",".join(self.trusted_proxies) or "none",
            "TRACELEDGER_CLIENT_WINDOW_SECONDS": str(self.client_window_seconds),
            "TRACELEDGER_LIMIT_SCANS": str(self.limit_scans),
            "TRACELEDGER_LIMIT_PIN_CHECKS": str(self.limit_pin_checks),
            "TRACELEDGER_LIMIT_REPORTS": str(self.limit_reports),
            "TRACELEDGER_LIMIT_SMS": str(self.limit_sms),
            "TRACELEDGER_LIMIT_CALLS": str(self.limit_calls),
        }
        if self.gateway_key:
            env["TRACELEDGER_GATEWAY_KEY"] = str(self.gateway_key)
        if self.detector_key:
            env["TRACELEDGER_DETECTOR_KEY"] = str(self.detector_key)
        if self.log_key:
            env["TRACELEDGER_LOG_KEY"] = str(self.log_key)
        if self.kafka_password:
            env["TRACELEDGER_KAFKA_PASSWORD"] = self.kafka_password
        if self.kafka_credentials:
            env["TRACELEDGER_KAFKA_CREDENTIALS"] = str(self.kafka_credentials)
        if self.verify_threads is not None:
            env["TRACELEDGER_VERIFY_THREADS"] = str(self.verify_threads)
        if self.audit_processes is not None:
            env["TRACELEDGER_AUDIT_PROCESSES"] = str(self.audit_processes)
        if self.crash_at:
            env["TRACELEDGER_CRASH_AT"] = self.crash_at
        env["TRACELEDGER_REGION_TABLE"] = self.region_table
        env["TRACELEDGER_EPCIS_WEBHOOK_ALLOW"] = ",".join(self.epcis_webhook_allow) or "none"
        env["TRACELEDGER_EPCIS_WEBHOOK_HTTP"] = "1" if self.epcis_webhook_http else ""
        return env

    def with_(self, **changes) -> "Settings":
        return replace(self, **changes)

    @property
    def label_topic(self) -> str:
        return f"{self.topic_prefix}label-events"

    @property
    def actor_topic(self) -> str:
        return f"{self.topic_prefix}actor-events"

    @property
    def checkpoint_topic(self) -> str:
        return f"{self.topic_prefix}checkpoints"

    @property
    def log_key_path(self) -> Path:
        """The log's private key file (``TRACELEDGER_LOG_KEY`` or ``<run dir>/log.key``)."""
        return self.log_key or self.run_dir / "log.key"

    @property
    def seal_key_path(self) -> Path:
        """The verification service's X25519 key (``<run dir>/seal.key``): PIN batch secrets are sealed to it."""
        return self.run_dir / "seal.key"

    @property
    def kafka_credentials_dir(self) -> Path:
        """Where ops/kafka.sh keeps one password file per broker principal."""
        return self.kafka_credentials or self.run_dir / "kafka" / "credentials"

    def kafka_client_config(self) -> dict:
        """The keyword arguments every KafkaConsumer, KafkaProducer and
        KafkaAdminClient is built with: where the broker is and who logs in.

        A plain dict, so this layer needs no Kafka import."""
        config: dict = {"bootstrap_servers": self.kafka_bootstrap}
        if self.kafka_bootstrap_timeout_ms:
            config["bootstrap_timeout_ms"] = self.kafka_bootstrap_timeout_ms
        if not self.kafka_user:
            return config
        return config | {
            "security_protocol": "SASL_PLAINTEXT",  # loopback only: see ops/kafka/server.properties.in
            "sasl_mechanism": "SCRAM-SHA-512",
            "sasl_plain_username": self.kafka_user,
            "sasl_plain_password": self.kafka_password or self._kafka_password_from_file(),
        }

    def _kafka_password_from_file(self) -> str:
        path = self.kafka_credentials_dir / self.kafka_user
        try:
            return path.read_text().strip()
        except FileNotFoundError:
            raise SystemExit(
                f"no password for Kafka user {self.kafka_user!r}: {path} is missing "
                "(ops/kafka.sh start writes it; or set TRACELEDGER_KAFKA_PASSWORD)"
            ) from None

    @property
    def pg_conninfo(self) -> str:
        return (
            f"host={self.pg_host} port={self.pg_port} dbname={self.pg_db} "
            f"user={self.pg_user} password={self.pg_password}"
        )

    def eventsourcing_env(self) -> dict[str, str]:
        """The environment eventsourcing's PostgreSQL factory is configured by."""
        return {
            "PERSISTENCE_MODULE": "eventsourcing.postgres",
            "POSTGRES_HOST": self.pg_host,
            "POSTGRES_PORT": str(self.pg_port),
            "POSTGRES_DBNAME": self.pg_db,
            "POSTGRES_USER": self.pg_user,
            "POSTGRES_PASSWORD": self.pg_password,
            "POSTGRES_POOL_SIZE": "4",
            "POSTGRES_MAX_OVERFLOW": "4",
            "POSTGRES_LOCK_TIMEOUT": "5",
            # Seconds to wait for a pooled connection: with the server down, a write is
            # refused (503) after this long rather than the library's default 30 s.
            "POSTGRES_CONNECT_TIMEOUT": "10",
            # The tables come from the migrations (ledger/migrations/0001_event_store.sql), run
            # before any process starts: the library must not create (or race to create) them.
            "CREATE_TABLE": "no",
        }
