"""CLI verbs for containers, lots and EPCIS: ``container create``, ``pack``, ``unpack``,
``lot commission|transform|impact``, ``epcis export|capture``.

Shipping, receiving, recalling or decommissioning a container is the usual
``ship``/``receive``/``recall``/``decommission`` verb with the SSCC as argument;
``recall --input-lot`` is in :mod:`traceledger.cli` (it shows the impact first).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from ledger import gs1
from ledger.errors import Refused
from traceledger import commands as cmd, packing


def register(cli: click.Group) -> None:
    """Add the verbs to ``cli`` (helpers taken from the module that defines it, as alerts_cli does)."""
    host = sys.modules[cli.callback.__module__]
    LedgerGroup, common_options, signing_options, emit, finish, pass_state, apply = (
        host.LedgerGroup, host.common_options, host.signing_options, host.emit, host.finish, host.pass_state, host._apply,
    )

    @cli.group(cls=LedgerGroup)
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
    def container_create(state, key, as_actor, level, region, ssccs) -> None:
        """Commission containers (EPCIS commissioning of SSCCs)."""
        for code in ssccs:
            gs1.validate_sscc(code, "sscc")
        signer = cmd.Signer.load(key, as_actor)
        apply(state, signer, "container", list(ssccs), len(ssccs), "ContainerCreated", packing.container_created_payload(level, region=region), "create", new_chain_ok=True)

    @container.command("show")
    @click.argument("sscc")
    @common_options
    @pass_state
    def container_show(state, sscc) -> None:
        """A container's custody, shipment and contents."""
        gs1.validate_sscc(sscc, "sscc")
        out = state.client().container(sscc)
        if out is None:
            raise Refused("unknown_subject", f"container {sscc} does not exist", field="sscc")
        emit(state, out, f"{out['sscc']}  {out['level']}  {out['status']}  custodian {out['custodian']}  "
                         f"{out['contents']} inside" + ("  RECALLED" if out["recalled"] else ""))

    @cli.command()
    @signing_options
    @click.option("--into", "box", required=True, metavar="SSCC", help="The case or pallet.")
    @click.option("--region", metavar="CODE")
    @click.option("--from-csv", "from_csv", type=click.Path(exists=True, dir_okay=False), help="Children from this CSV's 'serial' column.")
    @click.argument("children", nargs=-1)
    @common_options
    @pass_state
    def pack(state, key, as_actor, box, region, from_csv, children) -> None:
        """Pack units (serials) or cases (SSCCs) into a container: all or nothing (EPCIS AggregationEvent ADD)."""
        kids = list(children) + (list(cmd.serials_from_csv(from_csv)) if from_csv else [])
        report = packing.pack(state.client(), cmd.Signer.load(key, as_actor), box, kids, region=region)
        finish(state, report, f"pack into {box}", container=box)

    @cli.command()
    @signing_options
    @click.option("--region", metavar="CODE")
    @click.argument("box", metavar="SSCC")
    @click.argument("children", nargs=-1)
    @common_options
    @pass_state
    def unpack(state, key, as_actor, region, box, children) -> None:
        """Take children (default: all) out of a container, signed by its custodian (EPCIS AggregationEvent DELETE)."""
        report = packing.unpack(state.client(), cmd.Signer.load(key, as_actor), box, list(children), region=region)
        finish(state, report, f"unpack {box}", container=box)

    @cli.group(cls=LedgerGroup)
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
    def lot_commission(state, key, as_actor, gtin, lot_id, product, certificates, region) -> None:
        """Declare a lot (a supplier's material or components) with its certificates."""
        subject = gs1.lot_key(gtin, lot_id)
        signer = cmd.Signer.load(key, as_actor)
        apply(state, signer, "lot", [subject], 1, "LotCommissioned", packing.lot_commissioned_payload(product, certificates, region=region), f"commission {subject}", new_chain_ok=True)

    @lot.command("transform")
    @signing_options
    @click.option("--gtin", required=True, help="The output lot's GTIN.")
    @click.option("--lot", "lot_id", required=True, help="The output lot.")
    @click.option("--input", "inputs", multiple=True, required=True, metavar="GTIN/LOT", help="An input lot consumed (repeatable).")
    @click.option("--region", metavar="CODE")
    @common_options
    @pass_state
    def lot_transform(state, key, as_actor, gtin, lot_id, inputs, region) -> None:
        """Record that input lots were consumed to make an output lot (EPCIS TransformationEvent)."""
        subject = gs1.lot_key(gtin, lot_id)
        keys = [gs1.lot_key(*_split(i)) for i in inputs]
        signer = cmd.Signer.load(key, as_actor)
        apply(state, signer, "lot", [subject], 1, "Transformed", packing.transformed_payload(keys, region=region), f"transform into {subject}", new_chain_ok=True)

    @lot.command("impact")
    @click.argument("lot_key", metavar="GTIN/LOT")
    @common_options
    @pass_state
    def lot_impact(state, lot_key) -> None:
        """What a recall of this lot would reach."""
        out = state.client().lot_impact(gs1.lot_key(*_split(lot_key)))
        emit(state, out, format_impact(out))

    @cli.group(cls=LedgerGroup)
    @common_options
    def epcis() -> None:
        """GS1 EPCIS 2.0 (JSON-LD) export and capture."""

    @epcis.command("export")
    @click.option("--serial")
    @click.option("--lot", "lot_key", metavar="GTIN/LOT")
    @click.option("--container", "box", metavar="SSCC")
    @click.option("--since", metavar="ISO-TIME")
    @click.option("--until", metavar="ISO-TIME")
    @click.option("--out", default="-", show_default=True, type=click.Path(dir_okay=False, allow_dash=True))
    @common_options
    @pass_state
    def epcis_export(state, serial, lot_key, box, since, until, out) -> None:
        """Export a label's, lot's or container's history, or a time range, as an EPCIS 2.0 document."""
        doc = state.client().epcis_events(serial=serial, lot=lot_key, container=box, since=since, until=until)
        text = json.dumps(doc, indent=2, ensure_ascii=False)
        if out == "-":
            click.echo(text)
        else:
            Path(out).write_text(text + "\n")
            click.echo(f"{len(doc['epcisBody']['eventList'])} EPCIS events written to {out}", err=True)

    @epcis.command("capture")
    @click.argument("path", type=click.Path(exists=True, dir_okay=False))
    @common_options
    @pass_state
    def epcis_capture(state, path) -> None:
        """Capture an EPCIS 2.0 document of traceledger-signed events (all or nothing)."""
        try:
            doc = json.loads(Path(path).read_text())
        except ValueError as exc:
            raise Refused("invalid_json", f"{path} is not JSON: {exc}", field="path") from None
        answer = state.client().epcis_capture(doc)
        job = state.client().capture_job(answer["captureID"])
        emit(state, job, f"capture {job['captureID']}: {answer['events']} events, success={job['success']}")


def _split(lot_key: str) -> tuple[str, str]:
    gtin, sep, lot = lot_key.partition("/")
    if not sep:
        raise Refused("invalid_lot", f"{lot_key!r} is not GTIN/LOT", field="lot")
    return gtin, lot


def format_impact(out: dict) -> str:
    """The human form of a recall's impact."""
    lines = [f"recalling {out['lot']} reaches {out['units']} units in {len(out['affected_lots'])} lots:"]
    for x in out["affected_lots"]:
        flag = "  (already recalled)" if x["recalled"] else ""
        lines.append(f"  {x['lot']:<40} {x['units']:>9} units  {x['product'] or ''}{flag}")
    return "\n".join(lines)


def recall_input_lot(state, signer: cmd.Signer, lot_key: str, reason: str, yes: bool, finish) -> None:
    """Show what recalling ``lot_key`` reaches, confirm, then sign one lot ``Recalled`` event."""
    subject = gs1.lot_key(*_split(lot_key))
    impact = state.client().lot_impact(subject)
    if not state.json:
        click.echo(format_impact(impact), err=True)
    if not yes:
        if state.json or not sys.stdin.isatty():
            raise Refused("confirmation_needed", f"recalling {subject} reaches {impact['units']} units; add --yes to sign", field="yes")
        click.confirm(f"sign the recall of {subject}?", abort=True, err=True)
    report = cmd.append_next(state.client(), signer, "lot", [subject], "Recalled", cmd.recalled_payload(reason), new_chain_ok=True)
    finish(state, report, f"recall input lot {subject}", impact=impact)
