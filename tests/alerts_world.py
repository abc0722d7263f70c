"""A label world for alert tests: the test cast, with events at chosen times."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from urllib.parse import urlencode

import httpx
import psycopg
from psycopg.rows import dict_row

from consumers.detector import build
from ledger import gs1
from ledger.events import GENESIS_HASH, SignedEvent, new_event
from ledger.keys import KeyPair
from tests.helpers import Cast, shipped_payload
from traceledger.auth import authorization_header

T0 = datetime.now(timezone.utc) - timedelta(days=10)


class TimedCast(Cast):
    """:class:`Cast` whose events can be dated (impossible travel needs known times)."""

    def at(self, signer: str, serial: str, kind: str, payload: dict, when: datetime) -> SignedEvent:
        seq, head = self.heads.get(("label", serial), (-1, GENESIS_HASH))
        e = new_event(subject_type="label", subject=serial, kind=kind, payload=payload, actor=signer,
                      key_id=self.keys[signer].key_id, seq=seq + 1, prev_hash=head, occurred_at=when)
        signed = e.sign(self.keys[signer])
        self.heads[("label", serial)] = (seq + 1, signed.hash)
        return signed

    def scan(self, serial: str, minutes: float, region: str | None = "440305", session: str | None = "phone-1", channel: str = "web", signer: str = "gateway", lat=None, lon=None,
             pin_result: str | None = None) -> SignedEvent:
        payload = {"channel": channel, "region": region, "lat": lat, "lon": lon, "session": session, "pin_result": pin_result}
        return self.at(signer, serial, "Scanned", payload, T0 + timedelta(minutes=minutes))

    def to_retailer(self, serial: str | None = None, lot: str = "L1", territory: str = "4403") -> tuple[str, list[SignedEvent]]:
        """Issue a label and move it producer -> distributor (44) -> retailer (``territory``)."""
        serial = serial or gs1.new_serial()
        return serial, [
            self.issue(serial, lot=lot),
            self.event("acme", "label", serial, "Shipped", shipped_payload("distributor", "44")),
            self.event("distributor", "label", serial, "Received", {"region": "440100"}),
            self.event("distributor", "label", serial, "Shipped", shipped_payload("retailer", territory)),
            self.event("retailer", "label", serial, "Received", {"region": "440305"}),
        ]


def detect_all(settings, schema: str = "alerts", **kw):
    """Run a detector until both label-events and scan_inbox are drained."""
    detector = build(settings, schema=schema, **kw)
    try:
        detector.run(until_idle=True)
    finally:
        detector.close()
    return detector


def alerts(settings, schema: str = "alerts") -> list[dict]:
    with psycopg.connect(settings.pg_conninfo) as conn, conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(f"SELECT * FROM {schema}.alerts ORDER BY id").fetchall()


def kinds_by_serial(rows: list[dict]) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for r in rows:
        if r["serial"]:
            out.setdefault(r["serial"], set()).add(r["kind"])
    return out


def signed_get(url: str, key: KeyPair | None, path: str, **params) -> httpx.Response:
    """GET ``path`` with ``params``, signed by ``key`` (unsigned when None), as the CLI does."""
    target = path + (f"?{urlencode({k: v for k, v in params.items() if v is not None})}" if params else "")
    headers = {"authorization": authorization_header(key, "GET", target)} if key is not None else {}
    return httpx.get(url + target, headers=headers, timeout=30)
