"""An empty database restored from Kafka alone gives the same answers and the same Merkle root (issue 18)."""

from __future__ import annotations

import subprocess

import pytest

from consumers.restore import RestoreRefused, restore
from ledger.config import REPO_ROOT
from ledger.service import Ledger
from tests.helpers import Cast, append_accepted, scanned_payload, shipped_payload
from tests.oracle import READ_MODEL_TABLES, rows
from tests.pipeline import project_all, relay_all
from traceledger import sandbox


def test_a_database_restored_from_kafka_answers_the_same(settings, base_settings, _created):
    cast = Cast()
    ledger = Ledger(settings)
    try:
        append_accepted(ledger, cast.founding_events())
        issued = [cast.issue() for _ in range(300)]
        append_accepted(ledger, issued)
        serials = [s.event.subject for s in issued]
        append_accepted(ledger, [cast.event("acme", "label", s, "Shipped", shipped_payload("distributor")) for s in serials[:150]])
        append_accepted(ledger, [cast.event("gateway", "label", s, "Scanned", scanned_payload()) for s in serials[::3]])
    finally:
        ledger.close()
    relay_all(settings)
    project_all(settings)
    size, root = rows(settings, "SELECT size, root FROM checkpoints ORDER BY id DESC LIMIT 1")[0]
    assert size == 7 + 300 + 150 + 100

    # The database is lost: an empty one, the same topics (kept forever) and log key.
    db = f"{settings.pg_db}_restored"
    sandbox.create_database(base_settings, db)
    _created["dbs"].append(db)
    restored = settings.with_(pg_db=db)
    assert restore(restored) == size
    with pytest.raises(RestoreRefused, match="not empty"):
        restore(restored)
    assert relay_all(restored) == 0  # every entry already on Kafka: nothing published twice
    project_all(restored)

    assert rows(restored, "SELECT size, root FROM checkpoints ORDER BY id DESC LIMIT 1") == [(size, root)]
    assert rows(restored, "SELECT log_index, event_id FROM log_entries ORDER BY log_index") == \
        rows(settings, "SELECT log_index, event_id FROM log_entries ORDER BY log_index")
    for table, order in READ_MODEL_TABLES:
        assert rows(restored, f"SELECT * FROM verification.{table} ORDER BY {order}") == \
            rows(settings, f"SELECT * FROM verification.{table} ORDER BY {order}"), f"verification.{table} differs after the restore"


def test_make_backup_writes_a_restorable_dump(settings, tmp_path):
    out = subprocess.run(["bash", str(REPO_ROOT / "ops" / "backup.sh")], env={"PATH": "/usr/bin:/bin", "TRACELEDGER_PG_DB": settings.pg_db,
                         "TRACELEDGER_BACKUP_DIR": str(tmp_path)}, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    dumps = list(tmp_path.glob(f"{settings.pg_db}-*.dump"))
    assert len(dumps) == 1 and dumps[0].stat().st_size > 0
    listing = subprocess.run(["pg_restore", "--list", str(dumps[0])], capture_output=True, text=True, timeout=60)
    assert listing.returncode == 0 and "log_entries" in listing.stdout and "ledger_events" in listing.stdout
