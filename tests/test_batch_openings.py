"""Who reads a batch movement's sealed fields (issue 14 item 3, on the real API).

The signed body of a batch shipment holds a salted commitment to its consignee, territory
and channel. A competitor or an anonymous reader gets only that; the entitled readers (the
signer, the consignee, the labels' producer, regulators) get the opening and check it
against the signed commitment themselves.
"""

from __future__ import annotations

import base64

from ledger import batches, commitments
from ledger.events import SignedEvent
from ledger.service import Ledger
from tests.helpers import gtin, issued_payload, signed_get
from traceledger.client import Client

SHIP = {"consignee": "distributor", "territory": "44", "channel": "retail"}


def test_only_entitled_readers_open_a_shipment(api):
    settings, cast, url = api["settings"], api["cast"], api["url"]
    ledger = Ledger(settings)
    try:
        assert all(r.status == "accepted" for r in ledger.append(cast.founding_events()))
        serials = [f"OP{i:05d}" for i in range(40)]
        issued = batches.issuance(issued_payload(gtin()), serials, actor="acme", key=cast.keys["acme"])
        shipped, opening = batches.movement("BatchShipped", [(s, 1, h) for s, h in zip(serials, issued.step_hashes())],
                                            actor="acme", key=cast.keys["acme"], confidential=SHIP, region="1101")
    finally:
        ledger.close()
    with Client(url) as client:
        assert client.post_batch_event(issued.signed, issued.manifest)["status"] == "accepted"
        # Through the API: the opening travels beside the signed body and is checked there.
        lying = batches.Opening(opening.salt, {**opening.fields, "territory": "11"}).as_json()
        refused = client.post_batch_event(shipped.signed, shipped.manifest, lying)
        assert refused["status"] == "refused" and refused["code"] == "wrong_opening"
        assert client.post_batch_event(shipped.signed, shipped.manifest, opening.as_json())["status"] == "accepted"

    path = f"/v1/batches/{shipped.signed.event.subject}"
    assert signed_get(url, path, None).status_code == 401
    for outsider in ("other-producer", "retailer", "gateway"):
        answer = signed_get(url, path, cast.keys[outsider])
        assert answer.status_code == 403, (outsider, answer.text)
        assert "distributor" not in answer.text and "retail\"" not in answer.text
    for entitled in ("acme", "distributor", "regulator"):
        answer = signed_get(url, path, cast.keys[entitled])
        assert answer.status_code == 200, (entitled, answer.text)
        got = answer.json()
        body = SignedEvent.from_parts(base64.b64decode(got["body"]), base64.b64decode(got["signature"]))
        disclosed = batches.Opening.from_json(got["opening"])
        # The reader checks the disclosure against the commitment the producer signed.
        assert commitments.check_disclosure(body.event.payload["sealed"], disclosed.salt, disclosed.fields)
        assert disclosed.fields == SHIP
    # What the public holds of the event (the body) names none of the sealed fields.
    assert b"distributor" not in shipped.signed.body and b"retail" not in shipped.signed.body
    # Without the salt, guessing the consignee among the registered actors does not work:
    # the commitment is salted with 128 random bits.
    for guess in ("distributor", "retailer"):
        assert not commitments.check_disclosure(shipped.signed.event.payload["sealed"], bytes(16), {**SHIP, "consignee": guess})
