"""The detector's signature on each alert it raises: ``AlertRaised`` (event.v4), issue 15 item 5.

The detector is a registered actor (role ``detector``, its key in
``TRACELEDGER_DETECTOR_KEY``, in the run directory like the gateway's). Its read
model registers each new alert in ``public.alert_owners`` pending its raise
(:func:`ledger.alert_owners.register`, in the detector's transaction); this worker
then opens the alert's chain with a signed ``AlertRaised`` naming the alert's kind,
producer, serial, severity and the commitment to its evidence, and marks the row
raised. From then on who may move the alert is signed history: the ledger's
lifecycle rules refuse another producer's transition, and an auditor replaying
Kafka refuses it too, without trusting the ledger's database.

Crash points: killed after the append and before the mark, the next round signs the
same event again (its id is derived from the alert id); the ledger refuses it as the
chain is already opened, and the row is marked then. Killed before the append,
nothing happened: the row is still pending. A refusal for any other reason (the
detector's key not registered, revoked, compromised) leaves the alert pending and is
logged; until it is raised, :func:`ledger.alert_owners.check` refuses transitions of
that alert, so nobody else can open its chain.
"""

from __future__ import annotations

import uuid

import psycopg

from ledger import alert_owners
from ledger.errors import Refused
from ledger.events import new_event
from ledger.keys import KeyPair
from ledger.logging_setup import get_logger
from ledger.service import Ledger

log = get_logger("alert_raiser")

BATCH = 200
_EVENT_IDS = uuid.UUID("5b8e3c1e-4a51-4d2c-9a53-3f0f2f1c0a15")  # namespace of AlertRaised event ids


def raised_event_id(alert_id: uuid.UUID) -> str:
    """The id of an alert's ``AlertRaised`` (the same on every try, so a retry is recognised)."""
    return str(uuid.uuid5(_EVENT_IDS, str(alert_id)))


class AlertRaiser:
    """Signs ``AlertRaised`` for the alerts pending their raise, oldest first."""

    def __init__(self, ledger: Ledger, key: KeyPair, conninfo: str, *, batch: int = BATCH):
        if not key.actor:
            raise ValueError("the detector key file names no actor")
        self.ledger, self.key, self.conninfo, self.batch = ledger, key, conninfo, batch
        self.conn = psycopg.connect(conninfo, autocommit=True)
        self.failing: set[uuid.UUID] = set()  # refused alerts already logged (one line each, not one per round)

    def raise_once(self) -> int:
        """Sign and append the next batch; return how many alerts were marked raised."""
        if self.conn.closed or self.conn.broken:
            self.conn = psycopg.connect(self.conninfo, autocommit=True)
        rows = alert_owners.pending_raises(self.conn, self.batch)
        if not rows:
            return 0
        events, ids = [], []
        for alert_id, producer, kind, serial, severity, commitment in rows:
            payload = {"alert_kind": kind, "producer": producer, "serial": serial, "severity": severity, "evidence_commitment": commitment}
            e = new_event(subject_type="alert", subject=str(alert_id), kind="AlertRaised", payload=payload,
                          actor=self.key.actor, key_id=self.key.key_id, event_id=raised_event_id(alert_id))
            try:
                events.append(e.sign(self.key))  # validates the payload first
                ids.append(alert_id)
            except Refused as exc:
                self._failed(alert_id, exc)
        raised: dict[uuid.UUID, str] = {}
        for alert_id, result in zip(ids, self.ledger.append(events) if events else []):
            if result.status == "accepted":
                raised[alert_id] = result.event_id
            elif result.error.code in ("stale_head", "invalid_transition"):
                raised[alert_id] = raised_event_id(alert_id)  # already on its chain (a retry after a crash)
            else:
                self._failed(alert_id, result.error)
        alert_owners.mark_raised(self.conn, raised)
        if raised:
            log.info("alerts_raised", raised=len(raised), pending=len(rows) - len(raised))
        return len(raised)

    def _failed(self, alert_id: uuid.UUID, exc: Refused) -> None:
        if alert_id not in self.failing:
            self.failing.add(alert_id)
            log.error("alert_raise_refused", alert_id=str(alert_id), code=exc.code, field=exc.field, detail=exc.detail)

    def close(self) -> None:
        self.conn.close()
