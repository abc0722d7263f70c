"""Issue 15 item 7: a producer key declared compromised since T makes the labels it issued after T ``suspicious``.

On the real stack (ledger -> relay -> Kafka -> projector -> API): acme issues one label
(dated two hours ago) that reaches the log; a moment T later it issues another, and a
thief holding its key issues a third dated two hours back; a registrar declares acme's
key compromised since T (event.v4 ``ActorKeyCompromised``). The first label still
answers genuine; the second and the backdated third answer suspicious with the reason,
on the JSON view and the QR page (the log's own time, not the signer's date, decides);
the key itself signs nothing more. Labels issued in batches (event.v3 ``BatchIssued``,
the CLI's default) are judged by their batch event's key and times the same way.
"""

from __future__ import annotations

import time
import uuid
from datetime import datetime, timedelta, timezone

import httpx

from ledger import batches, gs1, key_compromise
from ledger.events import new_event
from ledger.service import Ledger
from tests.helpers import issued_payload, shipped_payload
from tests.pipeline import project_all, relay_all


def issued_at(cast, serial: str, when: datetime):
    key = cast.keys["acme"]
    e = new_event(subject_type="label", subject=serial, kind="Issued", payload=issued_payload(), actor="acme", key_id=key.key_id, occurred_at=when)
    signed = e.sign(key)
    cast.heads[("label", serial)] = (0, signed.hash)
    return signed


def test_labels_issued_after_the_compromise_answer_suspicious_earlier_ones_genuine(api):
    settings, url, cast = api["settings"], api["url"], api["cast"]
    ledger = Ledger(settings)
    try:
        now = datetime.now(timezone.utc)
        before, after, backdated = gs1.new_serial(), gs1.new_serial(), gs1.new_serial()
        assert all(r.status == "accepted" for r in ledger.append([*cast.founding_events(), issued_at(cast, before, now - timedelta(hours=2))]))
        relay_all(settings)  # ``before`` reaches the log before T
        since = compromise_moment()
        later = [issued_at(cast, after, datetime.now(timezone.utc)), issued_at(cast, backdated, now - timedelta(hours=2))]
        assert all(r.status == "accepted" for r in ledger.append(later))
        declared = cast.event("registrar", "actor", "acme", "ActorKeyCompromised", {"key_id": cast.keys["acme"].key_id, "since": since, "reason": "signing key copied"})
        assert ledger.append([declared])[0].status == "accepted"
        # From the declaration on, the key signs nothing (schema's rule), not even a shipment of an old label.
        (late,) = ledger.append([cast.event("acme", "label", before, "Shipped", shipped_payload("distributor"), advance=False)])
        assert (late.status, late.error.code) == ("refused", "compromised_key")
        relay_all(settings)
        project_all(settings)

        early = httpx.get(f"{url}/v1/labels/{before}", timeout=30).json()
        assert early["verdict"] == "genuine", early
        for serial in (after, backdated):  # the thief's date two hours back does not clear it: it reached the log after T
            suspect = httpx.get(f"{url}/v1/labels/{serial}", timeout=30).json()
            assert suspect["verdict"] == "suspicious", (serial, suspect)
            assert any("compromised" in r for r in suspect["reasons"])
        # The QR page too (a consumer's phone): the later label's page says Suspicious, the earlier one's does not.
        pages = {s: httpx.get(f"{url}/01/{issued_payload()['gtin']}/21/{s}?lang=en", timeout=30) for s in (before, after)}
        assert {p.status_code for p in pages.values()} == {200}
        assert "Suspicious" in pages[after].text and "Suspicious" not in pages[before].text
    finally:
        ledger.close()


def compromise_moment() -> datetime:
    """A moment T strictly after everything sequenced so far and before anything written next."""
    time.sleep(0.05)
    moment = datetime.now(timezone.utc)
    time.sleep(0.05)
    return moment


def batch_issued_at(cast, serials: list[str], when: datetime):
    """``(signed BatchIssued, manifest)`` of ``serials`` by acme, dated ``when`` (:func:`ledger.batches.issuance` dates it now)."""
    key, steps = cast.keys["acme"], [batches.LabelStep(s) for s in serials]
    body = {k: issued_payload().get(k) for k in ("gtin", "lot", "expiry", "product", "region")}
    body.update(count=len(steps), labels_root=batches.labels_root(steps), pin_secret=None)
    e = new_event(subject_type="batch", subject=str(uuid.uuid4()), kind="BatchIssued", payload=body, actor="acme", key_id=key.key_id, occurred_at=when)
    return e.sign(key), batches.encode_manifest(steps)


def test_batch_issued_labels_are_judged_by_their_batch_key_and_time(api):
    settings, url, cast = api["settings"], api["url"], api["cast"]
    ledger = Ledger(settings)
    try:
        now = datetime.now(timezone.utc)
        early, late = [gs1.new_serial() for _ in range(2)], [gs1.new_serial() for _ in range(2)]
        assert all(r.status == "accepted" for r in ledger.append(cast.founding_events()))
        since = None
        for serials, when in ((early, now - timedelta(hours=2)), (late, now - timedelta(hours=2))):
            if since is None and serials is late:
                relay_all(settings)  # the early batch reaches the log before T; the late one, dated as early, after
                since = compromise_moment()
            signed, manifest = batch_issued_at(cast, serials, when)
            assert ledger.append_batch(signed, manifest).status == "accepted"
            for s in serials:
                cast.heads[("label", s)] = (0, batches.step_hash(signed.hash, batches.leaf_of(batches.LabelStep(s))))
        # A later single event of a batch label (before the declaration): its chain's first stored row is this
        # Shipped, yet the label is still judged by the batch that issued it.
        (shipped,) = ledger.append([cast.event("acme", "label", late[1], "Shipped", shipped_payload("distributor"))])
        assert shipped.status == "accepted", shipped
        declared = cast.event("registrar", "actor", "acme", "ActorKeyCompromised", {"key_id": cast.keys["acme"].key_id, "since": since, "reason": "signing key copied"})
        assert ledger.append([declared])[0].status == "accepted"
        relay_all(settings)
        project_all(settings)

        for s in early:
            assert httpx.get(f"{url}/v1/labels/{s}", timeout=30).json()["verdict"] == "genuine"
        for s in late:
            view = httpx.get(f"{url}/v1/labels/{s}", timeout=30).json()
            assert view["verdict"] == "suspicious", view
            assert any("compromised" in r for r in view["reasons"]), view
        pages = {s: httpx.get(f"{url}/01/{issued_payload()['gtin']}/21/{s}?lang=en", timeout=30) for s in (early[0], late[0])}
        assert {p.status_code for p in pages.values()} == {200}
        assert "Suspicious" in pages[late[0]].text and "Suspicious" not in pages[early[0]].text
    finally:
        ledger.close()


def test_mark_touches_only_genuine_views():
    since = datetime(2026, 1, 1, tzinfo=timezone.utc)
    genuine = {"verdict": "genuine", "reasons": []}
    assert key_compromise.mark(genuine, None) is genuine
    marked = key_compromise.mark(genuine, since)
    assert marked["verdict"] == "suspicious" and "compromised" in marked["reasons"][0] and marked["key_compromised_since"] == since.isoformat()
    for stronger in ("recalled", "counterfeit", "unknown"):
        assert key_compromise.mark({"verdict": stronger, "reasons": ["x"]}, since)["verdict"] == stronger
