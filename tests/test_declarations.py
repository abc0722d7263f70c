"""Who may declare an event in error, on the real ledger (PostgreSQL): ``ledger.declarations``.

The attack: a label's custodian (or anyone the chain rules let declare on it) posts a
``Retracted`` naming its producer's ``Issued`` straight to the write path, and the EPCIS
export then shows the producer's commissioning as an error. The capture door refused
this; the ledger itself did not. Now the declared event must be on the same chain and
signed by the declarer, a regulator excepted; a refused declaration writes nothing.
"""

from __future__ import annotations

import uuid

from ledger import gs1
from tests.helpers import Cast, issued_payload, shipped_payload
from tests.pipeline import founded_ledger


def retract(cast: Cast, actor: str, serial: str, event_id: str, **kw):
    return cast.event(actor, "label", serial, "Retracted", {"event_id": event_id, "reason": "did_not_occur"}, **kw)


def test_only_the_declared_events_signer_or_a_regulator_declares_it_in_error(fresh_settings):
    with founded_ledger(fresh_settings(), Cast()) as (settings, ledger, cast):
        serial, other = gs1.new_serial(), gs1.new_serial()
        issued = cast.event("acme", "label", serial, "Issued", issued_payload())
        shipped = cast.event("acme", "label", serial, "Shipped", shipped_payload("distributor"))
        received = cast.event("distributor", "label", serial, "Received", {"region": None})
        elsewhere = cast.event("acme", "label", other, "Issued", issued_payload())
        assert all(r.status == "accepted" for r in ledger.append([issued, shipped, received, elsewhere]))
        head = ledger.head("label", serial)

        attacks = {
            "the custodian declares its producer's Issued": (retract(cast, "distributor", serial, issued.event.event_id, advance=False), "not_authorized"),
            "the producer declares the custodian's Received": (retract(cast, "acme", serial, received.event.event_id, advance=False), "not_authorized"),
            "an event that never was": (retract(cast, "distributor", serial, str(uuid.uuid4()), advance=False), "unknown_event"),
            "an event of another label": (retract(cast, "acme", serial, elsewhere.event.event_id, advance=False), "unknown_event"),
        }
        for name, (attack, code) in attacks.items():
            (result,) = ledger.append([attack])
            assert (result.status, result.error and result.error.code) == ("refused", code), (name, result)
            assert ledger.head("label", serial) == head, f"{name}: something was written"

        # The signer declares its own event; one earlier in the same request counts; a regulator declares any.
        own = retract(cast, "distributor", serial, received.event.event_id)
        reshipped = cast.event("distributor", "label", serial, "Shipped", shipped_payload("retailer"))
        same_request = retract(cast, "distributor", serial, reshipped.event.event_id)
        by_regulator = retract(cast, "regulator", serial, issued.event.event_id)
        results = ledger.append([own, reshipped, same_request, by_regulator])
        assert [r.status for r in results] == ["accepted"] * 4, results
