"""The exact oracle of README's invariant 4, "nothing lost, nothing doubled".

Counting is not enough: a lost event and a doubled one cancel out in a count.
Every recovery test therefore collects the identities its clients were told
were accepted (event ids from ``/v1/events`` results, scan ids from the scan
route, which are the ``Scanned`` events' ids) and :func:`assert_exactly_once`
compares them, as sets and in order, with every place the event must be:

- the event store (each event id once, exactly the accepted ones);
- the log (``log_entries``): indexes 0..n-1, no gap, no repeat, in the
  store's commit order (notification ids ascending);
- Kafka (label and actor topics): each (log index, event id) exactly once;
- each read model schema (``verification``, the detector's ``alerts``): the
  label topic's events, each once, under the right log index;
- the auditor (Kafka and the log's public key only): passes, has audited
  exactly n events, and every checkpoint in the ``checkpoints`` table is one
  it verified, the latest covering all n.

:func:`assert_rebuild_equals_live` adds the last check: a read model rebuilt
from scratch equals the one that lived through the crashes.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import psycopg

from consumers.auditor import Auditor, Report
from ledger.config import Settings
from ledger.events import decode_signed
from ledger.keys import KeyPair
from ledger.record_headers import header
from ledger.store import LedgerApplication
from tests.pipeline import project_all, topic_records

__all__ = ["Landscape", "assert_exactly_once", "assert_rebuild_equals_live", "audit", "rows", "stored_events", "survey"]


def rows(settings: Settings, sql: str, *args) -> list[tuple]:
    with psycopg.connect(settings.pg_conninfo) as conn:
        return conn.execute(sql, args).fetchall()


@dataclass
class Landscape:
    """Where every event is, by identity: the store, the log, Kafka, the read models."""

    stored: list[tuple[str, str, str]]  # (event id, subject type, subject), in commit (notification) order
    log: list[tuple[int, str]]  # (log index, event id) by log index
    kafka: list[tuple[int, str]]  # (log index, event id) of every relayed record on the event topics, sorted
    projected: dict[str, list[tuple[int, str]]]  # schema -> (log index, event id) of its events table, sorted
    batch_sizes: dict[str, int]  # batch event id -> labels it issued (label_heads), each one row of a read model

    @property
    def label_log(self) -> list[tuple[int, str]]:
        """The log entries of label and lot events (what the projectors consume), a batch event once per label."""
        actor_ids = {event_id for event_id, subject_type, _ in self.stored if subject_type == "actor"}
        return [(i, e) for i, e in self.log if e not in actor_ids for _ in range(self.batch_sizes.get(e, 1))]


def stored_events(settings: Settings) -> list[tuple[str, str, str]]:
    """(event id, subject type, subject) of every event in the write model, in notification order."""
    app = LedgerApplication(env=settings.eventsourcing_env())
    try:
        out, start = [], 1
        while True:
            page = app.recorder.select_notifications(start, 5000)
            if not page:
                return out
            for n in page:
                e = decode_signed(*app.signed_parts(n)).event
                out.append((e.event_id, e.subject_type, e.subject))
            start = page[-1].id + 1
    finally:
        app.close()


def kafka_entries(settings: Settings) -> list[tuple[int, str]]:
    """(log index, event id) of every record on the label and actor topics, sorted (duplicates kept)."""
    records = topic_records(settings, settings.label_topic) + topic_records(settings, settings.actor_topic)
    return sorted((int(header(r, "log_index")), header(r, "event_id").decode()) for r in records)


def survey(settings: Settings, schemas: tuple[str, ...] = ("verification",)) -> Landscape:
    return Landscape(
        stored=stored_events(settings),
        log=[(i, e) for i, e in rows(settings, "SELECT log_index, event_id FROM log_entries ORDER BY log_index")],
        kafka=kafka_entries(settings),
        projected={s: sorted(rows(settings, f"SELECT log_index, event_id FROM {s}.events")) for s in schemas},
        batch_sizes=dict(rows(settings, "SELECT batch_event, count(*) FROM label_heads GROUP BY batch_event")),
    )


def audit(settings: Settings, state_path: Path) -> Report:
    """A fresh audit run from Kafka and the log's public key alone."""
    key = KeyPair.load(settings.log_key_path)
    return Auditor(settings, key.public_key, state_path=state_path, processes=0).run()


def assert_exactly_once(settings: Settings, accepted: set[str] | list[str], *, schemas: tuple[str, ...] = ("verification",),
                        audit_state: Path | None = None) -> Landscape:
    """Every accepted event exactly once everywhere, and nothing else anywhere (see the module doc).

    ``accepted``: event ids the test's clients were told were accepted (or ``duplicate``,
    i.e. stored by an earlier try). ``audit_state``: run the auditor too (a path for its
    state file); the relay must have published its checkpoint of the whole log by then.
    """
    accepted = set(accepted)
    assert len(accepted) == len(list(accepted))
    land = survey(settings, schemas)
    stored_ids = [e for e, _, _ in land.stored]
    doubled = len(stored_ids) - len(set(stored_ids))
    assert doubled == 0, f"{doubled} events stored twice"
    lost, invented = accepted - set(stored_ids), set(stored_ids) - accepted
    assert not lost and not invented, f"store vs accepted: {len(lost)} lost {sorted(lost)[:3]}, {len(invented)} never accepted {sorted(invented)[:3]}"

    n = len(stored_ids)
    assert [i for i, _ in land.log] == list(range(n)), "the log has a gap, a repeat or entries beyond the store"
    assert [e for _, e in land.log] == stored_ids, "the log's order is not the store's commit order"
    assert land.kafka == land.log, _diff("Kafka", land.kafka, land.log)
    for schema, projected in land.projected.items():
        assert projected == land.label_log, _diff(f"read model {schema}", projected, land.label_log)

    if audit_state is not None:
        report = audit(settings, audit_state)
        assert report.ok, [f.line() for f in report.failures][:10]
        assert report.new_events == n and report.state.tree.size == n, (report.new_events, report.state.tree.size, n)
        assert report.waiting_records == 0
        table = rows(settings, "SELECT size, root FROM checkpoints ORDER BY id")
        assert table and table[-1][0] == n, f"the latest checkpoint covers {table[-1][0] if table else 0} of {n} entries"
        unverified = [size for size, root in table if report.state.roots.get(size) != bytes(root)]
        assert not unverified, f"checkpoints in the table the auditor did not verify from the topic: sizes {unverified}"
        assert report.state.latest.size == n
    return land


def _diff(where: str, got: list, want: list) -> str:
    extra, missing = sorted(set(got) - set(want)), sorted(set(want) - set(got))
    doubled = len(got) - len(set(got))
    return f"{where} vs the log: {len(missing)} missing {missing[:3]}, {len(extra)} extra {extra[:3]}, {doubled} doubled"


READ_MODEL_TABLES = [("labels", "serial"), ("lots", "gtin, lot"), ("events", "subject_type, subject, seq")]


def assert_rebuild_equals_live(settings: Settings, live: str = "verification", rebuilt: str = "rebuilt") -> None:
    """A read model rebuilt from the topic equals the one that lived through the crashes, row for row."""
    project_all(settings, schema=rebuilt)
    for table, order in READ_MODEL_TABLES:
        assert rows(settings, f"SELECT * FROM {live}.{table} ORDER BY {order}") == \
            rows(settings, f"SELECT * FROM {rebuilt}.{table} ORDER BY {order}"), f"{live}.{table} differs from its rebuild"
    quarantined = rows(settings, f"SELECT * FROM {live}.quarantine LIMIT 3")
    assert not quarantined, f"records quarantined in {live} (a redelivery taken for a fork, a record refused): {quarantined}"
