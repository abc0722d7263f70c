"""Batch ship, receive, recall and decommission on the write side (real PostgreSQL).

One signed event moves a list of labels; each label's step must continue its own chain and
pass the rule of the single event it stands for, or the whole batch is refused, naming the
label, with nothing written. The consignee, territory and channel are sealed in the signed
body; the ledger checks their opening and keeps it apart from the bodies it serves.
"""

from __future__ import annotations

import psycopg

from ledger import batches
from ledger.batches import Batch, Opening
from ledger.service import Ledger
from tests.helpers import Cast, gtin, issued_payload, shipped_payload
from tests.test_batch_writes import world  # noqa: F401 - the fixture: a founded ledger and its cast

SHIP = {"consignee": "distributor", "territory": "44", "channel": "retail"}




def issue(ledger: Ledger, cast: Cast, serials) -> Batch:
    b = batches.issuance(issued_payload(gtin()), serials, actor="acme", key=cast.keys["acme"])
    assert ledger.append_batch(b.signed, b.manifest).status == "accepted"
    return b


def heads(ledger: Ledger, serials) -> list[tuple[str, int, bytes]]:
    got = ledger.heads([("label", s) for s in serials])
    return [(s, got[s]["seq"] + 1, bytes.fromhex(got[s]["hash"])) for s in serials]


def move(ledger: Ledger, cast: Cast, kind: str, serials, signer="acme", **kw):
    b, opening = batches.movement(kind, heads(ledger, serials), actor=signer, key=cast.keys[signer], **kw)
    return b, opening, ledger.append_batch(b.signed, b.manifest, opening=opening)


def stored(ledger: Ledger) -> tuple:
    with psycopg.connect(ledger.settings.pg_conninfo) as conn:
        return tuple(conn.execute(q).fetchone()[0] for q in (
            "SELECT count(*) FROM label_steps", "SELECT count(*) FROM batch_manifests", "SELECT count(*) FROM batch_openings",
            "SELECT coalesce(max(notification_id), 0) FROM ledger_events"))


def test_ship_receive_recall_a_list_in_one_event_each(world):
    ledger, cast = world
    serials = [f"MV{i:04d}" for i in range(50)]
    issue(ledger, cast, serials)
    before = stored(ledger)
    shipped, opening, r = move(ledger, cast, "BatchShipped", serials, confidential=SHIP, region="1101")
    assert r.status == "accepted", r
    assert stored(ledger) == (before[0] + 50, before[1] + 1, before[2] + 1, before[3] + 1)
    # The signed body holds only the 32-byte commitment: no consignee, territory or channel.
    assert b"distributor" not in shipped.signed.body
    chain = ledger.app.load_chain("label", serials[7])
    assert chain.broken is None and chain.length == 2 and chain.head == shipped.step_hashes()[7]
    assert (chain.state.status, chain.state.consignee, chain.state.territory, chain.state.channel) == ("in_transit", "distributor", "44", "retail")
    # Retrying the same bytes writes nothing more.
    assert ledger.append_batch(shipped.signed, shipped.manifest, opening=opening).status == "duplicate"
    _, _, r = move(ledger, cast, "BatchReceived", serials, signer="distributor", region="4403")
    assert r.status == "accepted", r
    chain = ledger.app.load_chain("label", serials[7])
    assert (chain.length, chain.state.status, chain.state.custodian) == (3, "received", "distributor")
    # A single event continues the chain from the batch step, and a batch from the single one.
    scan = cast.event("retailer", "label", serials[0], "Scanned", {"channel": "shelf", "region": "4403", "lat": None, "lon": None, "session": None},
                      seq=3, prev=chain.head if serials[0] == serials[7] else ledger.app.load_chain("label", serials[0]).head)
    assert ledger.append([scan])[0].status == "accepted"
    _, _, r = move(ledger, cast, "BatchRecalled", serials, reason="battery fire risk")
    assert r.status == "accepted", r
    first, other = ledger.app.load_chain("label", serials[0]), ledger.app.load_chain("label", serials[1])
    assert (first.length, first.state.recalled, first.broken) == (5, True, None)
    assert (other.length, other.state.recalled, other.broken) == (4, True, None)
    _, _, r = move(ledger, cast, "BatchDecommissioned", serials[:10], signer="distributor", reason="destroyed")
    assert r.status == "accepted", r
    assert ledger.app.load_chain("label", serials[3]).state.status == "decommissioned"


def test_one_bad_label_refuses_the_whole_batch_naming_it(world):
    ledger, cast = world
    serials = [f"BAD{i:04d}" for i in range(20)]
    issue(ledger, cast, serials)
    # Label 13 moves on (shipped alone) after the batch was signed: its step is stale.
    signed_on = heads(ledger, serials)
    alone = cast.event("acme", "label", serials[13], "Shipped", shipped_payload("distributor"), seq=1, prev=signed_on[13][2])
    assert ledger.append([alone])[0].status == "accepted"
    before = stored(ledger)
    b, opening = batches.movement("BatchShipped", signed_on, actor="acme", key=cast.keys["acme"], confidential=SHIP)
    r = ledger.append_batch(b.signed, b.manifest, opening=opening)
    assert r.status == "refused" and serials[13] in r.error.detail and "steps[13]" == r.error.field, r
    assert stored(ledger) == before
    # Not the custodian: a distributor cannot ship acme's labels; an unknown label; a receipt
    # by someone who is not the consignee. Each refused whole, nothing written.
    rest = serials[:13]
    for kind, signer, listed, kw, code in (
        ("BatchShipped", "distributor", rest, {"confidential": SHIP}, "not_authorized"),
        ("BatchReceived", "distributor", rest, {}, "invalid_transition"),
    ):
        _, _, r = move(ledger, cast, kind, listed, signer=signer, **kw)
        assert r.status == "refused" and r.error.code == code and rest[0] in r.error.detail, r
        assert stored(ledger) == before
    b, opening = batches.movement("BatchShipped", heads(ledger, rest) + [("NOSUCH01", 1, bytes(31) + b"\x01")], actor="acme", key=cast.keys["acme"], confidential=SHIP)
    r = ledger.append_batch(b.signed, b.manifest, opening=opening)
    assert r.status == "refused" and r.error.code == "unknown_subject" and "NOSUCH01" in r.error.detail
    assert stored(ledger) == before


def test_the_opening_must_match_the_signed_commitment(world):
    ledger, cast = world
    serials = [f"OPN{i:04d}" for i in range(5)]
    issue(ledger, cast, serials)
    before = stored(ledger)
    b, opening = batches.movement("BatchShipped", heads(ledger, serials), actor="acme", key=cast.keys["acme"], confidential=SHIP)
    # The operator (or anyone in between) swapping the consignee behind the signature is caught.
    lied = Opening(opening.salt, {**opening.fields, "consignee": "retailer"})
    for bad, code in ((None, "missing_opening"), (lied, "wrong_opening"), (Opening(bytes(16), opening.fields), "wrong_opening")):
        r = ledger.append_batch(b.signed, b.manifest, opening=bad)
        assert r.status == "refused" and r.error.code == code, r
    assert stored(ledger) == before
    # A receipt may seal nothing; then an opening is refused as unasked for.
    assert ledger.append_batch(b.signed, b.manifest, opening=opening).status == "accepted"
    rb, _ = batches.movement("BatchReceived", heads(ledger, serials), actor="distributor", key=cast.keys["distributor"])
    r = ledger.append_batch(rb.signed, rb.manifest, opening=opening)
    assert r.status == "refused" and r.error.code == "invalid_field"
    assert Opening.from_bytes(opening.to_bytes()) == opening
    # Issuance seals nothing: an opening sent with it is refused, not stored.
    more = batches.issuance(issued_payload(gtin()), ["OPN9999"], actor="acme", key=cast.keys["acme"])
    r = ledger.append_batch(more.signed, more.manifest, opening=opening)
    assert r.status == "refused" and r.error.field == "opening"
