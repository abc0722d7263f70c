"""Signed requests: a registered actor's key authenticates it to the API."""

from dataclasses import replace

import pytest

from ledger.errors import Refused
from ledger.keys import KeyPair
from tests.helpers import Cast
from traceledger.auth import Caller, authorization_header, parse_header, require, verify_request

NOW = 1_800_000_000


@pytest.fixture
def cast():
    return Cast()


def lookup(cast, **overrides):
    states = {a: cast.actor_state(a) for a in cast.ROLES} | overrides
    return states.get


def signed(cast, actor="acme", method="GET", target="/v1/alerts?kind=x", now=NOW):
    return authorization_header(cast.keys[actor], method, target, now=now)


def code_of(fn) -> str:
    with pytest.raises(Refused) as err:
        fn()
    return err.value.code


def test_a_good_signature_names_the_caller_and_role(cast):
    caller = verify_request(signed(cast), "GET", "/v1/alerts?kind=x", lookup(cast), now=NOW + 10)
    assert caller == Caller("acme", "producer")
    assert caller.may_see_producer("acme") and not caller.may_see_producer("other-producer")


def test_regulator_sees_every_producer(cast):
    caller = verify_request(signed(cast, "regulator"), "GET", "/v1/alerts?kind=x", lookup(cast), now=NOW)
    assert caller.may_see_producer("acme") and caller.may_see_producer(None)


@pytest.mark.parametrize("method,target", [("POST", "/v1/alerts?kind=x"), ("GET", "/v1/alerts?kind=y"), ("GET", "/v1/alerts")])
def test_signature_covers_method_path_and_query(cast, method, target):
    assert code_of(lambda: verify_request(signed(cast), method, target, lookup(cast), now=NOW)) == "unauthenticated"


@pytest.mark.parametrize("skew", [-301, 301])
def test_stale_or_future_signatures_are_refused(cast, skew):
    assert code_of(lambda: verify_request(signed(cast), "GET", "/v1/alerts?kind=x", lookup(cast), now=NOW + skew)) == "unauthenticated"


def test_revoked_or_rotated_keys_stop_working(cast):
    acme = cast.actor_state("acme")
    revoked = lookup(cast, acme=replace(acme, revoked=True))
    rotated = lookup(cast, acme=replace(acme, public_key=KeyPair.generate().public_key))
    unknown = lookup(cast, acme=None)
    for actors in (revoked, rotated, unknown):
        assert code_of(lambda: verify_request(signed(cast), "GET", "/v1/alerts?kind=x", actors, now=NOW)) == "unauthenticated"  # noqa: B023 - called within this iteration


def test_another_actors_key_cannot_claim_a_name(cast):
    forged = authorization_header(cast.keys["other-producer"].with_actor("acme"), "GET", "/v1/alerts", now=NOW)
    assert code_of(lambda: verify_request(forged, "GET", "/v1/alerts", lookup(cast), now=NOW)) == "unauthenticated"


@pytest.mark.parametrize("header", [
    "Bearer abc", 'TraceLedger-Ed25519 actor="acme"', 'TraceLedger-Ed25519 actor="acme", ts="x", sig="AA"',
    'TraceLedger-Ed25519 actor="acme", ts="1", sig="AAAA"', "TraceLedger-Ed25519 junk", "TraceLedger-Ed25519 " + "\x00" * 10,
])
def test_malformed_headers_are_refused_clearly(header):
    assert code_of(lambda: parse_header(header)) == "unauthenticated"


def test_require_checks_presence_and_role():
    assert code_of(lambda: require(None)) == "unauthenticated"
    assert code_of(lambda: require(Caller("acme", "producer"), "regulator")) == "forbidden"
    assert require(Caller("reg", "regulator"), "regulator").actor_id == "reg"
