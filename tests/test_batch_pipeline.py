"""Batch events through the real stack: ledger -> relay -> Kafka -> projector, and a crash mid-batch.

A label issued in a batch answers like any issued label, its PIN checks against the
commitment (with the verification service's seal key, never from public data), and a
batch is in the read model whole or not at all, exactly once.
"""

from __future__ import annotations

from contextlib import contextmanager

import psycopg

from consumers.projector import build
from ledger import batches, pins
from ledger.commitments import SealKey
from ledger.record_headers import header
from ledger.service import Ledger
from projections.verification import read_view
from tests.helpers import Cast, gtin, issued_payload, shipped_payload
from tests.pipeline import founded_ledger, project_all, relay_all, topic_records
from tests.test_crash_points import crashed_at


@contextmanager
def _ledger(settings):
    ledger = Ledger(settings)
    try:
        yield ledger
    finally:
        ledger.close()


def rows(settings, sql: str, params=()) -> list[tuple]:
    with psycopg.connect(settings.pg_conninfo) as conn:
        return conn.execute(sql, params).fetchall()


def issue(ledger, cast: Cast, serials, *, pins_of=None, seal=None) -> batches.Batch:
    b = batches.issuance(issued_payload(gtin(), expiry="2031-01-31"), serials, actor="acme", key=cast.keys["acme"], pins=pins_of, seal_public_key=seal)
    result = ledger.append_batch(b.signed, b.manifest)
    assert result.status == "accepted", result
    return b


def test_a_batch_label_answers_genuine_and_its_pin_checks(settings):
    seal = SealKey.load_or_create(settings.seal_key_path)  # the stack's verification service key
    with founded_ledger(settings, Cast()) as (settings, ledger, cast):
        plain = issue(ledger, cast, [f"P{i:05d}" for i in range(400)])
        chosen = {f"Q{i:05d}": f"{i:08d}" for i in range(200)}
        pinned = issue(ledger, cast, list(chosen), pins_of=chosen, seal=seal.public_key)
    relay_all(settings)
    on_kafka = [r for r in topic_records(settings, settings.label_topic) if header(r, "manifest") is not None]
    assert sorted(r.key for r in on_kafka) == sorted(b.signed.event.subject.encode() for b in (plain, pinned))
    assert all(len(r.value) < 1000 for r in on_kafka)  # the log leaf is the small signed envelope
    project_all(settings)

    assert rows(settings, "SELECT count(*) FROM verification.quarantine") == [(0,)]
    assert rows(settings, "SELECT count(*) FROM verification.batches") == [(2,)]
    assert rows(settings, "SELECT count(*) FROM verification.labels") == [(600,)]
    with psycopg.connect(settings.pg_conninfo) as conn:
        view = read_view(conn, "P00123")
    assert view["verdict"] == "genuine" and view["producer"] == "acme" and view["expiry"] == "2031-01-31"
    assert [(s["seq"], s["kind"], s["actor"]) for s in view["trail"]] == [(0, "Issued", "acme")]
    assert view["pin_protected"] is False
    # The head the read model holds is the label's step hash (what its next step links to).
    (head,) = rows(settings, "SELECT head FROM verification.labels WHERE serial = 'P00123'")[0]
    assert bytes(head) == plain.step_hashes()[123]

    [(pin_record,)] = rows(settings, "SELECT pin_hash FROM verification.labels WHERE serial = 'Q00007'")
    assert pin_record.startswith(pins.COMMITMENT_PREFIX)
    assert pins.verify_pin("Q00007", "00000007", pin_record)
    assert not pins.verify_pin("Q00007", "00000008", pin_record)
    assert not pins.verify_pin("Q00008", "00000007", pin_record)  # bound to its label
    # What the public log holds about that PIN: the commitment and a sealed box, not the nonce.
    nonce_hex = pin_record.split("$")[1]
    public = b"".join(r.value + header(r, "manifest") for r in on_kafka)
    assert bytes.fromhex(nonce_hex) not in public and b"00000007" not in public

    # A single event continues a batch label's chain from its step hash, through the pipeline.
    with _ledger(settings) as ledger:
        shipped = cast.event("acme", "label", "P00123", "Shipped", shipped_payload("distributor"), seq=1, prev=plain.step_hashes()[123])
        assert ledger.append([shipped])[0].status == "accepted"
    relay_all(settings)
    project_all(settings)
    with psycopg.connect(settings.pg_conninfo) as conn:
        view = read_view(conn, "P00123")
    assert view["status"] == "in_transit" and [s["kind"] for s in view["trail"]] == ["Issued", "Shipped"]
    assert rows(settings, "SELECT count(*) FROM verification.quarantine") == [(0,)]

    # Exactly once: a second pass of the projector over the same topic changes nothing.
    project_all(settings)
    assert rows(settings, "SELECT count(*), count(DISTINCT serial) FROM verification.labels") == [(600, 600)]
    # A rebuild into another schema from Kafka gives the same rows.
    project_all(settings, schema="verification_again")
    assert rows(settings, "SELECT serial, head, pin_hash FROM verification.labels EXCEPT SELECT serial, head, pin_hash FROM verification_again.labels") == []


def test_a_projector_killed_mid_batch_leaves_no_half_batch(fresh_settings, services, tmp_path):
    settings = fresh_settings(log_key=tmp_path / "log.key")
    with founded_ledger(settings, Cast()) as (settings, ledger, cast):
        issue(ledger, cast, [f"K{i:05d}" for i in range(3000)])
    relay_all(settings)
    projector = services("consumers.projector", settings.with_(crash_at="projector.batch_staged:1"), name="projector")
    crashed_at(projector, "projector.batch_staged", 1)
    # Killed with every label row of the batch written in its transaction: none is visible.
    assert rows(settings, "SELECT count(*) FROM verification.labels") == [(0,)]
    assert rows(settings, "SELECT count(*) FROM verification.batches") == [(0,)]
    # Resume under a fresh Kafka group: where to start is the read model's own offsets in
    # PostgreSQL (not the group's), and the dead member's session need not time out first.
    resumed = build(settings, group=f"{settings.topic_prefix}resumed")
    try:
        resumed.run(until_idle=True)
    finally:
        resumed.close()
    assert rows(settings, "SELECT count(*), count(DISTINCT serial) FROM verification.labels") == [(3000, 3000)]
    assert rows(settings, "SELECT count(*) FROM verification.batches") == [(1,)]
    assert rows(settings, "SELECT count(*) FROM verification.quarantine") == [(0,)]
