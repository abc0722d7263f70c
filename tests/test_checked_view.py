"""projections.checked_view: after a pass of the integrity sweep, the one-round-trip view answers
exactly what the precise path answers.

The precise path is ``guard_view(read_view_async(...))`` (several queries, the stored chain
hashed in Python). Checked on real PostgreSQL for untouched labels, unknown serials, scans
not projected yet, and every way of editing the ledger's stored rows, including rows that
PostgreSQL itself cannot parse (the sweep's chunk statement fails and it checks that chunk precisely).
"""

from __future__ import annotations

import asyncio
import base64
import json

import psycopg
import pytest

from ledger import scan_inbox
from ledger.store import chain_id
from projections.checked_view import checked_view
from projections.integrity import guard_view
from projections.integrity_sweep import sweep
from projections.verification import read_view_async, unprojected_scans
from tests.audit_world import make_world
from tests.pipeline import project_all


@pytest.fixture
def world(fresh_settings, tmp_path):
    w = make_world(fresh_settings, tmp_path, labels=12)
    project_all(w.settings)
    yield w
    w.ledger.close()


async def _sweep(world) -> dict:
    async with await psycopg.AsyncConnection.connect(world.settings.pg_conninfo, autocommit=True) as conn:
        return await sweep(world.ledger.app, conn)


async def _both(world, serial: str) -> tuple[dict, dict, dict]:
    """(precise view, fast view, fast view with the inbox figures), after a pass of the integrity sweep."""
    await _sweep(world)
    async with await psycopg.AsyncConnection.connect(world.settings.pg_conninfo, autocommit=True) as conn:
        precise = await guard_view(world.ledger.app, conn, serial, await read_view_async(conn, serial))
        fast = await checked_view(world.ledger.app, conn, serial)
        inbox = await checked_view(world.ledger.app, conn, serial, with_inbox=True)
        if precise.get("product"):
            assert inbox["unprojected"] == await unprojected_scans(conn, serial)
    return precise, fast, inbox


def same(world, serial: str) -> dict:
    precise, fast, inbox = asyncio.run(_both(world, serial))
    assert fast == precise
    assert {k: v for k, v in inbox.items() if k not in ("unprojected", "inbox_first_scan")} == precise
    return fast


def _set_state(conn, serial: str, version: int, state: bytes) -> None:
    conn.execute("UPDATE ledger_events SET state = %s WHERE originator_id = %s AND originator_version = %s",
                 (state, chain_id("label", serial), version))


def _state(conn, serial: str, version: int) -> dict:
    row = conn.execute("SELECT state FROM ledger_events WHERE originator_id = %s AND originator_version = %s",
                       (chain_id("label", serial), version)).fetchone()
    return json.loads(bytes(row[0]))


def test_untouched_unknown_and_unprojected_scans_match_the_precise_path(world):
    for serial in world.serials[:6]:
        assert same(world, serial)["verdict"] == "genuine"
    assert same(world, "NEVERISSUED00000000X")["verdict"] == "unknown"
    scanned = world.serials[0]
    with psycopg.connect(world.settings.pg_conninfo, autocommit=True) as conn:
        first = scan_inbox.accept(conn, scanned, channel="web")
        scan_inbox.accept(conn, scanned, channel="app")
    precise, fast, inbox = asyncio.run(_both(world, scanned))
    assert inbox["unprojected"] == 2 and inbox["inbox_first_scan"] == first.occurred_at


@pytest.mark.parametrize("tamper, reason", [
    ("edited_body", "stored event 1 differs"),
    ("deleted_row", "deleted"),
    ("not_json", "does not decode"),
    ("bad_base64", "stored event 1 differs"),
    ("not_utf8", "does not decode"),
    ("other_topic", None),  # eventsourcing metadata, the signed body unchanged: the fast check falls back, the precise one finds nothing
    ("version_zero", "stored event 0 is missing"),
])
def test_every_edit_of_the_stored_chain_is_suspicious_with_the_precise_reason(world, tamper, reason):
    serial, untouched = world.serials[0], world.serials[1]  # Issued, Shipped, Received
    with psycopg.connect(world.settings.pg_conninfo, autocommit=True) as conn:
        if tamper == "edited_body":
            state = _state(conn, serial, 2)
            body = base64.b64decode(state["body"]["_data_"])
            state["body"]["_data_"] = base64.b64encode(body[:-1] + bytes([body[-1] ^ 1])).decode()
            _set_state(conn, serial, 2, json.dumps(state).encode())
        elif tamper == "deleted_row":
            conn.execute("DELETE FROM ledger_events WHERE originator_id = %s AND originator_version = 2", (chain_id("label", serial),))
        elif tamper == "not_json":
            _set_state(conn, serial, 2, b'{"body": ')
        elif tamper == "bad_base64":  # PostgreSQL refuses the stray characters, Python skips them: the precise path decides
            state = _state(conn, serial, 2)
            body = base64.b64decode(state["body"]["_data_"])
            state["body"]["_data_"] = "%%%" + base64.b64encode(body[:-1] + bytes([body[-1] ^ 1])).decode()
            _set_state(conn, serial, 2, json.dumps(state).encode())
        elif tamper == "not_utf8":
            _set_state(conn, serial, 2, b"\xff\xfe" + json.dumps(_state(conn, serial, 2)).encode())
        elif tamper == "other_topic":
            conn.execute("UPDATE ledger_events SET topic = 'ledger.store:Chain.Started' WHERE originator_id = %s AND originator_version = 2",
                         (chain_id("label", serial),))
        elif tamper == "version_zero":
            conn.execute("UPDATE ledger_events SET originator_version = 0 WHERE originator_id = %s AND originator_version = 1",
                         (chain_id("label", serial),))
    found = asyncio.run(_sweep(world))
    assert found["labels"] == len(world.serials) and found["flagged"] == (0 if reason is None else 1), found
    view = same(world, serial)
    if reason is None:
        assert view["verdict"] == "genuine" and "integrity" not in view
    else:
        assert view["verdict"] == "suspicious" and reason in view["integrity"], view
    assert same(world, untouched)["verdict"] == "genuine"


def test_the_sweep_flags_an_edit_and_clears_the_flag_once_the_store_matches_again(world):
    """The read path's window, stated exactly: an edit is seen by reads from the next pass of the sweep on."""
    serial = world.serials[0]
    with psycopg.connect(world.settings.pg_conninfo, autocommit=True) as conn:
        original = _state(conn, serial, 2)
        edited = json.loads(json.dumps(original))
        body = base64.b64decode(edited["body"]["_data_"])
        edited["body"]["_data_"] = base64.b64encode(body[:-1] + bytes([body[-1] ^ 1])).decode()
        _set_state(conn, serial, 2, json.dumps(edited).encode())

    async def fast() -> dict:
        async with await psycopg.AsyncConnection.connect(world.settings.pg_conninfo, autocommit=True) as conn:
            return await checked_view(world.ledger.app, conn, serial)

    assert asyncio.run(fast())["verdict"] == "genuine"  # not re-hashed on the read: the sweep has not passed yet
    assert asyncio.run(_sweep(world))["flagged"] == 1
    view = asyncio.run(fast())
    assert view["verdict"] == "suspicious" and "stored event 1 differs" in view["integrity"], view
    with psycopg.connect(world.settings.pg_conninfo, autocommit=True) as conn:
        _set_state(conn, serial, 2, json.dumps(original).encode())
        assert asyncio.run(_sweep(world))["flagged"] == 0
        assert conn.execute("SELECT count(*) FROM verification.label_integrity").fetchone()[0] == 0
    assert asyncio.run(fast())["verdict"] == "genuine"
