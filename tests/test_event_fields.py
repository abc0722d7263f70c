"""Field rules: every bad field is refused with its name, before anything is signed."""

from datetime import datetime, timezone

import pytest

from ledger.errors import Refused
from ledger.events import new_event
from tests.helpers import Cast, gtin, issued_payload, scanned_payload


def build(kind="Issued", payload=None, **kw):
    cast = Cast()
    key = cast.keys["acme"]
    args = dict(subject_type="label", subject="SERIAL1", kind=kind, payload=payload or issued_payload(), actor="acme", key_id=key.key_id)
    args.update(kw)
    return new_event(**args).sign(key)


@pytest.mark.parametrize(
    "payload, field",
    [
        (issued_payload(g="06901234000011"), "gtin"),  # wrong check digit
        (issued_payload(g=gtin()[1:]), "gtin"),  # not GTIN-14 form
        (issued_payload(lot=""), "lot"),
        (issued_payload(lot="L" * 21), "lot"),
        (issued_payload(product="x" * 201), "product"),
        (issued_payload(product="bad\x00name"), "product"),
        (issued_payload(product="   "), "product"),
        (issued_payload(expiry="2026-02-30"), "expiry"),
        (issued_payload(region="GD"), "region"),
    ],
)
def test_bad_issued_fields(payload, field):
    with pytest.raises(Refused) as err:
        build(payload=payload)
    assert err.value.field == field


def test_bad_envelope_fields():
    for kw, field in [
        (dict(subject="A" * 21), "subject"),
        (dict(actor="Not An Id"), "actor"),
        (dict(event_id="not-a-uuid"), "event_id"),
        (dict(seq=1), "prev_hash"),  # seq 1 with genesis prev_hash
        (dict(kind="Shipped", payload=issued_payload()), "consignee"),
        (dict(subject_type="lot"), "subject"),
        (dict(occurred_at=datetime(1999, 1, 1, tzinfo=timezone.utc)), "occurred_at"),
    ]:
        with pytest.raises(Refused) as err:
            build(**kw)
        assert err.value.field == field, kw


def test_scan_coordinates_must_be_coarse():
    p = scanned_payload() | {"lat": 22.543096, "lon": 114.05}
    with pytest.raises(Refused) as err:
        build(kind="Scanned", payload=p)
    assert err.value.field == "lat"
    build(kind="Scanned", payload=scanned_payload() | {"lat": 22.54, "lon": 114.05})


def test_event_kind_must_fit_subject_type():
    with pytest.raises(Refused):
        build(subject_type="actor", subject="acme")
