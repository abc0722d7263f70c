"""``make bench``: every benchmark, each figure next to a baseline from the same run.

    .venv/bin/python -m bench.run [--labels 1000000] [--growth-labels 10000] [--budget-minutes 17]
                                  [--rates 1000,2500,5000] [--projectors 2] [--api-workers 2] [--profile DIR]
    .venv/bin/python -m bench.run --labels 30000 --issuance-only [--profile DIR]   # issuance alone, figures as JSON

Needs the stack up (``make up``). Works in throw-away databases and topic
prefixes (``traceledger.sandbox``, dropped at the end) and starts its own API,
relay and projector processes. Sizes: a small run of ``--growth-labels``
labels, then the main run of ``--labels``, shrunk to what fits the time
budget at the cost per label the small run measured (the size used is
reported); both measure issuance, projection and audit (cost per event must
stay flat) and the GET latency at a fixed rate (it must not grow with the
number of labels). The main run then sweeps GET
and scan POST over ``--rates`` with an open-loop load from separate processes.

Writes ``bench/results/<timestamp>.json`` (commit, date, machine, every
figure) and ``bench/results/latest.md`` (figure | baseline | ratio | target | met?).
With ``--profile DIR``, the API, relay, projector and audit processes run under
py-spy and leave collapsed stacks (py-spy raw format, for speedscope or flamegraph.pl) in DIR;
``BENCH_PYSPY_ARGS="--gil"`` samples only the thread holding the GIL (where CPU goes, not waits).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import re
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import psycopg
from kafka import KafkaConsumer, TopicPartition
from nacl.signing import SigningKey

from bench.loadgen import percentile, run_open_loop
from ledger.batches import MAX_BATCH_LABELS
from ledger.config import REPO_ROOT, Settings
from traceledger import sandbox

RESULTS = REPO_ROOT / "bench" / "results"
PGBENCH = "/usr/lib/postgresql/15/bin/pgbench"
GTIN = "06901234000016"
PY = sys.executable


def say(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", flush=True)


# ------------------------------------------------------------------ machine


def machine() -> dict:
    """CPU, memory and the versions of Python, PostgreSQL and Kafka."""
    cpu_model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("model name")), platform.processor())
    mem_kb = next(int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines() if line.startswith("MemTotal"))
    with psycopg.connect(Settings.from_env().pg_conninfo) as conn:
        pg = conn.execute("SHOW server_version").fetchone()[0]
    pom = (REPO_ROOT / "ops" / "kafka" / "pom.xml").read_text()
    found = re.search(r"<kafka\.version>([\w.\-]+)</kafka\.version>", pom)
    kafka = found.group(1) if found else None
    return {
        "host": platform.node(), "cpus": os.cpu_count(), "cpu_model": cpu_model, "memory_gb": round(mem_kb / 1024**2, 1),
        "python": platform.python_version(), "postgresql": pg, "kafka": kafka, "load_avg_at_start": os.getloadavg(),
    }


def git_commit() -> str | None:
    out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True)
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO_ROOT, capture_output=True, text=True).stdout.strip()
    return (out.stdout.strip() + ("+dirty" if dirty else "")) or None


# ------------------------------------------------------------------ CPU accounting
# On a shared machine, wall-clock rates move with everyone else's load; the CPU
# seconds our own processes spend per event do much less. Both are reported.

_TICK = os.sysconf("SC_CLK_TCK")


def tree_cpu(root: int) -> float:
    """CPU seconds (user + system, all threads) of process ``root`` and its live descendants."""
    stats: dict[int, tuple[int, float]] = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            raw = Path(f"/proc/{d}/stat").read_text()
        except OSError:
            continue
        rest = raw[raw.rindex(")") + 2:].split()  # state, ppid, ... utime (14th field), stime (15th)
        stats[int(d)] = (int(rest[1]), (int(rest[11]) + int(rest[12])) / _TICK)
    tree, frontier = {root}, {root}
    while frontier:
        frontier = {pid for pid, (ppid, _) in stats.items() if ppid in frontier} - tree
        tree |= frontier
    return sum(stats[pid][1] for pid in tree if pid in stats)


def children_cpu() -> float:
    """CPU seconds of this process's reaped children so far."""
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def wait_cpu(p: subprocess.Popen) -> tuple[int, float]:
    """Wait for ``p``; (exit code, CPU seconds it and its reaped children used)."""
    _, status, ru = os.wait4(p.pid, 0)
    p.returncode = os.waitstatus_to_exitcode(status)
    return p.returncode, ru.ru_utime + ru.ru_stime


# ------------------------------------------------------------------ baselines


def ed25519_rates(n: int = 20000) -> dict:
    """Raw PyNaCl (libsodium) Ed25519 sign and verify rates, one core, 300-byte messages."""
    key = SigningKey.generate()
    msg = os.urandom(300)
    t = time.perf_counter()
    for _ in range(n):
        signed = key.sign(msg)
    sign = n / (time.perf_counter() - t)
    vk = key.verify_key
    t = time.perf_counter()
    for _ in range(n):
        vk.verify(signed)
    return {"sign_per_s": sign, "verify_per_s": n / (time.perf_counter() - t)}


def pin_hash_ms(n: int = 20) -> float:
    """Milliseconds per PIN hash (argon2id, t=2, m=4 MiB; ``ledger/pins.py`` documents ~4 ms).

    A benchmark figure, not a test: a wall-clock bound in a pass/fail test fails on a
    loaded machine and says nothing on a fast one."""
    from ledger import pins

    t = time.perf_counter()
    for _ in range(n):
        pins.hash_pin("S", "12345678")
    return (time.perf_counter() - t) / n * 1000


def plain_eventsourcing_rate(s: Settings, n: int) -> float:
    """Events/s of a plain eventsourcing save of unsigned one-event aggregates, batches of 1000."""
    from eventsourcing.application import Application
    from eventsourcing.domain import Aggregate

    class Plain(Aggregate):
        def __init__(self, serial: str, gtin: str, lot: str):
            self.serial, self.gtin, self.lot = serial, gtin, lot

    class PlainApp(Application):
        name = "benchplain"

    # The stock library as it comes, creating its own table in the run's throw-away database
    # (the ledger's tables come from the migrations; this baseline is not one of them).
    app = PlainApp(env={**s.eventsourcing_env(), "CREATE_TABLE": "yes"})
    try:
        t = time.perf_counter()
        for i in range(0, n, 1000):
            app.save(*[Plain(serial=f"S{i + j:019d}", gtin=GTIN, lot="PLAIN") for j in range(min(1000, n - i))])
        return n / (time.perf_counter() - t)
    finally:
        app.close()


def bare_consume_rate(s: Settings, n: int) -> float:
    """Records/s of a bare kafka-python loop reading the label topic (projector's consumer settings)."""
    consumer = KafkaConsumer(**s.kafka_client_config(), enable_auto_commit=False, max_poll_records=2000)
    try:
        tps = [TopicPartition(s.label_topic, p) for p in sorted(consumer.partitions_for_topic(s.label_topic))]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        seen = 0
        t = time.perf_counter()
        while seen < n:
            for recs in consumer.poll(timeout_ms=1000, max_records=2000).values():
                seen += len(recs)
        return seen / (time.perf_counter() - t)
    finally:
        consumer.close()


def pgbench(s: Settings, work: Path, rows: int, rate: float | None, seconds: float, clients: int = 8) -> dict:
    """``pgbench -S`` (prepared single-row lookups) on the same server: max tps, or at ``rate`` with latencies."""
    env = os.environ | {"PGPASSWORD": s.pg_password}
    conn = ["-h", s.pg_host, "-p", str(s.pg_port), "-U", s.pg_user, s.pg_db]
    if rate is None:
        scale = max(1, round(rows / 100_000))
        subprocess.run([PGBENCH, "-i", "-q", "-s", str(scale), "-I", "dtgvp", *conn], env=env, check=True, capture_output=True)
        out = subprocess.run([PGBENCH, "-S", "-M", "prepared", "-n", "-c", str(clients), "-j", "2", "-T", str(int(seconds)), *conn],
                             env=env, check=True, capture_output=True, text=True).stdout
        tps = float(next(line.split("=")[1].split()[0] for line in out.splitlines() if line.startswith("tps")))
        return {"tps": tps, "accounts": scale * 100_000, "clients": clients}
    logs = work / f"pgbench-{int(rate)}"
    logs.mkdir(exist_ok=True)
    subprocess.run([PGBENCH, "-S", "-M", "prepared", "-n", "-c", str(clients), "-j", "2", "-T", str(int(seconds)), "-R", str(rate), "-l",
                    "--log-prefix", str(logs / "log"), *conn], env=env, check=True, capture_output=True, text=True)
    lat = []
    for f in logs.iterdir():
        for line in f.read_text().splitlines():
            parts = line.split()  # client tx time_us script epoch epoch_us [lag_us]
            lat.append((int(parts[2]) + (int(parts[6]) if len(parts) > 6 else 0)) / 1e6)
    lat.sort()
    return {"offered_per_s": rate, "achieved_per_s": len(lat) / seconds, "p50_ms": percentile(lat, 50) * 1000,
            "p99_ms": percentile(lat, 99) * 1000, "p999_ms": percentile(lat, 99.9) * 1000}


# ------------------------------------------------------------------ a world


@dataclass
class World:
    """One throw-away ledger: database, topics, keys, API process."""

    base: Settings
    labels: int
    profile: Path | None = None
    api_workers: int = 2
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:8])
    procs: list = field(default_factory=list)

    def __post_init__(self):
        self.db = f"tl_bench_{self.run_id}"
        self.prefix = f"bench-{self.run_id}."
        self.work = Path(tempfile.mkdtemp(prefix="tl-bench-"))
        self.port = 8100 + int(self.run_id, 16) % 800
        sandbox.create_database(self.base, self.db)
        from ledger.keys import KeyPair

        KeyPair.generate("gateway").save(self.work / "gateway.key")
        self.s = self.base.with_(pg_db=self.db, topic_prefix=self.prefix, listen_port=self.port, api_url=f"http://127.0.0.1:{self.port}",
                                 gateway_key=self.work / "gateway.key", log_key=self.work / "log.key",
                                 api_workers=self.api_workers)
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("TRACELEDGER_")} | self.s.to_env()

    def spawn(self, name: str, *args: str, profile: bool = False) -> subprocess.Popen:
        cmd = [PY, *args]
        if profile and self.profile:
            cmd = [shutil.which("py-spy") or str(Path(PY).parent / "py-spy"), "record", "--nonblocking", "--subprocesses", "-r", "97", "-f", "raw",
                   *os.environ.get("BENCH_PYSPY_ARGS", "").split(), "-o",
                   str(self.profile / f"{name}-{self.labels}.txt"), "--", *cmd]
        p = subprocess.Popen(cmd, env=self.env, cwd=REPO_ROOT, stdout=open(self.work / f"{name}.log", "a"), stderr=subprocess.STDOUT)
        self.procs.append(p)
        return p

    def cli(self, *args: str, profile: str | None = None) -> str:
        """Run the CLI; with ``profile`` (a name) and ``--profile``, under py-spy like :meth:`spawn`."""
        cmd = [str(Path(PY).parent / "traceledger"), *args]
        if profile and self.profile:
            cmd = [shutil.which("py-spy") or str(Path(PY).parent / "py-spy"), "record", "-r", "97", "-f", "raw", "-o",
                   str(self.profile / f"{profile}-{self.labels}.txt"), "--", *cmd]
        out = subprocess.run(cmd, env=self.env, cwd=REPO_ROOT, capture_output=True, text=True)
        if out.returncode != 0:
            api_log = (self.work / "api.log").read_text()[-3000:] if (self.work / "api.log").exists() else ""
            raise SystemExit(f"traceledger {args[0]} failed ({out.returncode}): {out.stderr[-3000:]}\napi log: {api_log}")
        return out.stdout

    def start_api(self) -> None:
        self.api = self.spawn("api", "-m", "traceledger.api", profile=True)
        deadline = time.monotonic() + 180  # a shared, loaded machine can take a minute to import and migrate
        while time.monotonic() < deadline and self.api.poll() is None:
            try:
                c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=1)
                c.request("GET", "/healthz")
                if c.getresponse().status == 200:
                    return
            except OSError:
                time.sleep(0.2)
        log = (self.work / "api.log").read_text()[-3000:] if (self.work / "api.log").exists() else ""
        raise SystemExit(f"the bench API did not start (exit code {self.api.poll()}):\n{log}")

    def members(self) -> None:
        keys = self.work / "keys"
        self.cli("keygen", "--out", str(keys / "registrar.key"), "--actor", "registrar")
        self.cli("keygen", "--out", str(keys / "producer.key"), "--actor", "bench-producer")
        self.cli("init", "--key", str(keys / "registrar.key"), "--id", "registrar")
        self.cli("actor", "register", "--key", str(keys / "registrar.key"), "--id", "bench-producer", "--role", "producer",
                 "--name", "Bench producer", "--public-key", str(keys / "producer.key.pub"), "--gtin-prefix", "6901234")
        gw = self.work / "gateway.key"
        self.cli("actor", "register", "--key", str(keys / "registrar.key"), "--id", "gateway", "--role", "gateway",
                 "--name", "Bench gateway", "--public-key", str(gw) + ".pub")

    def label_end_offsets(self) -> int:
        consumer = KafkaConsumer(**self.s.kafka_client_config())
        try:
            parts = consumer.partitions_for_topic(self.s.label_topic) or set()
            tps = [TopicPartition(self.s.label_topic, p) for p in parts]
            return sum(consumer.end_offsets(tps).values()) if tps else 0
        finally:
            consumer.close()

    def stop(self, p: subprocess.Popen) -> None:
        if p.poll() is None:
            p.send_signal(signal.SIGINT if p.args[0].endswith("py-spy") else signal.SIGTERM)
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()

    def close(self) -> None:
        for p in self.procs:
            self.stop(p)
        sandbox.drop(self.base, [self.db], [self.prefix])
        shutil.rmtree(self.work, ignore_errors=True)


# ------------------------------------------------------------------ sections


def issuance(w: World) -> dict:
    """Issue ``w.labels`` through CLI + API with the relay running; until every label is on Kafka."""
    relay = w.spawn("relay", "-m", "consumers.relay", profile=True)
    before = w.label_end_offsets()
    api_cpu, cli_cpu = tree_cpu(w.api.pid), children_cpu()
    t = time.perf_counter()
    w.cli("issue", "--key", str(w.work / "keys" / "producer.key"), "--gtin", GTIN, "--lot", "BENCH1",
          "--product", "Bench battery", "--count", str(w.labels), "--out", str(w.work / "labels.csv"), profile="cli")
    issued_s = time.perf_counter() - t
    cli_cpu = children_cpu() - cli_cpu
    # The CLI issues batch events (event.v3) of up to MAX_BATCH_LABELS labels: one record each.
    while w.label_end_offsets() - before < -(-w.labels // MAX_BATCH_LABELS):
        if relay.poll() is not None:
            raise SystemExit(f"the relay exited; see {w.work / 'relay.log'}")
        time.sleep(0.1)
    relayed_s = time.perf_counter() - t
    api_cpu, relay_cpu = tree_cpu(w.api.pid) - api_cpu, tree_cpu(relay.pid)
    w.stop(relay)
    cpu = {"cli": cli_cpu / w.labels * 1e6, "api": api_cpu / w.labels * 1e6, "relay": relay_cpu / w.labels * 1e6}
    return {"labels": w.labels, "issued_per_s": w.labels / issued_s, "issued_and_relayed_per_s": w.labels / relayed_s,
            "us_per_label": relayed_s / w.labels * 1e6, "cpu_us_per_label": cpu, "cpu_us_per_label_total": sum(cpu.values())}


def projection(w: World, processes: int) -> dict:
    """``processes`` projector processes (one consumer group) over the label topic until idle; checks the model."""
    t = time.perf_counter()
    procs = [w.spawn(f"projector{i}", "-m", "consumers.projector", "--until-idle", profile=(i == 0)) for i in range(processes)]
    cpu = 0.0
    for i, p in enumerate(procs):
        code, used = wait_cpu(p)
        cpu += used
        if code != 0:
            raise SystemExit(f"projector {i} failed:\n" + (w.work / f"projector{i}.log").read_text()[-3000:])
    elapsed = time.perf_counter() - t
    with psycopg.connect(w.s.pg_conninfo) as conn:
        labels = conn.execute("SELECT count(*) FROM verification.labels").fetchone()[0]
        events = conn.execute("SELECT count(*) FROM verification.events").fetchone()[0]
        quarantined = conn.execute("SELECT count(*) FROM verification.quarantine").fetchone()[0]
    exact = labels == events == w.labels and quarantined == 0
    if not exact:
        raise SystemExit(f"projection not exactly-once: {labels} labels, {events} events, {quarantined} quarantined for {w.labels} issued")
    return {"events": w.labels, "processes": processes, "events_per_s": w.labels / elapsed, "us_per_event": elapsed / w.labels * 1e6,
            "cpu_us_per_event": cpu / w.labels * 1e6,
            "exactly_once_checked": exact}


def audit(w: World) -> dict:
    """``traceledger audit run`` over the whole log (actor + label topics, checkpoints). Its CPU
    includes its decoding worker processes (``consumers.decode_pool``, one per core)."""
    t, cpu = time.perf_counter(), children_cpu()
    args = [str(Path(PY).parent / "traceledger"), "--json", "audit", "run", "--state", str(w.work / "audit.state")]
    cmd = args
    if w.profile:
        cmd = [shutil.which("py-spy") or str(Path(PY).parent / "py-spy"), "record", "--subprocesses", "-r", "97", "-f", "raw", "-o", str(w.profile / f"audit-{w.labels}.txt"), "--", *args]
    out = subprocess.run(cmd, env=w.env, cwd=REPO_ROOT, capture_output=True, text=True)
    elapsed, cpu = time.perf_counter() - t, children_cpu() - cpu
    if out.returncode != 0:
        raise SystemExit(f"audit failed: {out.stderr[-2000:]}")
    report = json.loads(next(line for line in out.stdout.splitlines() if line.startswith("{")))
    return {"events": report["new_events"], "ok": report["ok"], "events_per_s": report["new_events"] / elapsed,
            "us_per_event": elapsed / max(1, report["new_events"]) * 1e6, "cpu_us_per_event": cpu / max(1, report["new_events"]) * 1e6}


def serials(w: World) -> list[str]:
    import csv

    with open(w.work / "labels.csv") as fh:
        return [row["serial"] for row in csv.DictReader(fh)]


def get_requests(all_serials: list[str]):
    def build(worker: int, k: int) -> bytes:
        serial = all_serials[(k * 7919 + worker * 104729) % len(all_serials)]
        return f"GET /v1/labels/{serial} HTTP/1.1\r\nHost: bench\r\nAccept: application/json\r\n\r\n".encode()
    return build


def scan_requests(all_serials: list[str]):
    body = b'{"channel": "web", "region": "440300"}'

    def build(worker: int, k: int) -> bytes:
        serial = all_serials[(k * 7919 + worker * 104729) % len(all_serials)]
        # Each scan from its own consumer (through the API's trusted loopback), as in the field: per-client limits apply.
        shopper = f"10.{worker % 250}.{k // 250 % 250}.{k % 250 + 1}"
        return (f"POST /v1/labels/{serial}/scans HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\n"
                f"X-Forwarded-For: {shopper}\r\nContent-Length: {len(body)}\r\n\r\n").encode() + body
    return build


def http_load(w: World, build, rate: float, seconds: float) -> dict:
    """Open-loop load on the API, plus the API's own CPU per answered request."""
    cpu = tree_cpu(w.api.pid)
    out = run_open_loop(w.port, build, rate=rate, seconds=seconds, processes=2, connections=32)
    out["api_cpu_us_per_request"] = (tree_cpu(w.api.pid) - cpu) / max(1, out["completed"]) * 1e6
    return out


# ------------------------------------------------------------------ report


TARGETS = {
    "issuance": ("labels/s", 20_000),
    "projection": ("events/s", 10_000),
}


def table_row(figure: str, value: str, baseline: str, ratio: float | None, target: str, met: bool | None) -> str:
    """One line of the report table: figure | value | baseline | ratio | target | met?"""
    return f"| {figure} | {value} | {baseline} | {'' if ratio is None else f'{ratio:.2f}×'} | {target} | {'' if met is None else ('yes' if met else 'no')} |"


def print_report(rows: list[tuple], raw: dict) -> None:
    """A section's table (rows as :func:`table_row` takes them) and its raw figures as JSON, on stdout."""
    print("| figure | value | baseline | ratio | target | met? |\n|---|---|---|---|---|---|")
    for cells in rows:
        print(table_row(*cells))
    print(json.dumps(raw, indent=2))


def projection_rows(n: int, proj: dict, bare_per_s: float, verify_us: float) -> tuple[tuple, tuple]:
    """The projection's two report rows (rate against bare consume, CPU per event against verify), as :func:`table_row` arguments."""
    return (
        (f"projection, {n:,} events, {proj['processes']} processes (exactly-once checked)", f"{proj['events_per_s']:,.0f} events/s ({proj['us_per_event']:,.0f} µs each)",
         f"bare kafka-python consume {bare_per_s:,.0f}/s", proj["events_per_s"] / bare_per_s, "≥ 10,000/s", proj["events_per_s"] >= 10_000),
        (f"projection CPU per event, {n:,} (all projector processes)", f"{proj['cpu_us_per_event']:,.0f} µs", f"verify {verify_us:,.0f} µs",
         verify_us / proj["cpu_us_per_event"], "", None),
    )


def markdown(res: dict) -> str:
    rows = []

    def row(*cells) -> None:
        rows.append(table_row(*cells))

    base = res["baselines"]
    for run in res["runs"]:
        n = run["labels"]
        iss, proj, aud = run["issuance"], run["projection"], run["audit"]
        row(f"issuance, {n:,} labels (signed, chained, stored, relayed)", f"{iss['issued_and_relayed_per_s']:,.0f} labels/s ({iss['us_per_label']:,.0f} µs each)",
            f"Ed25519 sign {base['ed25519']['sign_per_s']:,.0f}/s", iss["issued_and_relayed_per_s"] / base["ed25519"]["sign_per_s"], "≥ 20,000/s", iss["issued_and_relayed_per_s"] >= 20_000)
        row(f"issuance, {n:,} labels (signed, chained, stored)", f"{iss['issued_per_s']:,.0f} labels/s",
            f"plain eventsourcing save {base['plain_eventsourcing_per_s']:,.0f}/s", iss["issued_per_s"] / base["plain_eventsourcing_per_s"], "", None)
        row(*projection_rows(n, proj, run["bare_consume_per_s"], 1e6 / base["ed25519"]["verify_per_s"])[0])
        row(f"audit, {aud['events']:,} events", f"{aud['events_per_s']:,.0f} events/s ({aud['us_per_event']:,.0f} µs each)", f"Ed25519 verify {base['ed25519']['verify_per_s']:,.0f}/s",
            aud["events_per_s"] / base["ed25519"]["verify_per_s"], "≥ 0.5×", aud["events_per_s"] / base["ed25519"]["verify_per_s"] >= 0.5)
        cpu, sign_us, verify_us = iss["cpu_us_per_label"], 1e6 / base["ed25519"]["sign_per_s"], 1e6 / base["ed25519"]["verify_per_s"]
        row(f"issuance CPU per label, {n:,} (CLI / API / relay; PostgreSQL and Kafka not counted)",
            f"{iss['cpu_us_per_label_total']:,.0f} µs ({cpu['cli']:,.0f} / {cpu['api']:,.0f} / {cpu['relay']:,.0f})",
            f"sign + verify {sign_us + verify_us:,.0f} µs", (sign_us + verify_us) / iss["cpu_us_per_label_total"], "", None)
        row(*projection_rows(n, proj, run["bare_consume_per_s"], verify_us)[1])
        row(f"audit CPU per event, {n:,}", f"{aud['cpu_us_per_event']:,.0f} µs", f"verify {verify_us:,.0f} µs", verify_us / aud["cpu_us_per_event"], "", None)
        g = run["get_fixed_rate"]
        row(f"GET label at {g['offered_per_s']:,.0f}/s over {n:,} labels: p50 / p99", f"{g['p50_ms']:.2f} / {g['p99_ms']:.2f} ms",
            "", None, "flat with label count", None)
    from bench import batch_issuance  # it builds on this module's World

    for cells in batch_issuance.rows(res.get("batch_issuance", []), base["ed25519"]["sign_per_s"]):
        row(*cells)
    top = res["runs"][-1]
    pg = top["pgbench"]
    for kind in ("get", "scan"):
        for r in top.get(f"{kind}_sweep", []):
            b = pg["at_rate"].get(str(int(r["offered_per_s"])))
            met = r["achieved_per_s"] >= 0.99 * r["offered_per_s"] and r["p99_ms"] <= 10 and r["offered_per_s"] >= 5000 if kind == "get" else None
            row(f"{'GET /v1/labels/{serial}' if kind == 'get' else 'POST scans'} offered {r['offered_per_s']:,.0f}/s: achieved; p50/p99/p99.9",
                f"{r['achieved_per_s']:,.0f}/s; {r['p50_ms']:.1f}/{r['p99_ms']:.1f}/{r['p999_ms']:.1f} ms"
                + (f"; API CPU {r['api_cpu_us_per_request']:,.0f} µs/request" if "api_cpu_us_per_request" in r else ""),
                f"pgbench -S {b['achieved_per_s']:,.0f}/s; {b['p50_ms']:.2f}/{b['p99_ms']:.2f}/{b['p999_ms']:.2f} ms" if b else "",
                r["achieved_per_s"] / b["achieved_per_s"] if b else None,
                "p99 ≤ 10 ms at ≥ 5,000/s" if kind == "get" else "", met)
    row("pgbench -S max (8 clients, prepared)", f"{pg['max']['tps']:,.0f} tps", "", None, "", None)
    if "pin_hash_ms" in base:
        row("PIN hash (argon2id t=2, m=4 MiB), one core", f"{base['pin_hash_ms']:.1f} ms", "", None, "about 4 ms (0.5 to 100)",
            0.5 < base["pin_hash_ms"] < 100)
    m = res["machine"]
    head = (f"# traceledger bench {res['date']}\n\ncommit {res['commit']}; {m['cpus']} × {m['cpu_model']}, {m['memory_gb']} GB; "
            f"Python {m['python']}, PostgreSQL {m['postgresql']}, Kafka {m['kafka']}; load at start {m['load_avg_at_start'][0]:.2f}; "
            f"load during the runs {', '.join(f'{x:.1f}' for r in res['runs'] for x in r['load_avg'].values())}; "
            f"{res['seconds']:.0f} s in all. Main run: {res['main_size']['used']:,} labels ({res['main_size']['asked']:,} asked; "
            f"the size that fit the time budget).\n\n| figure | value | baseline | ratio | target | met? |\n|---|---|---|---|---|---|\n")
    return head + "\n".join(rows) + "\n"


# ------------------------------------------------------------------ main


def one_size(base: Settings, labels: int, args, *, sweep: bool) -> dict:
    w = World(base, labels, profile=args.profile, api_workers=args.api_workers)
    out: dict = {"labels": labels, "load_avg": {}}
    try:
        w.start_api()
        w.members()
        say(f"[{labels:,}] issuing through CLI + API, relay running ...")
        out["issuance"] = issuance(w)
        say(f"[{labels:,}] issuance: {out['issuance']['issued_per_s']:,.0f} labels/s stored, {out['issuance']['issued_and_relayed_per_s']:,.0f}/s on Kafka, "
            f"CPU {out['issuance']['cpu_us_per_label']}")
        out["load_avg"]["after_issuance"] = os.getloadavg()[0]
        out["bare_consume_per_s"] = bare_consume_rate(w.s, labels)
        say(f"[{labels:,}] bare kafka-python consume: {out['bare_consume_per_s']:,.0f} records/s")
        out["projection"] = projection(w, args.projectors)
        say(f"[{labels:,}] projection ({args.projectors} processes): {out['projection']['events_per_s']:,.0f} events/s, exactly-once checked, CPU {out['projection']['cpu_us_per_event']:,.0f} µs/event")
        out["audit"] = audit(w)
        say(f"[{labels:,}] audit: {out['audit']['events_per_s']:,.0f} events/s, CPU {out['audit']['cpu_us_per_event']:,.0f} µs/event")
        out["load_avg"]["after_audit"] = os.getloadavg()[0]
        ss = serials(w)
        http_load(w, get_requests(ss), 200, 2)  # warm-up: connections, prepared statements
        out["get_fixed_rate"] = http_load(w, get_requests(ss), args.fixed_rate, args.seconds)
        say(f"[{labels:,}] GET at {args.fixed_rate}/s: p50 {out['get_fixed_rate']['p50_ms']:.2f} ms, p99 {out['get_fixed_rate']['p99_ms']:.2f} ms")
        if sweep:
            out["pgbench"] = {"max": pgbench(w.s, w.work, labels, None, args.seconds), "at_rate": {}}
            say(f"pgbench -S max: {out['pgbench']['max']['tps']:,.0f} tps")
            for kind, build in (("get", get_requests(ss)), ("scan", scan_requests(ss))):
                out[f"{kind}_sweep"] = []
                for rate in args.rates:
                    r = http_load(w, build, rate, args.seconds)
                    out[f"{kind}_sweep"].append(r)
                    say(f"{kind} offered {rate}/s: achieved {r['achieved_per_s']:,.0f}/s, p50 {r['p50_ms']:.1f} p99 {r['p99_ms']:.1f} "
                        f"p99.9 {r['p999_ms']:.1f} ms, errors {r['errors']}, timeouts {r['timeouts']}, statuses {r['statuses']}")
                    if str(int(rate)) not in out["pgbench"]["at_rate"]:
                        b = out["pgbench"]["at_rate"][str(int(rate))] = pgbench(w.s, w.work, labels, rate, args.seconds)
                        say(f"pgbench -S at {rate}/s: p50 {b['p50_ms']:.2f} p99 {b['p99_ms']:.2f} p99.9 {b['p999_ms']:.2f} ms")
    finally:
        w.close()
    return out


def issuance_only(base: Settings, args) -> None:
    """``--issuance-only``: one world, members, issuance of ``--labels``; figures printed as JSON."""
    w = World(base, args.labels, profile=args.profile, api_workers=args.api_workers)
    try:
        w.start_api()
        w.members()
        say(f"[{args.labels:,}] issuing through CLI + API, relay running ...")
        print(json.dumps(issuance(w), indent=2), flush=True)
    finally:
        w.close()


def projection_only(base: Settings, args) -> None:
    """``--projection-only``: one world, issuance of ``--labels``, then the bare consume baseline and the
    projection (``--projectors`` processes), each figure next to its baseline as in the report table."""
    w = World(base, args.labels, profile=args.profile, api_workers=args.api_workers)
    try:
        w.start_api()
        w.members()
        say(f"[{args.labels:,}] issuing through CLI + API, relay running ...")
        issuance(w)
        bare = bare_consume_rate(w.s, args.labels)
        verify_us = 1e6 / ed25519_rates(5000)["verify_per_s"]
        proj = projection(w, args.projectors)
        print("| figure | value | baseline | ratio | target | met? |\n|---|---|---|---|---|---|")
        for cells in projection_rows(args.labels, proj, bare, verify_us):
            print(table_row(*cells), flush=True)
    finally:
        w.close()


def consumer_path_run(args) -> dict:
    """The consumer path under wrk next to a same-run hello (:mod:`bench.consumer_path`); prints its table."""
    from bench import consumer_path

    out = consumer_path.run(argparse.Namespace(labels=args.consumer_labels, api_workers=args.api_workers, seconds=args.seconds,
                                               kinds=list(consumer_path.TARGETS), profile=args.profile))
    out["overload"] = consumer_path.overload_run(args.consumer_labels, args.api_workers)  # 3× capacity, 30 s (issue 21)
    print(consumer_path.report(out), flush=True)
    return out


def sweep_seconds(args) -> float:
    """Wall time of the main run's fixed parts: HTTP sweeps, pgbench, warm-ups (with start-up slack)."""
    loads = 2 * len(args.rates) + len(args.rates) + 2  # GET and scan sweeps, pgbench per rate, pgbench max + fixed rate
    return loads * (args.seconds + 4) + 30


def fitting_size(args, per_label_s: float, budget_left: float) -> int:
    """The largest main-run size (≤ --labels) whose per-label work plus sweeps fit ``budget_left`` s."""
    room = budget_left - sweep_seconds(args) - 60  # a minute of slack for start-up and clean-up
    fits = int(room / per_label_s) if per_label_s > 0 else args.labels
    return max(min(args.labels, fits), 2 * args.growth_labels, 1000)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--labels", type=int, default=1_000_000, help="labels of the main run (shrunk to fit --budget-minutes)")
    ap.add_argument("--growth-labels", type=int, default=10_000,
                    help="labels of the first, small run (0: none); the main run's size over this is the growth factor")
    ap.add_argument("--projectors", type=int, default=2, help="projector processes (one consumer group)")
    ap.add_argument("--api-workers", type=int, default=2, help="API worker processes (TRACELEDGER_API_WORKERS)")
    ap.add_argument("--rates", default="1000,2500,5000", help="offered request rates of the HTTP sweeps")
    ap.add_argument("--fixed-rate", type=float, default=200, help="GET rate of the growth comparison")
    ap.add_argument("--seconds", type=float, default=10, help="length of each HTTP / pgbench load")
    ap.add_argument("--budget-minutes", type=float, default=17,
                    help="shrink the main run to fit this wall time (sizes are reported); 17 leaves a fresh machine's set-up room within 20")
    ap.add_argument("--profile", type=Path, help="write py-spy flame graphs of the API, relay, projector and audit here")
    ap.add_argument("--issuance-only", action="store_true",
                    help="only issue --labels through CLI + API + relay and print its figures (a short loop for tuning; writes no report)")
    ap.add_argument("--consumer-labels", type=int, default=5000, help="labels of the consumer-path run (bench/consumer_path.py; 0: skip it)")
    ap.add_argument("--consumer-path-only", action="store_true",
                    help="only the consumer-path run: wrk on the label GET, the QR page and scans next to a same-run hello")
    ap.add_argument("--projection-only", action="store_true",
                    help="only issue --labels, then project them; print the two projection rows (a short loop for tuning; writes no report)")
    args = ap.parse_args(argv)
    args.rates = [float(r) for r in args.rates.split(",") if r]
    if args.profile:
        args.profile.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    base = Settings.from_env()
    if args.issuance_only:
        issuance_only(base, args)
        return
    if args.projection_only:
        projection_only(base, args)
        return
    if args.consumer_path_only:
        consumer_path_run(args)
        return
    res: dict = {"date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "commit": git_commit(), "machine": machine(),
                 "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}}
    say(f"machine: {res['machine']}")
    res["baselines"] = {"ed25519": ed25519_rates(), "pin_hash_ms": pin_hash_ms()}
    say(f"baseline Ed25519: sign {res['baselines']['ed25519']['sign_per_s']:,.0f}/s, verify {res['baselines']['ed25519']['verify_per_s']:,.0f}/s")
    scratch = World(base, 0)
    try:
        res["baselines"]["plain_eventsourcing_per_s"] = plain_eventsourcing_rate(scratch.s, min(args.labels, 50_000))
    finally:
        scratch.close()
    say(f"baseline plain eventsourcing save: {res['baselines']['plain_eventsourcing_per_s']:,.0f} events/s")
    # Issue 16's figure: 100,000 labels (fewer if --labels is smaller) through the CLI until the
    # last answers genuine, plain and with PINs, next to this run's Ed25519 sign rate.
    from bench import batch_issuance  # it builds on this module's World

    res["batch_issuance"] = batch_issuance.run(base, min(args.labels, 100_000), api_workers=args.api_workers)
    res["runs"] = []
    main_size = args.labels
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # clean up the throw-away databases and topics on SIGTERM too
    if 0 < args.growth_labels < args.labels:
        small = one_size(base, args.growth_labels, args, sweep=False)
        res["runs"].append(small)
        per_label = (small["issuance"]["us_per_label"] + small["projection"]["us_per_event"] + small["audit"]["us_per_event"]
                     + 1e6 / small["bare_consume_per_s"]) / 1e6
        main_size = fitting_size(args, per_label, budget_left=args.budget_minutes * 60 - (time.perf_counter() - started))
        if main_size < args.labels:
            say(f"the main run gets {main_size:,} labels, not {args.labels:,}: that is what fits the {args.budget_minutes}-minute budget "
                f"at {per_label * 1e6:,.0f} µs per label measured in the {args.growth_labels:,}-label run")
    res["main_size"] = {"asked": args.labels, "used": main_size}
    res["runs"].append(one_size(base, main_size, args, sweep=True))
    res["seconds"] = time.perf_counter() - started
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%S")
    (RESULTS / f"{stamp}.json").write_text(json.dumps(res, indent=2, default=str))
    md = markdown(res)
    if args.consumer_labels:
        from bench.consumer_path import report as consumer_report

        res["consumer_path"] = consumer_path_run(args)
        md += "\n" + consumer_report(res["consumer_path"]) + "\n"
        (RESULTS / f"{stamp}.json").write_text(json.dumps(res, indent=2, default=str))
    (RESULTS / "latest.md").write_text(md)
    print(md)
    say(f"saved bench/results/{stamp}.json and bench/results/latest.md ({res['seconds']:.0f} s)")


if __name__ == "__main__":
    main()
