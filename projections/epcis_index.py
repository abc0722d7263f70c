"""The EPCIS query index: one row per EPCIS event of the global log, and the queries over it.

``GET /events`` (:mod:`traceledger.api.epcis_query`) must filter and page in
PostgreSQL, not decode the whole log per request. This read model
(``epcis_events`` and ``epcis_event_epcs``, ``ledger/migrations/0006``) keeps,
per EPCIS event, the fields the standard queries on (type, action, bizStep,
disposition, eventTime, recordTime, readPoint, bizLocation, and every
identifier by role) and the log indexes of the signed ledger events it
carries; a page is then an indexed ``SELECT ... WHERE log_index > $after
ORDER BY log_index LIMIT $perPage`` (cut shorter when its events carry more
than a page's budget of signed events) and the signed bytes of just those
events, mapped by :func:`ledger.epcis.to_epcis` as the export always was.

It is built from ``log_entries`` by :func:`catch_up`, which every query runs
first: cheap when nothing is new, and in batches of :data:`BATCH` entries
(bounded memory) when something is, under an advisory lock so API workers take
turns. Events are grouped exactly as :func:`ledger.epcis.group_events` groups
them (a pack with its children's events), with the children a pack still
expects kept in ``epcis_waiting_children`` between batches. Only an unbroken
run of log indexes is indexed, so nothing is skipped past a gap.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

import psycopg

from ledger import epcis
from ledger.epcis_query import EventQuery, Page, uri_key, vocabulary_word
from ledger.events import DECLARATION_KINDS, TRANSACTION_KIND, SignedEvent
from ledger.store import batch_manifests

BATCH = 2000
INDEX_LOCK = 0x6570636973  # "epcis": held while indexing, so API workers take turns
HOST = "index.invalid"  # identifiers are mapped on this host, then kept without it (ledger.epcis_query.uri_key)
ROLES = (("epcList", "epc"), ("childEPCs", "epc"), ("inputEPCList", "input"), ("outputEPCList", "output"))
CLASS_ROLES = (("quantityList", "class"), ("inputQuantityList", "input_class"), ("outputQuantityList", "output_class"))
ROW_COLUMNS = ("log_index", "event_id", "event_type", "action", "biz_step", "disposition", "event_time", "record_time",
               "read_point", "biz_location", "members")


# ---------------------------------------------------------------- what an EPCIS event is indexed by (pure)


def identifiers(event: dict) -> list[tuple[str, str]]:
    """(key, role) of every identifier an EPCIS event names."""
    out = [(uri_key(epc), role) for name, role in ROLES for epc in event.get(name, ())]
    out += [(uri_key(q["epcClass"]), role) for name, role in CLASS_ROLES for q in event.get(name, ())]
    if event.get("parentID"):
        out.append((uri_key(event["parentID"]), "parent"))
    out += [(uri_key(p["source"]), f"source:{p['type']}") for p in event.get("sourceList", ())]
    out += [(uri_key(p["destination"]), f"destination:{p['type']}") for p in event.get("destinationList", ())]
    return sorted(set(out))


def index_row(log_index: int, event: dict, record_time: datetime, members: list[int]) -> tuple:
    """The ``epcis_events`` row of an EPCIS event (:func:`ledger.epcis.to_epcis` output), in ROW_COLUMNS order."""
    place = (event.get("readPoint") or {}).get("id"), (event.get("bizLocation") or {}).get("id")
    # A TransactionEvent keeps the partner's words as written (a URI form too): indexed as EQ_bizStep compares them.
    step, disposition = (vocabulary_word(name, event[field]) if event.get(field) else None
                         for name, field in (("EQ_bizStep", "bizStep"), ("EQ_disposition", "disposition")))
    # An error declaration repeats its declared event's eventID (EPCIS 2.0): its row is keyed by its own ledger id.
    return (log_index, event.get(epcis.DECLARATION_ID, event["eventID"]), event["type"], event.get("action"), step, disposition,
            datetime.fromisoformat(event["eventTime"]), record_time,
            uri_key(place[0]) if place[0] else None, uri_key(place[1]) if place[1] else None, members)


# ---------------------------------------------------------------- building


@dataclass
class Batch:
    """One run of log entries being indexed: new EPCIS events, children joining older ones, pending children."""

    groups: dict[int, list[tuple[int, SignedEvent]]] = field(default_factory=dict)
    record_times: dict[int, datetime] = field(default_factory=dict)
    joined: list[tuple[int, int]] = field(default_factory=list)  # (EPCIS event's log index, member's log index)
    waiting: dict[tuple[str, str, str], int | None] = field(default_factory=dict)  # None: no longer waiting
    # The newest EPCIS event (its log index and signed events), which a TransactionEvent's next EPC may join;
    # before the first add: the newest one already indexed (:func:`newest_transaction`).
    last: tuple[int, list[SignedEvent]] | None = None
    joined_epcs: list[tuple[int, SignedEvent]] = field(default_factory=list)  # (older EPCIS event, member naming an EPC)

    def add(self, log_index: int, signed: SignedEvent, recorded_at: datetime) -> None:
        """Group one ledger event as ledger.epcis.group_events does."""
        e = signed.event
        if self.last is not None and epcis.same_transaction(self.last[1], e):
            leader, members = self.last
            members.append(signed)
            if leader in self.groups:
                self.groups[leader].append((log_index, signed))
            else:  # an EPC more of a TransactionEvent indexed by an earlier batch
                self.joined.append((leader, log_index))
                self.joined_epcs.append((leader, signed))
            return
        key = (e.payload.get("container"), e.kind, e.subject)
        if e.kind in epcis.PARENT_KIND and self.waiting.get(key) is not None:
            leader = self.waiting[key]
            self.waiting[key] = None
            if leader in self.groups:
                self.groups[leader].append((log_index, signed))
            else:
                self.joined.append((leader, log_index))
            return
        self.groups[log_index] = [(log_index, signed)]
        self.record_times[log_index] = recorded_at
        self.last = (log_index, [signed])
        if e.kind in epcis.CHILD_KIND:
            for child in e.payload["children"]:
                self.waiting[(e.subject, epcis.CHILD_KIND[e.kind], child)] = log_index


def unindexed(conn: psycopg.Connection, limit: int) -> list[tuple[int, bytes, datetime]]:
    """The next unbroken run of at most ``limit`` log entries not yet indexed: (log_index, value, recorded_at)."""
    start = conn.execute("SELECT next_log_index FROM epcis_index_position").fetchone()[0]
    rows = conn.execute("SELECT log_index, value, recorded_at FROM log_entries WHERE log_index >= %s ORDER BY log_index LIMIT %s",
                        (start, limit)).fetchall()
    run = [r for i, r in enumerate(rows) if r[0] == start + i]
    return [(i, bytes(v), t) for i, v, t in run]


def load_waiting(conn: psycopg.Connection, batch: Batch, children: list[SignedEvent]) -> None:
    """The pending children (from earlier batches) that these children's events may complete."""
    keys = [(s.event.payload["container"], s.event.kind, s.event.subject) for s in children]
    rows = conn.execute(
        "SELECT w.container, w.kind, w.child, w.log_index FROM epcis_waiting_children w "
        "JOIN unnest(%s::text[], %s::text[], %s::text[]) AS k(c, k, s) ON w.container = k.c AND w.kind = k.k AND w.child = k.s",
        ([k[0] for k in keys], [k[1] for k in keys], [k[2] for k in keys])).fetchall()
    batch.waiting.update({(c, k, s): i for c, k, s, i in rows})


def declared_events(conn: psycopg.Connection, signed: list[SignedEvent]) -> dict[str, SignedEvent]:
    """event id -> the signed event each declaration among ``signed`` names, read from the global log on the
    declaration's own chain (an id found on no such chain is simply absent: that declaration is not exported)."""
    wanted = epcis.declared_ids(signed)
    if not wanted:
        return {}
    rows = conn.execute("SELECT l.value FROM log_entries l JOIN unnest(%s::text[], %s::text[], %s::text[]) AS w(t, s, i) "
                        "ON l.subject_type = w.t AND l.subject = w.s AND l.event_id = w.i",
                        ([w[0] for w in wanted], [w[1] for w in wanted], [w[2] for w in wanted])).fetchall()
    found = (SignedEvent.from_envelope(bytes(r[0])) for r in rows)
    return {x.event.event_id: x for x in found}


def newest_transaction(conn: psycopg.Connection) -> tuple[int, list[SignedEvent]] | None:
    """The newest indexed EPCIS event if it is a TransactionEvent: the next batch's first entry may be one more EPC of it."""
    row = conn.execute("SELECT log_index, event_type FROM epcis_events ORDER BY log_index DESC LIMIT 1").fetchone()
    if row is None or row[1] != "TransactionEvent":
        return None
    return row[0], [SignedEvent.from_envelope(v) for v in signed_values(conn, [row[0]]).get(row[0], [])]


def manifests_of(conn: psycopg.Connection, events) -> dict[str, bytes]:
    """event id -> manifest of the batch events among ``events`` (the ledger's ``batch_manifests``)."""
    return batch_manifests(conn, [s.event.event_id for s in events if s.event.subject_type == "batch"])


def write_batch(conn: psycopg.Connection, batch: Batch, issued: dict[str, str], manifests: dict[str, bytes],
                declared: dict[str, SignedEvent] | None = None) -> None:
    """Insert the batch's EPCIS events and identifiers, extend older ones, keep the pending children."""
    rows, epcs = [], []
    serials = {c for group in batch.groups.values() for _, s in group for c in epcis.label_codes(s, manifests)}
    serials |= {c for _, s in batch.joined_epcs for c in epcis.label_codes(s)}
    gtin_of = label_gtins(conn, list(serials - set(issued))) | issued
    for leader, group in batch.groups.items():
        event = epcis.to_epcis([s for _, s in group], gtin_of.get, HOST, manifests, declared or {})
        rows.append(index_row(leader, event, batch.record_times[leader], [i for i, _ in group]))
        epcs += [(key, role, leader) for key, role in identifiers(event)]
    for leader, member in batch.joined_epcs:
        epcs += [(key, role, leader) for key, role in identifiers(epcis.to_epcis([member], gtin_of.get, HOST)) if role == "epc"]
    with conn.cursor() as cur:
        cur.executemany(f"INSERT INTO epcis_events ({', '.join(ROW_COLUMNS)}) VALUES ({', '.join(['%s'] * len(ROW_COLUMNS))})", rows)
        cur.executemany("INSERT INTO epcis_event_epcs (epc, role, log_index) VALUES (%s, %s, %s)", epcs)
        cur.executemany("UPDATE epcis_events SET members = members || %s::bigint WHERE log_index = %s", [(m, e) for e, m in batch.joined])
        keys = list(batch.waiting)
        cur.executemany("DELETE FROM epcis_waiting_children WHERE container = %s AND kind = %s AND child = %s", keys)
        cur.executemany("INSERT INTO epcis_waiting_children (container, kind, child, log_index) VALUES (%s, %s, %s, %s)",
                        [(*k, i) for k, i in batch.waiting.items() if i is not None])
        cur.executemany("INSERT INTO epcis_label_gtins (serial, gtin) VALUES (%s, %s) ON CONFLICT DO NOTHING",
                        list(issued.items()))


def index_next(conn: psycopg.Connection, limit: int = BATCH) -> int:
    """Index the next run of log entries in one transaction; how many entries it read (0: up to date)."""
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (INDEX_LOCK,))
        run = unindexed(conn, limit)
        if not run:
            return 0
        entries = [(i, SignedEvent.from_envelope(v), t) for i, v, t in run]
        declared = declared_events(conn, [s for _, s, _ in entries])
        exported = [(i, s, t) for i, s, t in entries if epcis.exported(s.event)  # as epcis.group_events
                    and (s.event.kind not in DECLARATION_KINDS or epcis.declaration_of(s.event, declared) is not None)]
        batch = Batch()
        if exported and exported[0][1].event.kind == TRANSACTION_KIND:
            batch.last = newest_transaction(conn)
        load_waiting(conn, batch, [s for _, s, _ in exported if s.event.kind in epcis.PARENT_KIND])
        for i, s, t in exported:
            batch.add(i, s, t)
        manifests = manifests_of(conn, [s for _, s, _ in exported])
        write_batch(conn, batch, epcis.issued_gtins([s for _, s, _ in exported], manifests), manifests, declared)
        conn.execute("UPDATE epcis_index_position SET next_log_index = %s", (run[-1][0] + 1,))
    return len(run)


def behind(conn: psycopg.Connection) -> bool:
    """Whether the global log has entries the index has not read (one cheap look, no lock)."""
    return conn.execute("SELECT (SELECT next_log_index FROM epcis_index_position) "
                        "<= coalesce((SELECT max(log_index) FROM log_entries), -1)").fetchone()[0]


def catch_up(conn: psycopg.Connection) -> int:
    """Index everything the global log has now; how many entries were read."""
    total = 0
    while behind(conn):
        done = index_next(conn)
        if not done:
            break  # a gap: the entry after it is not committed yet
        total += done
    return total


# ---------------------------------------------------------------- queries


def conditions(q: EventQuery) -> tuple[list[str], list]:
    """SQL conditions (on ``epcis_events e``) and their parameters for a query."""
    where, args = [], []
    for column, values in (("event_type", q.event_types), ("action", q.actions), ("biz_step", q.biz_steps),
                           ("disposition", q.dispositions), ("read_point", q.read_points),
                           ("biz_location", q.biz_locations), ("event_id", q.event_ids)):
        if values:
            where.append(f"e.{column} = ANY(%s)")
            args.append(list(values))
    for column, op, value in (("event_time", ">=", q.ge_event_time), ("event_time", "<", q.lt_event_time),
                              ("record_time", ">=", q.ge_record_time), ("record_time", "<", q.lt_record_time)):
        if value is not None:
            where.append(f"e.{column} {op} %s")
            args.append(value)
    for match in q.epc_matches:
        where.append("e.log_index IN (SELECT x.log_index FROM epcis_event_epcs x WHERE x.role = ANY(%s) "
                     "AND (x.epc = ANY(%s) OR x.epc LIKE ANY(%s)))")
        args += [list(match.roles), list(match.exact), [like_prefix(p) for p in match.prefixes]]
    return where, args


def like_prefix(prefix: str) -> str:
    return prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def page_rows(conn: psycopg.Connection, q: EventQuery, page: Page) -> list[tuple[int, datetime, int, datetime]]:
    """Up to ``page.size + 1`` matching EPCIS events after the page's position, in its order: (log_index,
    record_time, its weight (signed events carried, or EPCs named if more), event_time). Keyset paging: an index range, never an OFFSET."""
    where, args = conditions(q)
    sign, direction = ("<", "DESC") if page.descending else (">", "ASC")
    if page.order == "event_time":
        if not page.first:
            where.append(f"(e.event_time, e.log_index) {sign} (%s, %s)")
            args += [page.after_time, page.after]
        order = f"e.event_time {direction}, e.log_index {direction}"
    else:
        if not page.first:
            where.append(f"e.log_index {sign} %s")
            args.append(page.after)
        order = f"e.log_index {direction}"
    # An event's weight on a page: the signed events it carries, or the EPCs it names if more (a batch
    # event is one signed event naming up to 8,192 labels, its manifest beside it).
    weight = ("greatest(cardinality(e.members), (SELECT count(*) FROM epcis_event_epcs x WHERE x.log_index = e.log_index "
              "AND x.role = 'epc'))")
    sql = (f"SELECT e.log_index, e.record_time, {weight}, e.event_time FROM epcis_events e "
           f"WHERE {' AND '.join(where) or 'true'} ORDER BY {order} LIMIT %s")
    return conn.execute(sql, [*args, page.size + 1]).fetchall()


# A list of values in use -> (SQL of the distinct values after %s, in order, at most %s of them).
VALUE_LISTS = {
    "bizLocations": "SELECT DISTINCT biz_location FROM epcis_events WHERE biz_location > %s ORDER BY 1 LIMIT %s",
    "readPoints": "SELECT DISTINCT read_point FROM epcis_events WHERE read_point > %s ORDER BY 1 LIMIT %s",
    "epcs": "SELECT DISTINCT epc FROM epcis_event_epcs WHERE role IN ('epc', 'parent', 'input', 'output') AND epc > %s "
            "ORDER BY 1 LIMIT %s",
}


def values_in_use(conn: psycopg.Connection, name: str, after: str, size: int) -> list[str]:
    """Up to ``size`` distinct identifier keys of list ``name`` (VALUE_LISTS) after ``after``, in byte order."""
    return [r[0] for r in conn.execute(VALUE_LISTS[name], (after, size)).fetchall()]


def signed_values(conn: psycopg.Connection, event_indexes: list[int]) -> dict[int, list[bytes]]:
    """EPCIS event's log index -> the envelopes of the signed events it carries, in order."""
    rows = conn.execute(
        "SELECT e.log_index, l.value FROM epcis_events e CROSS JOIN LATERAL unnest(e.members) WITH ORDINALITY AS m(member, n) "
        "JOIN log_entries l ON l.log_index = m.member WHERE e.log_index = ANY(%s) ORDER BY e.log_index, m.n",
        (event_indexes,)).fetchall()
    out: dict[int, list[bytes]] = {}
    for event_index, value in rows:
        out.setdefault(event_index, []).append(bytes(value))
    return out


def issuing_batches(conn: psycopg.Connection, serials: list[str]) -> set[str]:
    """The batch ids of the batch events that issued these labels (the ledger's ``label_heads``)."""
    rows = conn.execute("SELECT DISTINCT m.batch_id FROM public.label_heads h JOIN public.batch_manifests m ON m.event_id = h.batch_event "
                        "WHERE h.serial = ANY(%s)", (serials,)).fetchall()
    return {r[0] for r in rows}


def label_gtins(conn: psycopg.Connection, serials: list[str]) -> dict[str, str]:
    """serial -> GTIN, from the labels' Issued events."""
    return dict(conn.execute("SELECT serial, gtin FROM epcis_label_gtins WHERE serial = ANY(%s)", (serials,)).fetchall())


def last_index(conn: psycopg.Connection) -> int:
    """The log index of the newest indexed EPCIS event (-1: none): where a subscription "from now" starts."""
    return conn.execute("SELECT coalesce(max(log_index), -1) FROM epcis_events").fetchone()[0]
