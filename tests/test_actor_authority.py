"""Actor chains: only the registrar admits, revokes and rotates; an actor may rotate its own key.

README's event table: ActorRegistered / ActorKeyRotated / ActorRevoked are signed by
the registrar ("rotation also the actor itself"). Every other member of the cast tries
each one against the real ledger; each try must be refused with ``not_authorized`` and
write nothing, and the actor chain must stay as it was.
"""

from __future__ import annotations

import pytest

from ledger.keys import KeyPair
from ledger.service import Ledger
from tests.helpers import Cast, append_accepted, gtin

NOT_REGISTRAR = [a for a in Cast.ROLES if a != "registrar"]


@pytest.fixture
def world(settings):
    ledger = Ledger(settings)
    cast = Cast()
    append_accepted(ledger, cast.founding_events())
    yield ledger, cast
    ledger.close()


def refused(ledger: Ledger, signed) -> str:
    """The refusal code; fails if the event got in or anything was written."""
    before = ledger.app.recorder.max_notification_id()
    [result] = ledger.append([signed])
    assert result.status == "refused", (signed.event.kind, signed.event.actor, signed.event.subject)
    assert ledger.app.recorder.max_notification_id() == before, "a refused actor event wrote something"
    return result.error.code


def registration(cast: Cast, signer: str, actor: str, role: str = "retailer"):
    key = KeyPair.generate(actor)
    return cast.event(signer, "actor", actor, "ActorRegistered",
                      {"role": role, "name": actor, "public_key": key.public_key, "gtin_prefixes": []}, advance=False)


@pytest.mark.parametrize("signer", NOT_REGISTRAR)
def test_only_the_registrar_registers(world, signer):
    ledger, cast = world
    assert refused(ledger, registration(cast, signer, f"new-by-{signer}")) == "not_authorized"
    assert ledger.actor(f"new-by-{signer}") is None
    # Not even a registrar role can be granted by anyone else.
    assert refused(ledger, registration(cast, signer, f"boss-by-{signer}", role="registrar")) == "not_authorized"
    append_accepted(ledger, [registration(cast, "registrar", f"new-by-{signer}")])


@pytest.mark.parametrize("signer", NOT_REGISTRAR)
def test_only_the_registrar_revokes(world, signer):
    ledger, cast = world
    for victim in ("retailer", signer):  # someone else, and itself
        revoke = cast.event(signer, "actor", victim, "ActorRevoked", {"reason": "not yours to do"}, advance=False)
        assert refused(ledger, revoke) == "not_authorized"
        assert not ledger.actor(victim).revoked
    append_accepted(ledger, [cast.event("registrar", "actor", "retailer", "ActorRevoked", {"reason": "licence withdrawn"})])
    assert ledger.actor("retailer").revoked


@pytest.mark.parametrize("signer", NOT_REGISTRAR)
def test_nobody_rotates_another_actors_key(world, signer):
    ledger, cast = world
    victim = "distributor" if signer != "distributor" else "retailer"
    attacker_key = KeyPair.generate(victim)
    rotate = cast.event(signer, "actor", victim, "ActorKeyRotated", {"public_key": attacker_key.public_key}, advance=False)
    assert refused(ledger, rotate) == "not_authorized"
    assert ledger.actor(victim).public_key == cast.keys[victim].public_key


def test_an_actor_rotates_its_own_key_and_the_old_one_stops_signing(world):
    ledger, cast = world
    new_key = KeyPair.generate("acme")
    # Signed with acme's current key, about acme itself.
    append_accepted(ledger, [cast.event("acme", "actor", "acme", "ActorKeyRotated", {"public_key": new_key.public_key})])
    assert ledger.actor("acme").public_key == new_key.public_key
    old = cast.issue("ROT1")
    assert refused(ledger, old) == "revoked_key"
    cast.heads.pop(("label", "ROT1"))
    cast.keys["acme"] = new_key
    append_accepted(ledger, [cast.issue("ROT1", g=gtin())])
    # The registrar may rotate it too (a lost key), and the actor's old key cannot undo that.
    newer = KeyPair.generate("acme")
    append_accepted(ledger, [cast.event("registrar", "actor", "acme", "ActorKeyRotated", {"public_key": newer.public_key})])
    assert ledger.actor("acme").public_key == newer.public_key
    back = cast.event("acme", "actor", "acme", "ActorKeyRotated", {"public_key": new_key.public_key}, advance=False)
    assert refused(ledger, back) == "revoked_key"


def test_a_revoked_actor_cannot_rotate_itself_back(world):
    ledger, cast = world
    append_accepted(ledger, [cast.event("registrar", "actor", "retailer", "ActorRevoked", {"reason": "licence withdrawn"})])
    rotate = cast.event("retailer", "actor", "retailer", "ActorKeyRotated", {"public_key": KeyPair.generate("retailer").public_key}, advance=False)
    assert refused(ledger, rotate) == "revoked"
    assert ledger.actor("retailer").revoked
