"""The label lifecycle verbs: ``ship``, ``receive``, ``scan``, ``flag``, ``recall``, ``decommission``.

Each signs the next event of every target's chain; ``ship``, ``receive``, ``recall`` and
``decommission`` of labels sign one batch event per 8,192 labels by default (event.v3,
``--single-events`` for one event per label). Targets are ``SERIAL...``
arguments and/or ``--from-csv FILE`` (its ``serial`` column); an SSCC (18
digits) among them is a case or pallet, and one event on it covers everything
inside. ``recall`` also takes a whole lot (``--lot``/``--gtin``) or an input
lot (``--input-lot``, which shows the impact first: :mod:`traceledger.cli.lot`).
"""

from __future__ import annotations

import itertools
from typing import Callable, Iterable

import click

from ledger import gs1
from ledger.errors import Refused
from traceledger import commands as cmd
from traceledger.cli.base import State, append_to_chains, common_options, finish, pass_state, progress, signing_options
from traceledger.cli.lot import recall_input_lot


def label_targets(f: Callable) -> Callable:
    """``SERIAL...`` and ``--from-csv FILE`` (a CSV with a ``serial`` column)."""
    f = click.option("--from-csv", "from_csv", type=click.Path(exists=True, dir_okay=False), help="Read serials from this CSV's 'serial' column.")(f)
    f = click.argument("serials", nargs=-1)(f)
    return f


def _targets(serials: tuple[str, ...], from_csv: str | None) -> tuple[Iterable[str], int]:
    """All serials from the arguments then the CSV, streamed, and their count."""
    if not serials and not from_csv:
        raise Refused("missing_serials", "give SERIAL arguments or --from-csv FILE", field="serial")
    total = len(serials) + (cmd.count_csv_rows(from_csv) if from_csv else 0)
    return itertools.chain(serials, cmd.serials_from_csv(from_csv) if from_csv else ()), total


def single_events_option(f: Callable) -> Callable:
    """``--single-events``: one signed event per label (the event.v2 path) instead of batch events."""
    return click.option("--single-events", "single_events", is_flag=True,
                        help="Sign one event per label instead of one batch event per 8,192 labels.")(f)


def _label_verb(state: State, key: str, as_actor: str | None, serials, from_csv, kind: str, payload: dict, verb: str, *, batched: bool = False) -> None:
    signer = cmd.Signer.load(key, as_actor)
    # An SSCC (18 digits) is a case or pallet: one event on it covers everything inside.
    boxes = [s for s in serials if gs1.is_sscc(s)]
    if boxes:
        append_to_chains(state, signer, "container", boxes, len(boxes), kind, payload, f"{verb} containers")
        serials = tuple(s for s in serials if not gs1.is_sscc(s))
        if not serials and not from_csv:
            return
    subjects, total = _targets(serials, from_csv)
    if not batched:
        append_to_chains(state, signer, "label", subjects, total, kind, payload, verb)
        return
    # Batch events (event.v3): one signature per 8,192 labels, each label still checked alone.
    with progress(state, total, verb) as update:
        report = cmd.move_labels(state.client(), signer, kind, subjects, payload, on_progress=update)
    finish(state, report, verb, kind=kind, actor=signer.actor)


@click.command()
@signing_options
@click.option("--to", "consignee", required=True, metavar="ACTOR_ID", help="Consignee.")
@click.option("--territory", required=True, metavar="REGIONS", help="Authorized territory: region code prefixes, comma-separated (44,45).")
@click.option("--channel", required=True, help="Authorized sales channel.")
@click.option("--region", metavar="CODE", help="Where the goods leave.")
@single_events_option
@label_targets
@common_options
@pass_state
def ship(state: State, key, as_actor, consignee, territory, channel, region, single_events, serials, from_csv) -> None:
    """Ship labels to a consignee for a territory and channel (EPCIS shipping).

    In batch events by default: consignee, territory and channel are sealed in the signed
    body and disclosed only to entitled readers."""
    payload = cmd.shipped_payload(consignee, territory, channel, region=region)
    _label_verb(state, key, as_actor, serials, from_csv, "Shipped", payload, "ship", batched=not single_events)


@click.command()
@signing_options
@click.option("--region", metavar="CODE", help="Where the goods arrive.")
@single_events_option
@label_targets
@common_options
@pass_state
def receive(state: State, key, as_actor, region, single_events, serials, from_csv) -> None:
    """Receive shipped labels (signed by the consignee; EPCIS receiving); in batch events by default."""
    _label_verb(state, key, as_actor, serials, from_csv, "Received", cmd.received_payload(region=region), "receive", batched=not single_events)


@click.command()
@signing_options
@click.option("--channel", required=True, help="web, sms, voice, app, shelf...")
@click.option("--region", metavar="CODE")
@label_targets
@common_options
@pass_state
def scan(state: State, key, as_actor, channel, region, serials, from_csv) -> None:
    """Record signed scans (e.g. a retailer's shelf check)."""
    _label_verb(state, key, as_actor, serials, from_csv, "Scanned", cmd.scanned_payload(channel, region=region), "scan")


@click.command()
@signing_options
@click.option("--reason", required=True)
@click.option("--region", metavar="CODE", help="Where the fake was found.")
@label_targets
@common_options
@pass_state
def flag(state: State, key, as_actor, reason, region, serials, from_csv) -> None:
    """Flag labels as counterfeit (regulators)."""
    _label_verb(state, key, as_actor, serials, from_csv, "FlaggedCounterfeit", cmd.flagged_payload(reason, region=region), "flag")


@click.command()
@signing_options
@click.option("--reason", required=True)
@click.option("--lot", help="Recall a whole lot (with --gtin): one event on the lot.")
@click.option("--gtin")
@click.option("--input-lot", "input_lot", metavar="GTIN/LOT", help="Recall a material/component lot and everything made from it: shows the impact, then signs.")
@click.option("--yes", is_flag=True, help="With --input-lot: sign without asking.")
@single_events_option
@label_targets
@common_options
@pass_state
def recall(state: State, key, as_actor, reason, lot, gtin, input_lot, yes, single_events, serials, from_csv) -> None:
    """Recall a lot (--lot with --gtin), an input lot (--input-lot), or single labels or containers (producer or regulator)."""
    payload = cmd.recalled_payload(reason)
    if input_lot is not None:
        if lot or gtin or serials or from_csv:
            raise Refused("invalid_option", "--input-lot is recalled on its own", field="input-lot")
        recall_input_lot(state, cmd.Signer.load(key, as_actor), input_lot, reason, yes)
        return
    if lot is None and gtin is None:
        _label_verb(state, key, as_actor, serials, from_csv, "Recalled", payload, "recall", batched=not single_events)
        return
    if lot is None or gtin is None:
        raise Refused("invalid_option", "a lot recall needs both --lot and --gtin", field="lot" if lot is None else "gtin")
    if serials or from_csv:
        raise Refused("invalid_option", "recall either a lot (--lot/--gtin) or serials, not both", field="serial")
    subject = gs1.lot_key(gtin, lot)
    signer = cmd.Signer.load(key, as_actor)
    append_to_chains(state, signer, "lot", [subject], 1, "Recalled", payload, f"recall lot {subject}", new_chain_ok=True)


@click.command()
@signing_options
@click.option("--reason", required=True)
@single_events_option
@label_targets
@common_options
@pass_state
def decommission(state: State, key, as_actor, reason, single_events, serials, from_csv) -> None:
    """Decommission labels (custodian or producer; EPCIS decommissioning); in batch events by default."""
    _label_verb(state, key, as_actor, serials, from_csv, "Decommissioned", cmd.decommissioned_payload(reason), "decommission", batched=not single_events)


COMMANDS = (ship, receive, scan, flag, recall, decommission)
