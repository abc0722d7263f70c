"""The ``traceledger`` command line: sign events client-side and talk to the API.

Exit codes: 0 success, 2 input refused (a one-line reason naming the field or
code at fault on stderr), 1 internal failure (API unavailable, a bug).
``--json`` puts machine-readable output on stdout (and errors as
``{"error": ...}``); ``--api URL`` (or TRACELEDGER_API) picks the API. Both
are accepted before or after the verb.
"""

from __future__ import annotations

import itertools
import json
import sys
import traceback
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Iterator

import click

from ledger import gs1
from ledger.errors import Refused
from ledger.events import ROLES, validate_actor_id
from ledger.keys import KeyPair
from traceledger import commands as cmd
from traceledger.client import ApiUnavailable, Client
from ledger.config import Settings

SHOW_REFUSALS = 5
PROGRESS_MIN = 200  # smaller inputs finish before a bar would be worth drawing


# ---------------------------------------------------------------- context


@dataclass
class State:
    """Per-invocation options and the lazily opened API client."""

    settings: Settings = field(default_factory=Settings.from_env)
    json: bool = False
    _client: Client | None = None

    def client(self) -> Client:
        if self._client is None:
            self._client = Client(settings=self.settings)
        return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None


pass_state = click.make_pass_decorator(State, ensure=True)


def _set_json(ctx: click.Context, _param, value: bool) -> None:
    if value:
        ctx.ensure_object(State).json = True


def _set_api(ctx: click.Context, _param, value: str | None) -> None:
    if value is None:
        return
    if not value.startswith(("http://", "https://")):
        raise click.BadParameter("must be an http:// or https:// URL", ctx=ctx, param=_param)
    state = ctx.ensure_object(State)
    state.settings = state.settings.with_(api_url=value.rstrip("/"))


def common_options(f: Callable) -> Callable:
    """``--json`` and ``--api``, accepted on the group and on every verb."""
    f = click.option("--json", "json_", is_flag=True, expose_value=False, callback=_set_json, help="Machine-readable output on stdout.")(f)
    f = click.option("--api", metavar="URL", expose_value=False, callback=_set_api, help="API base URL (default: $TRACELEDGER_API or http://127.0.0.1:8000).")(f)
    return f


def signing_options(f: Callable) -> Callable:
    """``--key FILE`` and ``--as ACTOR_ID`` of every verb that signs."""
    f = click.option("--as", "as_actor", metavar="ACTOR_ID", help="Actor to sign as (default: the key file's actor).")(f)
    f = click.option("--key", required=True, type=click.Path(dir_okay=False), help="Private key file to sign with.")(f)
    return f


def label_targets(f: Callable) -> Callable:
    """``SERIAL...`` and ``--from-csv FILE`` (a CSV with a ``serial`` column)."""
    f = click.option("--from-csv", "from_csv", type=click.Path(exists=True, dir_okay=False), help="Read serials from this CSV's 'serial' column.")(f)
    f = click.argument("serials", nargs=-1)(f)
    return f


class LedgerGroup(click.Group):
    """Maps the two failure kinds to exit codes, once, for every verb."""

    def invoke(self, ctx: click.Context):
        state = ctx.ensure_object(State)
        try:
            return super().invoke(ctx)
        except Refused as exc:
            _fail(state, 2, f"refused: {exc} [{exc.code}]", {"code": exc.code, "detail": exc.detail, "field": exc.field})
        except ApiUnavailable as exc:
            _fail(state, 1, f"error: {exc}", {"code": "api_unavailable", "detail": str(exc), "url": exc.url})
        except (click.exceptions.Exit, click.ClickException, click.Abort):
            raise
        except Exception as exc:  # a bug: a one-line summary first, then the traceback to diagnose it
            click.echo(traceback.format_exc(), err=True)
            _fail(state, 1, f"internal error: {type(exc).__name__}: {exc}", {"code": "internal_error", "detail": str(exc)})
        finally:
            state.close()


def _fail(state: State, code: int, line: str, error: dict) -> None:
    if state.json:
        click.echo(json.dumps({"error": error}))
    click.echo(line, err=True)
    raise click.exceptions.Exit(code)


# ---------------------------------------------------------------- output


def emit(state: State, data: dict, text: str) -> None:
    """Print ``data`` as JSON under ``--json``, else ``text``."""
    click.echo(json.dumps(data, default=str) if state.json else text)


def finish(state: State, report: cmd.Report, what: str, *, summary_to_stderr: bool = False, **extra) -> None:
    """Print a submission's outcome; exit 2 if anything was refused."""
    if state.json:
        click.echo(json.dumps({**extra, **report.as_dict()}, default=str))
    else:
        line = f"{what}: {report.accepted} accepted"
        if report.duplicate:
            line += f", {report.duplicate} already recorded"
        if report.refused:
            line += f", {report.refused} refused"
        click.echo(line, err=summary_to_stderr)
    if report.ok:
        return
    shown = 0
    for r, alike in _group_refusals(report.refusals)[:SHOW_REFUSALS]:
        where = r.get("subject") or f"event {r.get('index')}"
        if alike:
            where += f" (and {alike} more alike)"
        fld = f"{r['field']}: " if r.get("field") else ""
        click.echo(f"refused: {where}: {fld}{r.get('detail', '')} [{r.get('code')}]", err=True)
        shown += 1 + alike
    if report.refused > shown:
        click.echo(f"refused: ... and {report.refused - shown} more", err=True)
    raise click.exceptions.Exit(2)


def _group_refusals(refusals: list[dict]) -> list[tuple[dict, int]]:
    """Refusals with the same code, field and wording (apart from the subject) folded into one."""
    groups: dict[tuple, list] = {}
    for r in refusals:
        detail = str(r.get("detail", "")).replace(str(r.get("subject")), "…")
        groups.setdefault((r.get("code"), r.get("field"), detail), [r, -1])[1] += 1
    return [(first, alike) for first, alike in groups.values()]


@contextmanager
def progress(state: State, total: int, label: str) -> Iterator[Callable[[int], None]]:
    """An update(n) callback: a progress bar on stderr when it is a terminal."""
    stderr = sys.stderr
    if state.json or total < PROGRESS_MIN or not stderr.isatty():
        yield lambda n: None
        return
    with click.progressbar(length=total, label=label, file=stderr) as bar:
        yield bar.update


def _targets(serials: tuple[str, ...], from_csv: str | None) -> tuple[Iterable[str], int]:
    """All serials from the arguments then the CSV, streamed, and their count."""
    if not serials and not from_csv:
        raise Refused("missing_serials", "give SERIAL arguments or --from-csv FILE", field="serial")
    total = len(serials) + (cmd.count_csv_rows(from_csv) if from_csv else 0)
    return itertools.chain(serials, cmd.serials_from_csv(from_csv) if from_csv else ()), total


def _apply(state: State, signer: cmd.Signer, subject_type: str, subjects: Iterable[str], total: int, kind: str, payload: dict, verb: str, *, new_chain_ok: bool = False) -> None:
    """The body of every verb that appends the next event to chains (see ``cmd.append_next``)."""
    with progress(state, total, verb) as update:
        report = cmd.append_next(state.client(), signer, subject_type, subjects, kind, payload, new_chain_ok=new_chain_ok, on_progress=update)
    finish(state, report, verb, kind=kind, actor=signer.actor)


def _label_verb(state: State, key: str, as_actor: str | None, serials, from_csv, kind: str, payload: dict, verb: str) -> None:
    signer = cmd.Signer.load(key, as_actor)
    # An SSCC (18 digits) is a case or pallet: one event on it covers everything inside.
    boxes = [s for s in serials if gs1.is_sscc(s)]
    if boxes:
        _apply(state, signer, "container", boxes, len(boxes), kind, payload, f"{verb} containers")
        serials = tuple(s for s in serials if not gs1.is_sscc(s))
        if not serials and not from_csv:
            return
    subjects, total = _targets(serials, from_csv)
    _apply(state, signer, "label", subjects, total, kind, payload, verb)


# ---------------------------------------------------------------- the group


@click.group(cls=LedgerGroup, context_settings={"help_option_names": ["-h", "--help"]})
@common_options
@click.pass_context
def cli(ctx: click.Context) -> None:
    """traceledger: signed, hash-chained anti-counterfeit label ledger."""
    ctx.ensure_object(State)


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="traceledger")


# ---------------------------------------------------------------- keys and actors


@cli.command()
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


@cli.command()
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


@cli.group(cls=LedgerGroup)
@common_options
def actor() -> None:
    """Register, rotate, revoke and show actors."""


@actor.command("register")
@signing_options
@click.option("--id", "actor_id", required=True, metavar="ID", help="The new actor's id.")
@click.option("--role", required=True, type=click.Choice(ROLES))
@click.option("--name", required=True)
@click.option("--public-key", "public_key", required=True, type=click.Path(dir_okay=False), help="The actor's FILE.pub (or key file).")
@click.option("--gtin-prefix", "gtin_prefixes", multiple=True, metavar="P", help="GS1 company prefix a producer may issue under (repeatable).")
@common_options
@pass_state
def actor_register(state: State, key: str, as_actor: str | None, actor_id: str, role: str, name: str, public_key: str, gtin_prefixes: tuple[str, ...]) -> None:
    """Register an actor (signed by a registrar)."""
    validate_actor_id(actor_id, "id")
    signer = cmd.Signer.load(key, as_actor)
    payload = cmd.actor_registered_payload(role, name, cmd.read_public_key(public_key), gtin_prefixes)
    signer.check("actor", "ActorRegistered", payload, subject=actor_id)
    if state.client().actor(actor_id) is not None:
        raise Refused("already_registered", f"actor {actor_id} is already registered", field="id")
    report = cmd.submit(state.client(), [signer.sign("actor", actor_id, "ActorRegistered", payload)])
    finish(state, report, f"register {actor_id}", actor=actor_id)


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
    _apply(state, signer, "actor", [actor_id], 1, "ActorKeyRotated", payload, f"rotate {actor_id}")


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
    _apply(state, signer, "actor", [actor_id], 1, "ActorRevoked", cmd.actor_revoked_payload(reason), f"revoke {actor_id}")


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


# ---------------------------------------------------------------- issuance


@cli.command()
@signing_options
@click.option("--gtin", required=True, help="GTIN-8/12/13/14 (check digit verified; stored as GTIN-14).")
@click.option("--lot", required=True)
@click.option("--product", required=True, help="Product name.")
@click.option("--count", required=True, type=click.IntRange(min=1))
@click.option("--expiry", metavar="YYYY-MM-DD")
@click.option("--region", metavar="CODE", help="Region code where the labels are issued.")
@click.option("--out", default="labels.csv", show_default=True, type=click.Path(dir_okay=False, allow_dash=True), help="CSV for the printer ('-' for stdout).")
@click.option("--append", is_flag=True, help="Append to an existing --out file instead of refusing.")
@click.option("--batch", default=cmd.DEFAULT_CHUNK, show_default=True, type=click.IntRange(1, 2000), help="Labels per request.")
@click.option("--pins", is_flag=True, help="Double-layer labels: a scratch-off PIN per label (only its hash goes to the ledger; the PIN goes to the CSV's 'pin' column).")
@click.option("--pin-digits", default=8, show_default=True, type=click.IntRange(6, 12), help="Digits per PIN (with --pins).")
@common_options
@pass_state
def issue(state: State, key: str, as_actor: str | None, gtin: str, lot: str, product: str, count: int, expiry: str | None, region: str | None, out: str, append: bool, batch: int, pins: bool, pin_digits: int) -> None:
    """Issue COUNT new labels in batches, streaming them to a CSV (serial,gtin,lot,expiry,uri)."""
    gs1.validate_lot(lot)
    cmd.check_expiry(expiry)
    payload = cmd.issued_payload(gtin, lot, product, expiry=expiry, region=region)
    signer = cmd.Signer.load(key, as_actor)
    sink = _LabelSink(out, append=append, json_mode=state.json, pins=pins)
    try:
        with progress(state, count, "issue") as update:
            report = cmd.issue_labels(
                state.client(), signer, payload, count,
                resolver_host=state.settings.resolver_host, batch=batch, on_rows=sink.write, on_progress=update,
                pin_digits=pin_digits if pins else None,
            )
    finally:
        sink.close()
    finish(
        state, report, f"issue {payload['gtin']} lot {lot} -> {out}",
        summary_to_stderr=out == "-",  # stdout is the CSV itself
        gtin=payload["gtin"], lot=lot, out=out, rows=sink.rows,
    )


class _LabelSink:
    """The --out CSV, opened on the first accepted rows (nothing is written if nothing is issued)."""

    def __init__(self, out: str, *, append: bool, json_mode: bool, pins: bool = False):
        if out == "-" and json_mode:
            raise Refused("invalid_option", "--json needs stdout; write the CSV to a file with --out", field="out")
        path = Path(out)
        if out != "-" and path.exists() and not append:
            raise Refused("file_exists", f"{out} exists; pass --append or another --out", field="out")
        self.out, self.append, self.rows, self.pins = out, append, 0, pins
        self._fh = None
        self._csv: cmd.LabelCsv | None = None

    def write(self, rows: list[cmd.LabelRow]) -> None:
        if self._csv is None:
            if self.out == "-":
                self._fh, header = sys.stdout, True
            else:
                path = Path(self.out)
                header = not (self.append and path.exists() and path.stat().st_size > 0)
                self._fh = open(path, "a" if self.append else "w", newline="")
            self._csv = cmd.LabelCsv(self._fh, write_header=header, pins=self.pins)
        self._csv.write(rows)
        self.rows += len(rows)

    def close(self) -> None:
        if self._fh is not None and self.out != "-":
            self._fh.close()


# ---------------------------------------------------------------- label lifecycle


@cli.command()
@signing_options
@click.option("--to", "consignee", required=True, metavar="ACTOR_ID", help="Consignee.")
@click.option("--territory", required=True, metavar="REGION", help="Authorized territory (region code prefix).")
@click.option("--channel", required=True, help="Authorized sales channel.")
@click.option("--region", metavar="CODE", help="Where the goods leave.")
@label_targets
@common_options
@pass_state
def ship(state: State, key, as_actor, consignee, territory, channel, region, serials, from_csv) -> None:
    """Ship labels to a consignee for a territory and channel (EPCIS shipping)."""
    payload = cmd.shipped_payload(consignee, territory, channel, region=region)
    _label_verb(state, key, as_actor, serials, from_csv, "Shipped", payload, "ship")


@cli.command()
@signing_options
@click.option("--region", metavar="CODE", help="Where the goods arrive.")
@label_targets
@common_options
@pass_state
def receive(state: State, key, as_actor, region, serials, from_csv) -> None:
    """Receive shipped labels (signed by the consignee; EPCIS receiving)."""
    _label_verb(state, key, as_actor, serials, from_csv, "Received", cmd.received_payload(region=region), "receive")


@cli.command()
@signing_options
@click.option("--channel", required=True, help="web, sms, voice, app, shelf...")
@click.option("--region", metavar="CODE")
@label_targets
@common_options
@pass_state
def scan(state: State, key, as_actor, channel, region, serials, from_csv) -> None:
    """Record signed scans (e.g. a retailer's shelf check)."""
    _label_verb(state, key, as_actor, serials, from_csv, "Scanned", cmd.scanned_payload(channel, region=region), "scan")


@cli.command()
@signing_options
@click.option("--reason", required=True)
@click.option("--region", metavar="CODE", help="Where the fake was found.")
@label_targets
@common_options
@pass_state
def flag(state: State, key, as_actor, reason, region, serials, from_csv) -> None:
    """Flag labels as counterfeit (regulators)."""
    _label_verb(state, key, as_actor, serials, from_csv, "FlaggedCounterfeit", cmd.flagged_payload(reason, region=region), "flag")


@cli.command()
@signing_options
@click.option("--reason", required=True)
@click.option("--lot", help="Recall a whole lot (with --gtin): one event on the lot.")
@click.option("--gtin")
@click.option("--input-lot", "input_lot", metavar="GTIN/LOT", help="Recall a material/component lot and everything made from it: shows the impact, then signs.")
@click.option("--yes", is_flag=True, help="With --input-lot: sign without asking.")
@label_targets
@common_options
@pass_state
def recall(state: State, key, as_actor, reason, lot, gtin, input_lot, yes, serials, from_csv) -> None:
    """Recall a lot (--lot with --gtin), an input lot (--input-lot), or single labels or containers (producer or regulator)."""
    payload = cmd.recalled_payload(reason)
    if input_lot is not None:
        if lot or gtin or serials or from_csv:
            raise Refused("invalid_option", "--input-lot is recalled on its own", field="input-lot")
        from traceledger.cli_aggregation import recall_input_lot

        recall_input_lot(state, cmd.Signer.load(key, as_actor), input_lot, reason, yes, finish)
        return
    if lot is None and gtin is None:
        _label_verb(state, key, as_actor, serials, from_csv, "Recalled", payload, "recall")
        return
    if lot is None or gtin is None:
        raise Refused("invalid_option", "a lot recall needs both --lot and --gtin", field="lot" if lot is None else "gtin")
    if serials or from_csv:
        raise Refused("invalid_option", "recall either a lot (--lot/--gtin) or serials, not both", field="serial")
    subject = gs1.lot_key(gtin, lot)
    signer = cmd.Signer.load(key, as_actor)
    _apply(state, signer, "lot", [subject], 1, "Recalled", payload, f"recall lot {subject}", new_chain_ok=True)


@cli.command()
@signing_options
@click.option("--reason", required=True)
@label_targets
@common_options
@pass_state
def decommission(state: State, key, as_actor, reason, serials, from_csv) -> None:
    """Decommission labels (custodian or producer; EPCIS decommissioning)."""
    _label_verb(state, key, as_actor, serials, from_csv, "Decommissioned", cmd.decommissioned_payload(reason), "decommission")


# ---------------------------------------------------------------- print sheets


@cli.group(cls=LedgerGroup)
@common_options
def labels() -> None:
    """Print sheets for issued labels."""


@labels.command("print")
@click.option("--csv", "csv_path", required=True, type=click.Path(exists=True, dir_okay=False), help="The issuance CSV (serial,gtin,lot,expiry,uri[,pin]).")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False), help="Directory for labels-NNNN.svg pages and labels.pdf.")
@click.option("--product", metavar="NAME", help="Product name printed on each label (Chinese is fine), unless the CSV has a 'product' column.")
@common_options
@pass_state
def labels_print(state: State, csv_path: str, out_dir: str, product: str | None) -> None:
    """Render QR label sheets (SVG pages and a PDF): QR, serial, short code, product, PIN layer."""
    from traceledger.labels_print import print_sheets  # segno/reportlab only when printing

    with progress(state, cmd.count_csv_rows(csv_path), "print") as update:
        result = print_sheets(csv_path, out_dir, product=product, on_progress=update)
    emit(state, {k: v for k, v in result.items() if k != "svg"} | {"svg_pages": len(result["svg"])},
         f"printed {result['labels']} labels on {result['pages']} pages: {out_dir}/labels-*.svg, {result['pdf']}")


# ---------------------------------------------------------------- reading


@cli.command()
@click.argument("serial")
@common_options
@pass_state
def verify(state: State, serial: str) -> None:
    """Show a label's verdict, product and trail."""
    gs1.validate_serial(serial)
    view = state.client().label(serial)
    emit(state, view, format_view(view))


def format_view(view: dict) -> str:
    """The human form of the public verification view: a verdict line, details, the trail (places and dates)."""
    verdict = view.get("verdict", "?")
    if verdict == "unknown" and not view.get("product"):
        head = f"unknown  {view.get('serial')} is not a label of this ledger"
    else:
        head = f"{verdict}  {view.get('product')}  by {view.get('producer')}  lot {view.get('lot')}  scans {view.get('scan_count', 0)}"
        if view.get("first_scanned_at"):
            head += f", first {view['first_scanned_at']}"
    lines = [head]
    if view.get("reasons"):
        lines.append("  reasons   " + "; ".join(str(r) for r in view["reasons"]))
    if view.get("gtin"):
        lines.append(f"  gtin      {view['gtin']}   expiry {view.get('expiry') or '-'}")
    if view.get("uri"):
        lines.append(f"  uri       {view['uri']}")
    trail = view.get("trail") or []
    if trail:
        lines.append("  trail")
        for step in trail:
            place = (step.get("place") or {}).get("en") or ""
            lines.append(f"    {step.get('date') or '':<10}  {step.get('event', ''):<18} {place}".rstrip())
    return "\n".join(lines)


@cli.command()
@click.option("--labels", default=3000, show_default=True, type=click.IntRange(min=10), help="Labels to issue for the first producer.")
@click.option("--out-dir", default=".demo", show_default=True, type=click.Path(file_okay=False), help="Where keys and labels.csv go.")
@common_options
@pass_state
def demo(state: State, labels: int, out_dir: str) -> None:
    """Run the demo scenario through the API (idempotent set-up)."""
    from traceledger.demo import run_demo

    say = (lambda line: click.echo(line, err=True)) if state.json else click.echo
    result = run_demo(state.settings, out_dir=out_dir, labels=labels, echo=say, client=state.client())
    if state.json:
        click.echo(json.dumps(result, default=str))


if __name__ == "__main__":  # pragma: no cover
    # `python -m traceledger.cli`: run the importable module, not this copy of
    # it, so the verb modules below (which import traceledger.cli) see one module.
    from traceledger.cli import main as _main

    sys.exit(_main())


# The regulator's verbs live in their own module (it imports this one).
from traceledger.cli_audit import audit  # noqa: E402

cli.add_command(audit)

# `label trail SERIAL --key FILE`: the full trail for the label's producer or a regulator (traceledger/cli_label.py).
from traceledger.cli_label import label  # noqa: E402

cli.add_command(label)


# `container`, `pack`, `unpack`, `lot`, `epcis` (traceledger/cli_aggregation.py).
from traceledger import cli_aggregation  # noqa: E402

cli_aggregation.register(cli)

# `alerts list|show|summary|report` and `simulate` (traceledger/alerts_cli.py).
from traceledger import alerts_cli  # noqa: E402

alerts_cli.register(cli)
