"""``traceledger actor register|profile|rotate|revoke|compromise|show``: the ledger's members and their keys.

Registering and revoking are signed by a registrar; a profile change (names in
Chinese and English, hotline, website, GLN / PGLN) and a key rotation by the
actor itself or a registrar; declaring a key compromised since a time by a
registrar or a regulator. ``show`` reads the public actor record.
"""

from __future__ import annotations

from datetime import datetime, timezone

import click

from ledger.errors import Refused
from ledger.events import ROLES, validate_actor_id
from traceledger import commands as cmd
from traceledger.cli.base import LedgerGroup, State, append_to_chains, common_options, emit, finish, pass_state, signing_options


@click.group(cls=LedgerGroup)
@common_options
def actor() -> None:
    """Register, rotate, revoke and show actors."""


def profile_options(f):
    """The public profile an actor carries (event.v4): every option optional."""
    for option in reversed((
        click.option("--name-zh", "name_zh", help="Name in Chinese."),
        click.option("--name-en", "name_en", help="Name in English."),
        click.option("--hotline", help="Consumer hotline (digits, spaces, '-', leading '+')."),
        click.option("--website", help="https:// URL."),
        click.option("--gln", help="GS1 GLN (13 digits) of the actor's main site."),
        click.option("--pgln", help="GS1 party GLN (13 digits)."),
    )):
        f = option(f)
    return f


def _profile(name_zh: str | None, name_en: str | None, hotline: str | None, website: str | None, gln: str | None, pgln: str | None) -> dict:
    return {"name_zh": name_zh, "name_en": name_en, "hotline": hotline, "website": website, "gln": gln, "pgln": pgln}


@actor.command("register")
@signing_options
@click.option("--id", "actor_id", required=True, metavar="ID", help="The new actor's id.")
@click.option("--role", required=True, type=click.Choice(ROLES))
@click.option("--name", required=True)
@click.option("--public-key", "public_key", required=True, type=click.Path(dir_okay=False), help="The actor's FILE.pub (or key file).")
@click.option("--gtin-prefix", "gtin_prefixes", multiple=True, metavar="P", help="GS1 company prefix a producer may issue under (repeatable).")
@click.option("--scheme", "schemes", multiple=True, metavar="S", help="Certification scheme a certifier certifies under, e.g. CCC (repeatable).")
@profile_options
@common_options
@pass_state
def actor_register(state: State, key: str, as_actor: str | None, actor_id: str, role: str, name: str, public_key: str, gtin_prefixes: tuple[str, ...],
                   schemes: tuple[str, ...], **profile: str | None) -> None:
    """Register an actor (signed by a registrar)."""
    validate_actor_id(actor_id, "id")
    signer = cmd.Signer.load(key, as_actor)
    payload = cmd.actor_registered_payload(role, name, cmd.read_public_key(public_key), gtin_prefixes) | {"schemes": list(schemes)} | _profile(**profile)
    signer.check("actor", "ActorRegistered", payload, subject=actor_id)
    if state.client().actor(actor_id) is not None:
        raise Refused("already_registered", f"actor {actor_id} is already registered", field="id")
    report = cmd.submit(state.client(), [signer.sign("actor", actor_id, "ActorRegistered", payload)])
    finish(state, report, f"register {actor_id}", actor=actor_id)


@actor.command("profile")
@signing_options
@click.option("--id", "actor_id", required=True, metavar="ID", help="The actor whose profile changes.")
@profile_options
@common_options
@pass_state
def actor_profile(state: State, key: str, as_actor: str | None, actor_id: str, **profile: str | None) -> None:
    """Replace an actor's public profile (signed by the actor itself or a registrar); an option left out is cleared."""
    validate_actor_id(actor_id, "id")
    signer = cmd.Signer.load(key, as_actor)
    payload = _profile(**profile)
    signer.check("actor", "ActorProfileChanged", payload, subject=actor_id)
    append_to_chains(state, signer, "actor", [actor_id], 1, "ActorProfileChanged", payload, f"profile {actor_id}")


@actor.command("rotate")
@signing_options
@click.option("--id", "actor_id", required=True, metavar="ID", help="The actor whose key changes.")
@click.option("--new-key", "new_key", required=True, type=click.Path(dir_okay=False), help="The new key file (or its .pub).")
@common_options
@pass_state
def actor_rotate(state: State, key: str, as_actor: str | None, actor_id: str, new_key: str) -> None:
    """Rotate an actor's key (signed by the actor itself or a registrar)."""
    validate_actor_id(actor_id, "id")
    signer = cmd.Signer.load(key, as_actor)
    payload = cmd.key_rotated_payload(cmd.read_public_key(new_key, "new-key"))
    append_to_chains(state, signer, "actor", [actor_id], 1, "ActorKeyRotated", payload, f"rotate {actor_id}")


@actor.command("revoke")
@signing_options
@click.option("--id", "actor_id", required=True, metavar="ID")
@click.option("--reason", required=True)
@common_options
@pass_state
def actor_revoke(state: State, key: str, as_actor: str | None, actor_id: str, reason: str) -> None:
    """Revoke an actor (signed by a registrar)."""
    validate_actor_id(actor_id, "id")
    signer = cmd.Signer.load(key, as_actor)
    append_to_chains(state, signer, "actor", [actor_id], 1, "ActorRevoked", cmd.actor_revoked_payload(reason), f"revoke {actor_id}")


@actor.command("compromise")
@signing_options
@click.option("--id", "actor_id", required=True, metavar="ID", help="The actor whose key leaked.")
@click.option("--key-id", "key_id", required=True, metavar="HEX", help="The compromised key's id (the actor's current or a former key).")
@click.option("--since", required=True, metavar="TIME", help="ISO 8601 time with its zone from which the key counts as in other hands.")
@click.option("--reason", required=True)
@common_options
@pass_state
def actor_compromise(state: State, key: str, as_actor: str | None, actor_id: str, key_id: str, since: str, reason: str) -> None:
    """Declare a key compromised since TIME (ActorKeyCompromised, signed by a registrar or a regulator).

    The key signs nothing more; what it signed from TIME on reads as suspect.
    """
    validate_actor_id(actor_id, "id")
    try:
        when = datetime.fromisoformat(since)
    except ValueError:
        raise Refused("invalid_field", "since must be an ISO 8601 time, e.g. 2026-03-01T08:00:00+08:00", field="since") from None
    if when.tzinfo is None:
        raise Refused("invalid_field", "since must name its time zone (e.g. +08:00 or Z)", field="since")
    signer = cmd.Signer.load(key, as_actor)
    payload = {"key_id": key_id, "since": when.astimezone(timezone.utc), "reason": reason}
    signer.check("actor", "ActorKeyCompromised", payload, subject=actor_id)
    append_to_chains(state, signer, "actor", [actor_id], 1, "ActorKeyCompromised", payload, f"compromise {actor_id}'s key")


@actor.command("show")
@click.argument("actor_id")
@common_options
@pass_state
def actor_show(state: State, actor_id: str) -> None:
    """Show a registered actor."""
    validate_actor_id(actor_id, "id")
    found = state.client().actor(actor_id)
    if found is None:
        raise Refused("unknown_actor", f"actor {actor_id} is not registered", field="id")
    prefixes = ", ".join(found.get("gtin_prefixes") or []) or "-"
    text = (
        f"{found['actor_id']}  {found.get('role')}  {found.get('name')}{'  REVOKED' if found.get('revoked') else ''}\n"
        f"  key id        {found.get('key_id')}\n"
        f"  gtin prefixes {prefixes}"
    )
    emit(state, found, text)


COMMANDS = (actor,)
