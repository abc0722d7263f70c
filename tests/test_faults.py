"""Faults on a real broker and server: the broker or the database going away,
records too large for the topic, a full disk.

These tests stop and restart their database server and broker, so they run on
a private PostgreSQL cluster and Kafka broker (:mod:`tests.fault_stack`), never
on the shared ones.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
import threading
import time

import httpx
import psycopg
import pytest

from ledger import gs1, scan_inbox
from ledger.config import REPO_ROOT
from ledger.service import Ledger
from tests.conftest import free_port, wait_for, wait_for_api
from tests.fault_stack import FaultStack
from tests.helpers import Cast, events_body, gtin
from tests.oracle import assert_exactly_once
from tests.pipeline import consumed, label_topic_size, log_indexes, topic_records

PROBLEM = "application/problem+json"


@pytest.fixture(scope="session")
def stack():
    """The private PostgreSQL cluster and Kafka broker, removed at the end."""
    s = FaultStack(pg_port=free_port(), kafka_port=free_port(), controller_port=free_port()).up()
    yield s
    s.remove()


def start_api(services, settings, cast: Cast, tmp_path):
    """The API as a subprocess on ``settings`` with the cast's gateway key; (url, service)."""
    key_path = tmp_path / "gateway.key"
    cast.keys["gateway"].save(key_path)
    port = free_port()
    s = settings.with_(listen_port=port, api_url=f"http://127.0.0.1:{port}", gateway_key=key_path)
    svc = services("traceledger.api", s, name="api")
    wait_for_api(svc, s.api_url)
    return s.api_url, svc


def post_accepted(url: str, signed_events) -> list[str]:
    """POST the events, fail unless all were accepted; their event ids."""
    r = httpx.post(f"{url}/v1/events", json=events_body(signed_events), timeout=120)
    assert r.status_code == 200 and r.json()["refused"] == 0, r.text[:2000]
    return [s.event.event_id for s in signed_events]


def count(settings, sql: str, *args) -> int:
    try:
        with psycopg.connect(settings.pg_conninfo) as conn:
            return conn.execute(sql, args).fetchone()[0]
    except psycopg.errors.UndefinedTable:
        return 0


def projected(settings) -> int:
    return count(settings, "SELECT count(*) FROM verification.events")


def assert_kafka_holds_the_log_once(settings) -> int:
    """Every indexed event is on Kafka exactly once; returns the log size."""
    total = count(settings, "SELECT count(*) FROM log_entries")
    records = topic_records(settings, settings.label_topic) + topic_records(settings, settings.actor_topic)
    assert log_indexes(records) == list(range(total)), "a log index is missing or doubled on Kafka"
    assert len(records) == total
    return total


# ------------------------------------------------------------ the broker goes away


def test_broker_down_at_issuance_writes_wait_in_the_outbox(stack, services, tmp_path):
    settings = stack.fresh_settings(checkpoint_seconds=1.0)
    cast = Cast()
    url, _ = start_api(services, settings, cast, tmp_path)
    accepted = post_accepted(url, cast.founding_events())
    relay = services("consumers.relay", settings, name="relay")
    projector = services("consumers.projector", settings, name="projector")
    accepted += post_accepted(url, [cast.issue() for _ in range(100)])
    wait_for(lambda: projected(settings) == 100, 90, 0.5, "the first labels to be projected")

    stack.stop_kafka()
    try:
        # The write side needs only PostgreSQL: issuance and scans are still accepted.
        later = [cast.issue() for _ in range(400)]
        for i in range(0, len(later), 100):
            accepted += post_accepted(url, later[i:i + 100])
        serial = later[0].event.subject
        scan = httpx.post(f"{url}/v1/labels/{serial}/scans", json={"channel": "web", "region": "440305"}, timeout=30)
        assert scan.status_code == 200, scan.text
        accepted.append(scan.json()["scan_id"])
        stored = count(settings, "SELECT count(*) FROM ledger_events")
        assert stored >= len(cast.founding_events()) + 500
        assert projected(settings) == 100, "nothing new can reach the read model while the broker is down"
    finally:
        stack.start_kafka()

    # The relay and projector kept retrying (neither may exit), and catch up.
    wait_for(lambda: projected(settings) == 501 and count(settings, "SELECT coalesce(max(size), 0) FROM checkpoints") == len(accepted),
             180, 0.5, "the relay and projector to catch up (500 issued + 1 scan)")
    for svc in (relay, projector):
        assert svc.running(), f"{svc.name} exited by itself: {svc.log_path.read_text()[-2000:]}"
        svc.stop()
    assert_exactly_once(settings, accepted, audit_state=tmp_path / "audit.state")
    assert count(settings, "SELECT count(*) FROM verification.quarantine") == 0


# ------------------------------------------------------------ the database goes away


def database_ready(url: str) -> bool:
    try:
        return httpx.get(f"{url}/readyz", timeout=5).json().get("checks", {}).get("database") == "ok"
    except httpx.HTTPError:
        return False


def test_postgres_down_refuses_writes_clearly_and_writes_nothing(stack, services, tmp_path):
    settings = stack.fresh_settings()
    cast = Cast()
    url, api = start_api(services, settings, cast, tmp_path)
    post_accepted(url, cast.founding_events())
    serial = gs1.new_serial()
    post_accepted(url, [cast.issue(serial)])
    cast.keys["acme"].save(tmp_path / "acme.key")
    refused_batch = [cast.issue() for _ in range(50)]
    events_before = count(settings, "SELECT count(*) FROM ledger_events")
    inbox_before = count(settings, "SELECT count(*) FROM scan_inbox")

    stack.pg_ctl("stop", "-m", "fast")
    try:
        r = httpx.post(f"{url}/v1/events", json=events_body(refused_batch), timeout=120)
        assert r.status_code == 503, r.text[:1000]
        assert r.headers["content-type"].startswith(PROBLEM) and r.json()["code"] == "unavailable"
        assert "nothing was written" in r.json()["detail"]

        r = httpx.post(f"{url}/v1/labels/{serial}/scans", json={"channel": "web"}, timeout=60)
        assert r.status_code == 503 and r.headers["content-type"].startswith(PROBLEM), r.text[:1000]

        cli = subprocess.run(
            [sys.executable, "-m", "traceledger.cli", "issue", "--key", str(tmp_path / "acme.key"), "--gtin", gtin(),
             "--lot", "L1", "--product", "Battery", "--count", "3", "--out", str(tmp_path / "labels.csv"), "--api", url],
            capture_output=True, text=True, timeout=180, cwd=REPO_ROOT,
        )
        assert cli.returncode == 1, (cli.returncode, cli.stderr[-2000:])
        last_line = cli.stderr.strip().splitlines()[-1]
        assert "503" in last_line or "database unavailable" in last_line, cli.stderr[-2000:]
        assert "Traceback" not in cli.stderr
    finally:
        stack.pg_ctl("start")

    wait_for_api(api, url)
    assert api.running(), "the API survived the database restart"
    # Alive is not ready: a load balancer routes by /readyz, whose database check (and the
    # pool's purge of the connections the restart killed) says when writes can be answered.
    wait_for(lambda: database_ready(url), 60, what="the API's database check")
    assert count(settings, "SELECT count(*) FROM ledger_events") == events_before, "a refused write left events behind"
    assert count(settings, "SELECT count(*) FROM scan_inbox") == inbox_before
    ledger = Ledger(settings)
    try:
        heads = ledger.heads([("label", s.event.subject) for s in refused_batch])
        assert all(h is None for h in heads.values())
    finally:
        ledger.close()
    # The same signed batch goes through once the database is back, and the
    # gateway's scan recorder (whose connection died with the server) records scans again.
    post_accepted(url, refused_batch)
    r = httpx.post(f"{url}/v1/labels/{serial}/scans", json={"channel": "web"}, timeout=60)
    assert r.status_code == 200, r.text
    ledger = Ledger(settings)
    try:
        wait_for(lambda: ledger.head("label", serial)["seq"] == 1, 30, 0.5, "the scan recorder to record the scan")
    finally:
        ledger.close()


# ------------------------------------------------------------ a record too large for its topic


def test_record_over_the_topics_limit_halts_the_relay_clearly_without_a_gap(stack, services, tmp_path):
    from kafka import KafkaAdminClient
    from kafka.admin import ConfigResource, ConfigResourceType, NewTopic
    from kafka.record.default_records import DefaultRecordBatchBuilder

    from consumers.topics import topic_specs

    settings = stack.fresh_settings()
    cast = Cast()
    ledger = Ledger(settings)
    try:
        assert all(r.status == "accepted" for r in ledger.append(cast.founding_events()))
        before = [cast.issue(product="Battery") for _ in range(10)]
        big = cast.issue(product="Battery " + "x" * 190, region="440305")
        after = [cast.issue(product="Battery") for _ in range(10)]

        def size(signed):
            return DefaultRecordBatchBuilder.estimate_size_in_bytes(signed.event.subject.encode(), signed.envelope, [
                ("log_index", b"1234567"), ("notification_id", b"1234567"), ("event_id", signed.event.event_id.encode())])

        # A label topic whose limit every ordinary event fits and the big one does not.
        limit = (max(size(s) for s in before + after) + size(big)) // 2
        assert max(size(s) for s in before + after) < limit < size(big)
        admin = KafkaAdminClient(**settings.kafka_client_config())
        admin.create_topics([
            NewTopic(name, num_partitions=n, replication_factor=1, topic_configs={"max.message.bytes": str(limit)} if name == settings.label_topic else {})
            for name, n in topic_specs(settings).items()
        ])
        for batch in (before, [big], after):
            assert all(r.status == "accepted" for r in ledger.append(batch))

        relay = services("consumers.relay", settings, name="relay")
        wait_for(lambda: not relay.running(), 60, 0.5, "the relay to halt")
        assert relay.proc.returncode == 2
        halted = [line for line in relay.log_path.read_text().splitlines() if '"record_too_large"' in line]
        assert len(halted) == 1 and big.event.subject in halted[0] and big.event.event_id in halted[0], halted
        big_index = count(settings, "SELECT log_index FROM log_entries WHERE event_id = %s", big.event.event_id)
        assert f'"log_index": {big_index}' in halted[0]

        # Defined state: every entry before it is on Kafka once, nothing from it on.
        records = topic_records(settings, settings.label_topic) + topic_records(settings, settings.actor_topic)
        assert log_indexes(records) == list(range(big_index))

        # The operator raises the limit; the restarted relay resumes exactly there.
        admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, settings.label_topic, configs={"max.message.bytes": str(4 * limit)})])
        admin.close()
        relay.start()
        total = count(settings, "SELECT count(*) FROM ledger_events")
        wait_for(lambda: count(settings, "SELECT count(*) FROM log_entries") == total and
                 len(topic_records(settings, settings.label_topic)) == total - len(Cast.ROLES), 60, 1, "the relay to finish")
        assert assert_kafka_holds_the_log_once(settings) == total
    finally:
        ledger.close()


# ------------------------------------------------------------ a full disk


@pytest.fixture
def small_disk_settings(stack, tmp_path):
    """Settings on a database whose files live on a 12 MB tmpfs (a disk that fills up).

    Yields (settings, grow): ``grow(mb)`` enlarges the disk (the operator freeing space).
    """
    mount = stack.home / f"small-disk-{tmp_path.name[-12:]}"
    mount.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=12m,mode=0700", "tmpfs", str(mount)], check=True)
    subprocess.run(["chown", "postgres:postgres", str(mount)], check=True)
    space, db = "tl_small_disk", f"tl_fault_disk_{tmp_path.name[-6:].replace('-', '_')}".lower()
    try:
        stack.psql_superuser(f"CREATE TABLESPACE {space} OWNER traceledger LOCATION '{mount}'")
        stack.psql_superuser(f"CREATE DATABASE {db} OWNER traceledger TABLESPACE {space}")
        settings = stack.settings.with_(pg_db=db, topic_prefix=f"fault-{db}.", partitions=4)
        yield settings, lambda mb: subprocess.run(["mount", "-o", f"remount,size={mb}m", str(mount)], check=True)
    finally:
        stack.psql_superuser(f"DROP DATABASE IF EXISTS {db} WITH (FORCE)")
        stack.psql_superuser(f"DROP TABLESPACE IF EXISTS {space}")
        subprocess.run(["umount", str(mount)], check=False)
        mount.rmdir()


def test_disk_full_refuses_writes_clearly_and_corrupts_nothing(small_disk_settings, services, tmp_path):
    settings, grow = small_disk_settings
    cast = Cast()
    url, api = start_api(services, settings, cast, tmp_path)
    post_accepted(url, cast.founding_events())
    accepted: list = []
    refused = None
    for _ in range(60):  # 12 MB holds far fewer than 60,000 issued labels
        batch = [cast.issue() for _ in range(1000)]
        r = httpx.post(f"{url}/v1/events", json=events_body(batch), timeout=120)
        if r.status_code != 200:
            refused = (r, batch)
            break
        assert r.json()["refused"] == 0, r.text[:1000]
        accepted += batch
    assert refused is not None, "the small disk never filled up"
    r, batch = refused
    assert r.status_code == 503, r.text[:1000]
    assert r.headers["content-type"].startswith(PROBLEM) and r.json()["code"] == "disk_full"
    assert "nothing was written" in r.json()["detail"]
    assert api.running()

    # Nothing half-written, nothing damaged: every accepted label is there with an
    # intact chain, none of the refused batch is.
    grow(200)
    ledger = Ledger(settings)
    try:
        heads = ledger.heads([("label", s.event.subject) for s in accepted])
        assert all(h is not None and h["seq"] == 0 and not h["broken"] for h in heads.values())
        assert all(h is None for h in ledger.heads([("label", s.event.subject) for s in batch]).values())
        assert count(settings, "SELECT count(*) FROM ledger_events") == len(Cast.ROLES) + len(accepted)
    finally:
        ledger.close()
    # With space again, the same signed batch is accepted.
    post_accepted(url, batch)


# ------------------------------------------------------------ everything at once, at scale


class Issuer(threading.Thread):
    """Issues ``total`` labels through the API in batches of 1000, re-sending a
    batch until it is answered (the API may be dead or the database restarting).
    A re-sent batch that was stored before comes back ``duplicate``."""

    def __init__(self, url: str, cast: Cast, total: int):
        super().__init__(name="issuer", daemon=True)
        self.url, self.cast, self.total = url, cast, total
        self.issued: list[str] = []  # serials, once their batch is accepted
        self.accepted: list[str] = []  # event ids answered accepted, or duplicate (stored by an earlier try)
        self.resends = 0
        self.in_flight = threading.Event()  # a batch is sent and not yet answered
        self.error: BaseException | None = None

    def run(self):
        try:
            with httpx.Client(timeout=120) as client:
                for _ in range(self.total // 1000):
                    batch = [self.cast.issue() for _ in range(1000)]
                    self._send(client, batch)
                    self.accepted += [s.event.event_id for s in batch]
                    self.issued += [s.event.subject for s in batch]
        except BaseException as exc:  # noqa: BLE001 -- reported by the test
            self.error = exc

    def _send(self, client, batch):
        deadline = time.monotonic() + 180
        sent = [s.event.event_id for s in batch]
        while True:
            self.in_flight.set()
            try:
                r = client.post(f"{self.url}/v1/events", json=events_body(batch))
                if r.status_code == 200:
                    results = r.json()["results"]
                    assert [x["event_id"] for x in results] == sent, "the answer is not about the batch sent"
                    assert {x["status"] for x in results} <= {"accepted", "duplicate"}, r.text[:1000]
                    return
                assert r.status_code == 503, r.text[:1000]  # the database is restarting
            except httpx.TransportError:
                pass  # the API was killed: its supervisor restarts it
            finally:
                self.in_flight.clear()
            assert time.monotonic() < deadline, "a batch was not accepted within 180 s"
            self.resends += 1
            time.sleep(0.5)


class Scanner(threading.Thread):
    """Consumer scans of issued labels (and of made-up codes) while everything else happens."""

    def __init__(self, url: str, issuer: Issuer, seed: int):
        super().__init__(name="scanner", daemon=True)
        self.url, self.issuer, self.rng = url, issuer, random.Random(seed)
        self.accepted: dict[str, str] = {}  # scan id -> serial, for every scan answered 200
        self.made_up: list[str] = [gs1.new_serial() for _ in range(5)]
        self.in_flight = threading.Event()  # a scan is sent and not yet answered
        self.stop = threading.Event()
        self.error: BaseException | None = None

    def run(self):
        try:
            self._scan()
        except BaseException as exc:  # noqa: BLE001 -- reported by the test
            self.error = exc

    def _scan(self):
        with httpx.Client(timeout=30) as client:
            while not self.stop.is_set():
                if self.issuer.issued and self.rng.random() < 0.97:
                    serial = self.rng.choice(self.issuer.issued[:5000])  # a small set: repeated scans too
                else:
                    serial = self.rng.choice(self.made_up)
                self.in_flight.set()
                try:
                    # Many consumers (each within its per-client limits), as behind the loopback proxy.
                    consumer = {"x-forwarded-for": f"198.18.{self.rng.randrange(250)}.{self.rng.randrange(1, 251)}"}
                    r = client.post(f"{self.url}/v1/labels/{serial}/scans", headers=consumer,
                                    json={"channel": "web", "region": "310115", "session": f"s{self.rng.randrange(3)}"})
                    if r.status_code == 200:
                        self.accepted[r.json()["scan_id"]] = serial
                    else:
                        assert r.status_code == 503, r.text[:500]
                except httpx.TransportError:
                    time.sleep(0.2)
                finally:
                    self.in_flight.clear()
                time.sleep(0.02)


def detected(settings) -> int:
    """Label-topic records the detector has consumed (its stored offsets)."""
    return consumed(settings, "alerts")


def rows(settings, sql: str) -> list:
    with psycopg.connect(settings.pg_conninfo) as conn:
        return conn.execute(sql).fetchall()


def run_to_idle(module: str, settings, schema: str, log_path) -> subprocess.Popen:
    """Start building ``schema`` from scratch: ``python -m MODULE --schema S --until-idle``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRACELEDGER_")} | settings.to_env()
    with open(log_path, "ab") as out:
        return subprocess.Popen([sys.executable, "-m", module, "--schema", schema, "--until-idle"], env=env, cwd=REPO_ROOT, stdout=out, stderr=subprocess.STDOUT)


CHAOS_SEED = 2026
# Labels issued during the chaos run: `make test` runs a smaller one, `make soak` the full 100,000.
# 10,000 keep every planned kill inside the writing (the actions come 0.5-2 s apart whatever the
# size, the writing lasts far longer) and the oracle identical; the size only scales the drain,
# the audit and the rebuilds (issue 20: `make test` time).
CHAOS_LABELS = int(os.environ.get("CHAOS_LABELS", "10000"))


class Supervisor:
    """Restarts what the chaos killed, and records (to fail the test) whatever exited by itself."""

    def __init__(self, services: dict):
        self.services = services
        self.unprovoked: dict[str, list[str]] = {}  # name -> tail of its log at each exit nobody caused
        self.kills: list[tuple[str, int]] = []  # (victim, its backlog when killed)
        self.database_restarted_at = float("-inf")
        self.fenced = 0  # relay exits the database restart caused (consumers/single_writer.py)

    def fenced_by_the_restart(self, name: str, code: int, log_tail: str) -> bool:
        """The relay's single-writer guard ends it (exit 3) when its lock's session dies with the database: by design."""
        return (name == "relay" and code == 3 and "single_writer_lost" in log_tail
                and time.monotonic() - self.database_restarted_at < 30)

    def check(self) -> None:
        for name, svc in self.services.items():
            if not svc.running():
                tail = svc.log_path.read_text()[-1500:]
                if self.fenced_by_the_restart(name, svc.proc.returncode, tail):
                    self.fenced += 1
                else:
                    self.unprovoked.setdefault(name, []).append(f"exit {svc.proc.returncode}: {tail}")
                svc.start()

    def kill(self, name: str, backlog: int, pause: float) -> None:
        self.check()  # an exit before this kill was not ours
        self.kills.append((name, backlog))
        self.services[name].kill()
        time.sleep(pause)
        self.services[name].start()


def backlog(settings, name: str, clients: tuple[Issuer, Scanner]) -> int:
    """Work the victim had in hand when it was killed (> 0: the kill landed mid-stream)."""
    if name == "api":
        return sum(client.in_flight.is_set() for client in clients)
    stored = count(settings, "SELECT count(*) FROM ledger_events")
    indexed = count(settings, "SELECT count(*) FROM log_entries")
    if name == "relay":
        return stored - indexed + count(settings, "SELECT %s - coalesce(max(size), 0) FROM checkpoints", indexed)
    label_events = indexed - len(Cast.ROLES)
    return max(0, label_events - (projected(settings) if name == "projector" else detected(settings)))


def test_sigkills_and_restarts_during_a_chaos_run_lose_and_double_nothing(stack, services, tmp_path):
    rng = random.Random(CHAOS_SEED)
    settings = stack.fresh_settings(checkpoint_seconds=1.0)
    cast = Cast()
    founding = cast.founding_events()
    url, api = start_api(services, settings, cast, tmp_path)
    post_accepted(url, founding)
    supervisor = Supervisor({name: services(module, settings, name=name) for name, module in
                             [("relay", "consumers.relay"), ("projector", "consumers.projector"), ("detector", "consumers.detector")]})
    supervisor.services["api"] = api

    issuer = Issuer(url, cast, CHAOS_LABELS)
    scanner = Scanner(url, issuer, CHAOS_SEED)
    started = time.monotonic()
    issuer.start()
    scanner.start()

    # Seeded chaos: each service SIGKILLed 3 times at random moments, the database
    # server and the broker restarted once each. Nothing else may exit.
    actions = [name for name in supervisor.services for _ in range(3)] + ["postgres", "kafka"]
    rng.shuffle(actions)
    pace = max(1.0, CHAOS_LABELS / 100_000 * 5)  # the full run spreads its actions over more time
    next_action = time.monotonic() + rng.uniform(1, 3) * pace / 2
    while actions or issuer.is_alive():
        supervisor.check()
        if actions and time.monotonic() >= next_action:
            action = actions.pop()
            if action == "postgres":
                stack.pg_ctl("restart", "-m", "fast")
                supervisor.database_restarted_at = time.monotonic()
            elif action == "kafka":
                stack.restart_kafka()
            else:
                if action == "api":  # aim: kill the API while a batch or a scan is with it
                    issuer.in_flight.wait(5) or scanner.in_flight.wait(5)
                supervisor.kill(action, backlog(settings, action, (issuer, scanner)), rng.uniform(0, 0.5))
            next_action = time.monotonic() + rng.uniform(1, 4) * pace / 2
        time.sleep(0.25)
    issuer.join()
    assert issuer.error is None, repr(issuer.error)
    scanner.stop.set()
    scanner.join()
    assert scanner.error is None, repr(scanner.error)
    wrote = time.monotonic() - started

    # Everything drains: scans recorded, every event indexed, on Kafka, checkpointed, projected and detected.
    def drained():
        supervisor.check()
        inbox = rows(settings, "SELECT coalesce(max(id), 0) FROM scan_inbox")[0][0]
        stored = count(settings, "SELECT count(*) FROM ledger_events")
        indexed = count(settings, "SELECT count(*) FROM log_entries")
        if not ((ledger.app.recorder.max_tracking_id(scan_inbox.TRACKING_NAME) or 0) >= inbox and indexed == stored
                and count(settings, "SELECT coalesce(max(size), 0) FROM checkpoints") == stored):
            return False
        # A checkpoint covers only leaves acknowledged on Kafka: the topic is complete now. The
        # consumers have drained when they have read all of it; what they made of it (each event
        # once, none missing) is the exact oracle's to say, below, not a count to wait for in vain.
        on_topic = label_topic_size(settings)
        return consumed(settings, "verification") == on_topic and consumed(settings, "alerts") == on_topic

    ledger = Ledger(settings)
    try:
        wait_for(drained, 300, 1, "the pipeline to drain after the chaos")
    finally:
        ledger.close()
    drained_after = time.monotonic() - started
    for svc in supervisor.services.values():
        svc.stop()
    assert not supervisor.unprovoked, f"services exited by themselves: {supervisor.unprovoked}"
    # Each kind of kill landed at least once while its victim had work in hand.
    for name in ("relay", "projector", "detector", "api"):
        assert any(b > 0 for victim, b in supervisor.kills if victim == name), (name, supervisor.kills)

    # The exact oracle: what the clients were told, and nothing else, once everywhere.
    # A scan whose answer the API's death swallowed is still in the inbox and recorded:
    # the inbox (every scan of an issued label) is the scans' expected set, and every
    # scan a client was told was accepted is in it.
    issued = set(issuer.issued)
    inbox = {event_id for event_id, serial in rows(settings, "SELECT event_id, serial FROM scan_inbox") if serial in issued}
    told = {sid for sid, serial in scanner.accepted.items() if serial in issued}
    assert len(told) > 100 and told <= inbox, f"{len(told - inbox)} accepted scans are not in the inbox"
    expected = {s.event.event_id for s in founding} | set(issuer.accepted) | inbox
    assert len(issuer.accepted) == CHAOS_LABELS
    land = assert_exactly_once(settings, expected, schemas=("verification", "alerts"), audit_state=tmp_path / "audit.state")
    total = len(land.log)

    # Every read model equals a rebuild from scratch.
    rebuilds = [run_to_idle("consumers.projector", settings, "rebuilt", tmp_path / "rebuild-projector.log"),
                run_to_idle("consumers.detector", settings, "alerts_rebuilt", tmp_path / "rebuild-detector.log")]
    for proc in rebuilds:
        assert proc.wait(600) == 0
    rebuilt_after = time.monotonic() - started
    for table, order in [("labels", "serial"), ("lots", "gtin, lot"), ("events", "subject_type, subject, seq")]:
        live = rows(settings, f"SELECT * FROM verification.{table} ORDER BY {order}")
        assert live == rows(settings, f"SELECT * FROM rebuilt.{table} ORDER BY {order}"), f"verification.{table} differs from its rebuild"
    assert count(settings, "SELECT count(*) FROM verification.quarantine") == 0
    assert rows(settings, "SELECT sum(scan_count) FROM verification.labels")[0][0] == len(inbox)

    keep = "kind, dedupe_key, serial, state, sightings, evidence, detail"
    live_alerts = rows(settings, f"SELECT {keep} FROM alerts.alerts ORDER BY dedupe_key")
    assert live_alerts == rows(settings, f"SELECT {keep} FROM alerts_rebuilt.alerts ORDER BY dedupe_key"), "alerts differ from their rebuild"
    assert len(live_alerts) == len({a[1] for a in live_alerts}), "an alert was doubled"
    assert {a[0] for a in live_alerts} >= {"scan_before_ship", "unknown_code"}
    print(f"\nchaos run: {total} events, {len(inbox)} scans ({len(inbox) - len(told)} answers lost with the API), {len(live_alerts)} alerts; "
          f"written after {wrote:.0f} s, drained after {drained_after:.0f} s, rebuilt after {rebuilt_after:.0f} s; "
          f"batches re-sent {issuer.resends}; kills (victim, backlog) {supervisor.kills}")
