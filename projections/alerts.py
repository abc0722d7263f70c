"""The alerts read model: diversion and counterfeit alerts from the event stream.

:class:`AlertDetector` is a :class:`consumers.exactly_once.TransactionalConsumer`
handler on ``label-events`` with its own consumer group and schema (default
``alerts``). It does not re-implement verification: it wraps a
:class:`projections.verification.VerificationProjector` on its own schema,
so every record is re-verified by the very same code (decoding, signer as of
the log index, signature, chain link, lifecycle rules) and the detector gets
the label's lifecycle state before and after each event. On top of that it
keeps a small :class:`projections.detection.Watch` per label and turns the
pure rules' findings into alerts, all in the consumer's transaction.

One incident, one alert: findings carry a key (``kind:serial``, or
``unknown_code:channel:city`` for made-up codes); an open or acknowledged
alert with that key is updated with the new evidence instead of a new alert
being raised. A resolved alert is closed history: a new incident after it
opens a new alert. Every alert has a stable id, a keyed hash of its incident key
and first evidence event (:func:`ledger.alert_owners.alert_id`), so a rebuilt
detector gives it the same id but nobody can compute it from the log, and is
registered with its producer (:func:`ledger.alert_owners.register`), so the
ledger refuses transitions that name anyone else; people move
it on (acknowledged, resolved) by signed ledger events on its own ``alert``
chain, which come through ``label-events`` too and are applied by
:mod:`projections.alert_transitions`.

Unknown codes never reach Kafka (the scan gateway only signs scans of issued
labels; the others stay in ``scan_inbox``), so :class:`UnknownCodeTail` reads
``scan_inbox`` by id, asks the write model whether each serial it does not
know exists, and clusters the never-issued ones by channel and city. Its
position is stored in the same transaction as the alerts it writes.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Callable

import psycopg
from psycopg.types.json import Jsonb

from ledger import alert_owners, regions, scan_inbox
from ledger.lifecycle import LabelState
from ledger.logging_setup import get_logger
from ledger.registry import ActorSource
from projections import alert_transitions
from projections.alert_transitions import Transition
from projections.detection import Finding, Watch, evaluate
from projections.detection_config import DetectionConfig
from projections.verification import Applied, VerificationProjector

log = get_logger("detector")

DEFAULT_SCHEMA = "alerts"
STATES = ("open", "acknowledged", "resolved")
RESOLUTIONS = ("false_positive", "confirmed")
INBOX = "scan_inbox"


# ------------------------------------------------------------------ writing alerts


def _upsert_sql(s: str, cap: int, *, append: bool) -> str:
    """Insert an alert, or update the open one of the same incident.

    ``append``: label findings add their evidence (distinct event ids in
    first-seen order, capped) and count a sighting; unknown-code clusters are
    recomputed from their scans and replace both.
    """
    if append:
        evidence = (
            f"(SELECT array_agg(e ORDER BY o) FROM (SELECT e, min(o) AS o FROM unnest({s}.alerts.evidence || EXCLUDED.evidence) "
            f"WITH ORDINALITY AS u(e, o) GROUP BY e ORDER BY min(o) LIMIT {cap}) d)"
        )
        sightings = f"{s}.alerts.sightings + EXCLUDED.sightings"
    else:
        evidence, sightings = "EXCLUDED.evidence", "EXCLUDED.sightings"
    return (
        f"INSERT INTO {s}.alerts (alert_id, dedupe_key, kind, severity, serial, producer, gtin, region, province, lat, lon, gateway, "
        "evidence, sightings, first_seen, last_seen, detail) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) "
        f"ON CONFLICT (dedupe_key) WHERE state <> 'resolved' DO UPDATE SET evidence = {evidence}, sightings = {sightings}, "
        f"severity = EXCLUDED.severity, first_seen = least({s}.alerts.first_seen, EXCLUDED.first_seen), "
        f"last_seen = greatest({s}.alerts.last_seen, EXCLUDED.last_seen), detail = EXCLUDED.detail, updated_at = now()"
    )


@dataclass
class _Incident:
    """Findings of one key within a batch, merged before they are written."""

    first: Finding
    last: Finding
    event_ids: list[str]
    sightings: int

    def row(self, key: bytes, cap: int) -> tuple:
        """The alert row; its id (``key``: :func:`ledger.alert_owners.secret`) is kept by an open alert it updates."""
        f, last = self.first, self.last
        first_seen = min(f.occurred_at, last.occurred_at)
        last_seen = max(f.occurred_at, last.occurred_at)
        return (
            alert_owners.alert_id(key, f.key, self.event_ids[0]), f.key, f.kind, last.severity, f.serial, f.producer, f.gtin, last.region, regions.province(last.region),
            last.lat, last.lon, last.gateway, self.event_ids[:cap], self.sightings, first_seen, last_seen,
            Jsonb({**last.detail, "evidence": last.evidence} if last.evidence else last.detail),
        )


def merge_findings(findings: list[Finding]) -> dict[str, _Incident]:
    """Group findings by incident key, keeping distinct evidence in order."""
    out: dict[str, _Incident] = {}
    for f in findings:
        inc = out.get(f.key)
        if inc is None:
            out[f.key] = _Incident(f, f, list(dict.fromkeys(f.event_ids)), 1)
            continue
        inc.last = f
        inc.sightings += 1
        inc.event_ids.extend(e for e in f.event_ids if e not in inc.event_ids)
    return out


# ------------------------------------------------------------------ the handler


class AlertDetector:
    """TransactionalConsumer handler: verify (via VerificationProjector), detect, alert."""

    def __init__(self, schema: str, feed: ActorSource, config: DetectionConfig | None = None, *, signed: bool = False):
        self.s = schema
        self.signed = signed  # the detector signs AlertRaised: new alerts are registered pending their raise
        self.cfg = config or DetectionConfig()
        self.verifier = VerificationProjector(schema, feed)
        self.verifier.keep_steps = True  # judge each label of a batch movement like its single event
        self.watches: dict[str, Watch] = {}
        self.dirty: set[str] = set()
        self.lots: dict[str, bool] = {}
        self.findings: list[Finding] = []
        self.transitions: list[Transition] = []
        self.alert_sql = _upsert_sql(schema, self.cfg.evidence_cap, append=True)
        self.key: bytes | None = None  # of alert ids, read from the database on first use

    def prepare(self, cur: psycopg.Cursor, records: list) -> None:
        """Load the batch's labels, lots (through the verifier) and watches."""
        self.verifier.prepare(cur, records)
        self.watches, self.dirty, self.lots, self.findings, self.transitions = {}, set(), {}, [], []
        serials = [subject for (kind, subject), row in self.verifier.rows.items() if kind == "label" and row is not None]
        if serials:
            cur.execute(f"SELECT serial, data FROM {self.s}.watch WHERE serial = ANY(%s)", (serials,))
            self.watches = {serial: Watch.from_json(data) for serial, data in cur.fetchall()}
        # A lot has a chain (a row) only once it is recalled: there are few, load them all
        # rather than ask per label (labels first seen in this batch have no row to join).
        cur.execute(f"SELECT gtin || '/' || lot FROM {self.s}.lots WHERE recalled")
        self.lots = {key: True for (key,) in cur.fetchall()}

    def _lot_recalled(self, cur: psycopg.Cursor, state: LabelState) -> bool:
        key = f"{state.gtin}/{state.lot}"
        row = self.verifier.rows.get(("lot", key))
        if row is not None:  # the lot's chain is in this batch: its latest state
            return row.state.recalled
        return key in self.lots

    def __call__(self, cur: psycopg.Cursor, record) -> None:
        applied = self.verifier(cur, record)  # raises Refused (quarantine) before any effect
        if applied is None:  # delivered before, or a batch event: a movement is judged label by label
            for step in self.verifier.last_steps:
                self._judge(cur, record, step)
            return
        if applied.signed.event.subject_type == "alert":
            where = dict(topic=record.topic, partition=record.partition, offset=record.offset)
            self.transitions.append(Transition.of(applied.signed.event, applied.log_index, where))
            return
        self._judge(cur, record, applied)

    def _judge(self, cur: psycopg.Cursor, record, applied: Applied) -> None:
        """The findings of one label event (or one label's step in a batch movement)."""
        if applied.signed.event.subject_type != "label" or applied.before is None:
            return
        e = applied.signed.event
        before = applied.before
        watch = self.watches.get(e.subject, Watch())
        new_watch, findings = evaluate(before, watch, e, applied.signer.role, self.cfg, lot_recalled=self._lot_recalled(cur, before))
        if new_watch != watch:
            self.watches[e.subject] = new_watch
            self.dirty.add(e.subject)
        for f in findings:
            log.info("alert_evidence", kind=f.kind, serial=e.subject, event_id=e.event_id, topic=record.topic,
                     partition=record.partition, offset=record.offset, region=f.region)
        self.findings.extend(findings)

    def changed_subjects(self) -> set[str]:
        """The verifier's subjects written since the last call (parked records wait for them)."""
        return self.verifier.changed_subjects()

    def flush(self, cur: psycopg.Cursor) -> None:
        """Write the verifier's rows, changed watches, merged alerts, then apply alert transitions."""
        self.verifier.flush(cur)
        if self.dirty:
            cur.executemany(
                f"INSERT INTO {self.s}.watch (serial, data) VALUES (%s, %s) ON CONFLICT (serial) DO UPDATE SET data = EXCLUDED.data",
                [(serial, Jsonb(self.watches[serial].as_json())) for serial in self.dirty],
            )
        if self.findings:
            incidents = merge_findings(self.findings)
            if self.key is None:
                self.key = alert_owners.secret(cur)
            cur.executemany(self.alert_sql, [inc.row(self.key, self.cfg.evidence_cap) for inc in incidents.values()])
            raised = alert_owners.register(cur, self.s, incidents, signed=self.signed)
            # Transitions read before their alert was raised (another partition) apply now.
            alert_transitions.apply_pending(cur, self.s, raised)
        if self.transitions:
            alert_transitions.record(cur, self.s, self.transitions)
        self.dirty, self.findings, self.transitions = set(), [], []


# ------------------------------------------------------------------ unknown codes


def cluster_of(channel: str, region: str | None) -> str:
    """The incident key of an unknown-code scan: its channel and city."""
    return f"unknown_code:{channel}:{regions.city(region) or 'unknown'}"


class UnknownCodeTail:
    """Reads ``scan_inbox`` by id and raises ``unknown_code`` alerts per cluster.

    Known-or-not is asked of the write model (``exists``), the authority the
    scan gateway itself used, so a detector that lags on Kafka cannot mistake
    a freshly issued label for a made-up one.
    """

    def __init__(self, schema: str, config: DetectionConfig, conn: Callable[[], psycopg.Connection],
                 exists: Callable[[list[str]], set[str]], batch: int = 2000, *, signed: bool = False):
        self.s = schema
        self.signed = signed
        self.cfg = config
        self.conn = conn
        self.exists = exists
        self.batch = batch
        self.alert_sql = _upsert_sql(schema, config.evidence_cap, append=False)
        self.key: bytes | None = None  # of alert ids, read from the database on first use

    def poll(self) -> int:
        """Handle the next inbox rows; return how many were read."""
        conn = self.conn()
        # Inserts commit out of id order: read only ids no in-flight insert can still fill.
        horizon = scan_inbox.committed_horizon(conn)
        if horizon is None:
            return 0
        with conn.transaction(), conn.cursor() as cur:
            cur.execute(f"INSERT INTO {self.s}.inbox_position (name, last_id) VALUES (%s, 0) ON CONFLICT DO NOTHING", (INBOX,))
            (position,) = cur.execute(f"SELECT last_id FROM {self.s}.inbox_position WHERE name = %s FOR UPDATE", (INBOX,)).fetchone()
            rows = cur.execute(
                f"SELECT i.id, i.event_id, i.serial, i.channel, i.region, i.occurred_at, "
                f"EXISTS (SELECT 1 FROM {self.s}.labels l WHERE l.serial = i.serial) AS known "
                "FROM scan_inbox i WHERE i.id > %s AND i.id <= %s AND i.kind = 'scan' ORDER BY i.id LIMIT %s",  # reports are not sightings
                (position, horizon, self.batch),
            ).fetchall()
            if not rows:
                return 0
            candidates = sorted({r[2] for r in rows if not r[6]})
            issued = self.exists(candidates) if candidates else set()
            unknown = [r for r in rows if not r[6] and r[2] not in issued]
            if unknown:
                cur.executemany(
                    f"INSERT INTO {self.s}.unknown_scans (inbox_id, event_id, serial, channel, region, cluster, occurred_at) "
                    "VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
                    [(r[0], r[1], r[2], r[3], regions.normalize(r[4]), cluster_of(r[3], r[4]), r[5]) for r in unknown],
                )
                for cluster in dict.fromkeys(cluster_of(r[3], r[4]) for r in unknown):
                    self._raise(cur, cluster)
            cur.execute(f"UPDATE {self.s}.inbox_position SET last_id = %s WHERE name = %s", (rows[-1][0], INBOX))
        log.info("inbox_read", rows=len(rows), unknown=len(unknown), last_inbox_id=rows[-1][0])
        return len(rows)

    def _raise(self, cur: psycopg.Cursor, cluster: str) -> None:
        """Open or update the cluster's alert once enough distinct made-up serials are seen."""
        (latest,) = cur.execute(f"SELECT max(occurred_at) FROM {self.s}.unknown_scans WHERE cluster = %s", (cluster,)).fetchone()
        since = latest - timedelta(hours=self.cfg.unknown_code_window_hours)
        scans = cur.execute(
            f"SELECT event_id, serial, channel, region, occurred_at FROM {self.s}.unknown_scans "
            "WHERE cluster = %s AND occurred_at >= %s ORDER BY occurred_at, inbox_id",
            (cluster, since),
        ).fetchall()
        serials = list(dict.fromkeys(r[1] for r in scans))
        if len(serials) < self.cfg.unknown_code_min_serials:
            return
        _, channel, city = cluster.split(":", 2)
        region = None if city == "unknown" else city
        place = regions.centroid(region)
        severity = "high" if len(serials) >= self.cfg.unknown_code_high_serials else self.cfg.severity["unknown_code"]
        detail = {"channel": channel, "distinct_serials": len(serials), "serials": serials[:20], "region_name": regions.name(region),
                  "window_hours": self.cfg.unknown_code_window_hours}
        self.key = self.key or alert_owners.secret(cur)
        alert_id = alert_owners.alert_id(self.key, cluster, scans[0][0])
        cur.execute(self.alert_sql, (
            alert_id, cluster, "unknown_code", severity, None, None, None, region, regions.province(region),
            place.lat if place else None, place.lon if place else None, channel,
            [r[0] for r in scans][: self.cfg.evidence_cap], len(scans), scans[0][4], scans[-1][4], Jsonb(detail),
        ))
        alert_transitions.apply_pending(cur, self.s, alert_owners.register(cur, self.s, [cluster], signed=self.signed))
        log.info("unknown_code_cluster", cluster=cluster, serials=len(serials), scans=len(scans))
