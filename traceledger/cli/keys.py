"""``traceledger keygen`` and ``traceledger init``: key files and a ledger's first actor.

- ``keygen --out FILE``: a fresh Ed25519 key pair (private file 0600, public ``FILE.pub``).
- ``init --key FILE --id ACTOR_ID``: the registrar registers itself with its own key;
  running it again with the same key is a no-op, with another key it is refused.
"""

from __future__ import annotations

from pathlib import Path

import click

from ledger.errors import Refused
from ledger.events import validate_actor_id
from ledger.keys import KeyPair
from traceledger import commands as cmd
from traceledger.cli.base import State, common_options, emit, finish, pass_state


@click.command()
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="Private key file to write (FILE.pub beside it).")
@click.option("--actor", "actor_id", metavar="ID", help="Actor id to record in the key file.")
@common_options
@pass_state
def keygen(state: State, out: str, actor_id: str | None) -> None:
    """Generate an Ed25519 key pair (private file 0600, public FILE.pub)."""
    if actor_id is not None:
        validate_actor_id(actor_id, "actor")
    if Path(out).exists():
        raise Refused("file_exists", f"{out} exists; refusing to overwrite a key", field="out")
    pair = KeyPair.generate(actor_id)
    try:
        pair.save(out)
    except FileExistsError as exc:
        raise Refused("file_exists", str(exc), field="out") from None
    emit(state, {"key_id": pair.key_id, "public_key": pair.public_key.hex(), "actor": actor_id, "out": out, "pub": f"{out}.pub"}, pair.key_id)


@click.command()
@click.option("--key", required=True, type=click.Path(dir_okay=False), help="The registrar's private key file.")
@click.option("--id", "actor_id", required=True, metavar="ACTOR_ID", help="The registrar's actor id.")
@click.option("--name", help="Display name (default: the id).")
@common_options
@pass_state
def init(state: State, key: str, actor_id: str, name: str | None) -> None:
    """Bootstrap a ledger: the registrar registers itself with its own key."""
    validate_actor_id(actor_id, "id")
    signer = cmd.Signer.load(key, actor_id)
    if signer.key.actor not in (None, actor_id):
        raise Refused("key_mismatch", f"{key} belongs to actor {signer.key.actor}, not {actor_id}", field="id")
    existing = state.client().actor(actor_id)
    if existing is not None:
        _already_registered(state, existing, signer)
        return
    payload = cmd.actor_registered_payload("registrar", name or actor_id, signer.key.public_key, [])
    report = cmd.submit(state.client(), [signer.sign("actor", actor_id, "ActorRegistered", payload)])
    finish(state, report, f"init {actor_id}", actor=actor_id, key_id=signer.key.key_id)


def _already_registered(state: State, existing: dict, signer: cmd.Signer) -> None:
    if existing.get("key_id") != signer.key.key_id or existing.get("role") != "registrar":
        raise Refused(
            "already_registered",
            f"actor {signer.actor} is already registered as {existing.get('role')} with key {str(existing.get('key_id'))[:16]}…",
            field="id",
        )
    emit(state, {"actor": signer.actor, "key_id": signer.key.key_id, "already_registered": True, "accepted": 0}, f"registrar {signer.actor} is already registered with this key")


COMMANDS = (keygen, init)
