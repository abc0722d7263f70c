"""Labels issued with a key declared compromised since T answer ``suspicious`` (issue 15 item 7).

event.v4's ``ActorKeyCompromised {key_id, since}`` (a registrar or regulator, on the
producer's actor chain) says a key was in other hands from ``since`` on. From the
declaration the key signs nothing more (the ledger refuses it); what it signed
before the declaration stays on the log, and a label whose ``Issued`` it signed at
or after ``since`` may be a thief's: its consumer view answers ``suspicious``
instead of ``genuine`` (recalled and counterfeit stay what they are). Labels the
key issued before ``since`` stay genuine. A label issued in a batch (event.v3
``BatchIssued``, the CLI's default) has no ``Issued`` of its own: the batch event
that issued it (``public.label_heads`` names it) is judged the same way, by its
``key_id`` and ``occurred_at``.

:class:`CompromiseCheck` asks the write model (the registry every signed request
reads): the producer's actor state, cached for :data:`CACHE_SECONDS` (a declaration
takes effect within that), and only for a producer with a compromised key the
label's issuing event: its batch's ``BatchIssued`` when ``public.label_heads`` has
the label (one primary-key lookup, then the batch event), else its first stored event
(its ``Issued``), judged by its key and by two times: the ``occurred_at`` its signer
claims, and the time it reached the global log (``log_entries.recorded_at``, given by
the relay's sequencer, not by the signer). Either at or after ``since`` makes it suspect:
a thief holding the key can date an event years back, but cannot make it reach the log
before it was written. An event not sequenced yet counts as reaching the log now. The
cost of the stronger check falls only on the key's real holder: a label it signed
before ``since`` but that reached the log after (offline upload, relay lag across the
moment) answers ``suspicious`` too, the cautious side. So the common case, a producer with no compromised key, costs no query per
view after the first. :func:`mark` is the pure step the consumer view applies.
"""

from __future__ import annotations

import time
from datetime import datetime

from ledger.events import Event, decode_signed
from ledger.lifecycle import ActorState
from ledger.service import Ledger
from ledger.store import chain_id

CACHE_SECONDS = 5.0
REASON = "the key that issued this code was declared compromised from {since}: the item may be a copy made with a stolen key"


class CompromiseCheck:
    """When a label was issued with a key compromised at the time (None: it was not)."""

    def __init__(self, ledger: Ledger, cache_seconds: float = CACHE_SECONDS):
        self.ledger, self.cache_seconds = ledger, cache_seconds
        self._actors: dict[str, tuple[float, ActorState | None]] = {}

    def actor(self, actor_id: str) -> ActorState | None:
        now = time.monotonic()
        hit = self._actors.get(actor_id)
        if hit is None or now - hit[0] > self.cache_seconds:
            hit = (now, self.ledger.actor(actor_id))
            self._actors[actor_id] = hit
        return hit[1]

    def needs_lookup(self, producer: str | None) -> bool:
        """False when the cache already tells that ``producer`` has no compromised key (no I/O: the event loop may ask)."""
        hit = self._actors.get(producer) if producer else None
        if hit is None or time.monotonic() - hit[0] > self.cache_seconds:
            return producer is not None
        return hit[1] is not None and bool(hit[1].compromised)

    def since(self, serial: str, producer: str | None) -> datetime | None:
        """``since`` of the compromised key that issued ``serial``, if it issued it at or after then."""
        actor = self.actor(producer) if producer else None
        if actor is None or not actor.compromised:
            return None
        event = self.issuing_event(serial)
        if event is None or event.kind not in ("Issued", "BatchIssued") or event.actor != actor.actor_id:
            return None
        since = actor.compromised_since(event.key_id)
        if since is None:
            return None
        if event.occurred_at >= since:
            return since
        logged = self.logged_at(event)
        return since if logged is None or logged >= since else None

    def logged_at(self, event: Event) -> datetime | None:
        """When ``event`` reached the global log (its sequencer's time), or None while it has not."""
        with self.ledger.app.recorder.datastore.get_connection() as conn, conn.cursor() as cur:
            cur.execute("SELECT recorded_at FROM public.log_entries WHERE subject_type = %s AND subject = %s AND event_id = %s",
                        (event.subject_type, event.subject, str(event.event_id)))
            row = cur.fetchone()
        return None if row is None else row["recorded_at"]

    def issuing_event(self, serial: str) -> Event | None:
        """The event that issued ``serial``: its batch's ``BatchIssued``, else its own first stored event."""
        app = self.ledger.app
        with app.recorder.datastore.get_connection() as conn, conn.cursor() as cur:
            # A batch-issued label's chain has no row of its own for its first step (ledger/store.py):
            # its head row names the batch event, stored once on the batch's chain.
            cur.execute("SELECT m.batch_id FROM public.label_heads h JOIN public.batch_manifests m ON m.event_id = h.batch_event "
                        "WHERE h.serial = %s", (serial,))
            row = cur.fetchone()
        if row is not None:
            record = app.batch_record(row["batch_id"])
            return None if record is None else decode_signed(record[0], record[1]).event
        stored = app.recorder.select_events(chain_id("label", serial), limit=1)
        return decode_signed(*app.signed_parts(stored[0])).event if stored else None


def mark(view: dict, since: datetime | None) -> dict:
    """``view`` answering ``suspicious`` when its label was issued with a compromised key (a genuine one only)."""
    if since is None or view.get("verdict") != "genuine":
        return view
    return {**view, "verdict": "suspicious", "reasons": [*view.get("reasons", []), REASON.format(since=since.isoformat())],
            "key_compromised_since": since.isoformat()}
