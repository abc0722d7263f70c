"""``traceledger container create|show``, ``pack`` and ``unpack``: cases and pallets (SSCC).

Packing and unpacking are all-or-nothing batches (:mod:`traceledger.packing`).
Shipping, receiving, recalling or decommissioning a container is the usual
``ship``/``receive``/``recall``/``decommission`` verb with the SSCC as argument
(:mod:`traceledger.cli.lifecycle`).
"""

from __future__ import annotations

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
def container() -> None:
    """Cases and pallets (SSCC, GS1 AI 00)."""


@container.command("create")
@signing_options
@click.option("--level", required=True, type=click.Choice(["case", "pallet"]))
@click.option("--region", metavar="CODE")
@click.argument("ssccs", nargs=-1, required=True)
@common_options
@pass_state
def container_create(state: State, key, as_actor, level, region, ssccs) -> None:
    """Commission containers (EPCIS commissioning of SSCCs)."""
    for code in ssccs:
        gs1.validate_sscc(code, "sscc")
    signer = cmd.Signer.load(key, as_actor)
    append_to_chains(state, signer, "container", list(ssccs), len(ssccs), "ContainerCreated", packing.container_created_payload(level, region=region), "create", new_chain_ok=True)


@container.command("show")
@click.argument("sscc")
@reader_options("Private key file of a regulator, or the container's producer, custodian or consignee.")
@common_options
@pass_state
def container_show(state: State, sscc, key: str, as_actor: str | None) -> None:
    """A container's custody, shipment and contents (a signed request)."""
    gs1.validate_sscc(sscc, "sscc")
    out = state.client().container(sscc, reader_key(key, as_actor))
    if out is None:
        raise Refused("unknown_subject", f"container {sscc} does not exist", field="sscc")
    emit(state, out, f"{out['sscc']}  {out['level']}  {out['status']}  custodian {out['custodian']}  "
                     f"{out['contents']} inside" + ("  RECALLED" if out["recalled"] else ""))


@click.command()
@signing_options
@click.option("--into", "box", required=True, metavar="SSCC", help="The case or pallet.")
@click.option("--region", metavar="CODE")
@click.option("--from-csv", "from_csv", type=click.Path(exists=True, dir_okay=False), help="Children from this CSV's 'serial' column.")
@click.argument("children", nargs=-1)
@common_options
@pass_state
def pack(state: State, key, as_actor, box, region, from_csv, children) -> None:
    """Pack units (serials) or cases (SSCCs) into a container: all or nothing (EPCIS AggregationEvent ADD)."""
    kids = list(children) + (list(cmd.serials_from_csv(from_csv)) if from_csv else [])
    report = packing.pack(state.client(), cmd.Signer.load(key, as_actor), box, kids, region=region)
    finish(state, report, f"pack into {box}", container=box)


@click.command()
@signing_options
@click.option("--region", metavar="CODE")
@click.argument("box", metavar="SSCC")
@click.argument("children", nargs=-1)
@common_options
@pass_state
def unpack(state: State, key, as_actor, region, box, children) -> None:
    """Take children (default: all) out of a container, signed by its custodian (EPCIS AggregationEvent DELETE)."""
    report = packing.unpack(state.client(), cmd.Signer.load(key, as_actor), box, list(children), region=region)
    finish(state, report, f"unpack {box}", container=box)


COMMANDS = (container, pack, unpack)
