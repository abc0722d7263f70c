"""``traceledger lot commission|transform|impact``: lots of material and products.

A supplier declares a lot with its certificates; a producer records which input
lots went into an output lot (EPCIS TransformationEvent); ``impact`` shows what
recalling a lot would reach. :func:`recall_input_lot` is the body of
``recall --input-lot`` (:mod:`traceledger.cli.lifecycle`): impact first, then sign.
"""

from __future__ import annotations

import sys

import click

from ledger import gs1
from ledger.errors import Refused
from traceledger import commands as cmd
from traceledger import packing
from traceledger.cli.base import (
    LedgerGroup,
    State,
    append_to_chains,
    common_options,
    emit,
    finish,
    pass_state,
    reader_key,
    reader_options,
    signing_options,
)


@click.group(cls=LedgerGroup)
@common_options
def lot() -> None:
    """Lots of material and products: certificates, transformations, recall impact."""


@lot.command("commission")
@signing_options
@click.option("--gtin", required=True)
@click.option("--lot", "lot_id", required=True)
@click.option("--product", required=True)
@click.option("--certificate", "certificates", multiple=True, metavar="TEXT", help="e.g. a CCC certificate number (repeatable).")
@click.option("--region", metavar="CODE")
@common_options
@pass_state
def lot_commission(state: State, key, as_actor, gtin, lot_id, product, certificates, region) -> None:
    """Declare a lot (a supplier's material or components) with its certificates."""
    subject = gs1.lot_key(gtin, lot_id)
    signer = cmd.Signer.load(key, as_actor)
    append_to_chains(state, signer, "lot", [subject], 1, "LotCommissioned", packing.lot_commissioned_payload(product, certificates, region=region), f"commission {subject}", new_chain_ok=True)


@lot.command("transform")
@signing_options
@click.option("--gtin", required=True, help="The output lot's GTIN.")
@click.option("--lot", "lot_id", required=True, help="The output lot.")
@click.option("--input", "inputs", multiple=True, required=True, metavar="GTIN/LOT", help="An input lot consumed (repeatable).")
@click.option("--region", metavar="CODE")
@common_options
@pass_state
def lot_transform(state: State, key, as_actor, gtin, lot_id, inputs, region) -> None:
    """Record that input lots were consumed to make an output lot (EPCIS TransformationEvent)."""
    subject = gs1.lot_key(gtin, lot_id)
    keys = [parse_lot_key(i) for i in inputs]
    signer = cmd.Signer.load(key, as_actor)
    append_to_chains(state, signer, "lot", [subject], 1, "Transformed", packing.transformed_payload(keys, region=region), f"transform into {subject}", new_chain_ok=True)


@lot.command("impact")
@click.argument("lot_key", metavar="GTIN/LOT")
@reader_options("Private key file of a regulator or the lot's producer.")
@common_options
@pass_state
def lot_impact(state: State, lot_key, key: str, as_actor: str | None) -> None:
    """What a recall of this lot would reach (a signed request)."""
    out = state.client().lot_impact(parse_lot_key(lot_key), reader_key(key, as_actor))
    emit(state, out, format_impact(out))


def parse_lot_key(text: str) -> str:
    """A ``GTIN/LOT`` argument as the ledger's lot key (GTIN normalised, lot validated)."""
    gtin, sep, lot_id = text.partition("/")
    if not sep:
        raise Refused("invalid_lot", f"{text!r} is not GTIN/LOT", field="lot")
    return gs1.lot_key(gtin, lot_id)


def format_impact(out: dict) -> str:
    """The human form of a recall's impact."""
    lines = [f"recalling {out['lot']} reaches {out['units']} units in {len(out['affected_lots'])} lots:"]
    for x in out["affected_lots"]:
        flag = "  (already recalled)" if x["recalled"] else ""
        lines.append(f"  {x['lot']:<40} {x['units']:>9} units  {x['product'] or ''}{flag}")
    return "\n".join(lines)


def recall_input_lot(state: State, signer: cmd.Signer, lot_key: str, reason: str, yes: bool) -> None:
    """Show what recalling ``lot_key`` reaches, confirm, then sign one lot ``Recalled`` event."""
    subject = parse_lot_key(lot_key)
    impact = state.client().lot_impact(subject, signer.key.with_actor(signer.actor))
    if not state.json:
        click.echo(format_impact(impact), err=True)
    if not yes:
        if state.json or not sys.stdin.isatty():
            raise Refused("confirmation_needed", f"recalling {subject} reaches {impact['units']} units; add --yes to sign", field="yes")
        click.confirm(f"sign the recall of {subject}?", abort=True, err=True)
    report = cmd.append_next(state.client(), signer, "lot", [subject], "Recalled", cmd.recalled_payload(reason), new_chain_ok=True)
    finish(state, report, f"recall input lot {subject}", impact=impact)


COMMANDS = (lot,)
