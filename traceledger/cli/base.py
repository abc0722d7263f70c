"""What every ``traceledger`` verb shares: the root click group, options, errors, output.

Exit codes: 0 success, 2 input refused (a one-line reason naming the field or
code at fault on stderr), 1 internal failure (API unavailable, a bug).
``--json`` puts machine-readable output on stdout (and errors as
``{"error": ...}``); ``--api URL`` (or TRACELEDGER_API) picks the API. Both
are accepted before or after the verb.

The verbs live in one module per command group beside this one; the package
(``traceledger/cli/__init__.py``) adds them to :data:`cli`.
"""

from __future__ import annotations

import json
import sys
import traceback
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Callable, Iterable, Iterator

import click

from ledger.config import Settings
from ledger.errors import Refused
from ledger.keys import KeyPair
from traceledger import commands as cmd
from traceledger.client import ApiUnavailable, Client

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


# ---------------------------------------------------------------- shared options


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


def reader_options(key_help: str) -> Callable[[Callable], Callable]:
    """``--key FILE`` and ``--as ACTOR_ID`` of every verb whose requests are signed (restricted reads)."""

    def decorate(f: Callable) -> Callable:
        f = click.option("--as", "as_actor", metavar="ACTOR_ID", help="Actor the key belongs to (default: the key file's actor).")(f)
        return click.option("--key", required=True, type=click.Path(dir_okay=False), help=key_help)(f)

    return decorate


def reader_key(key: str, as_actor: str | None) -> KeyPair:
    """The key file loaded to sign requests as ``as_actor`` (default: the file's actor)."""
    signer = cmd.Signer.load(key, as_actor)
    return signer.key.with_actor(signer.actor)


# ---------------------------------------------------------------- errors


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


def echo_progress(state: State) -> Callable[[str], None]:
    """Where a long-running verb's progress lines go: stderr under ``--json`` (stdout is the result)."""
    return (lambda line: click.echo(line, err=True)) if state.json else click.echo


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


def append_to_chains(state: State, signer: cmd.Signer, subject_type: str, subjects: Iterable[str], total: int, kind: str, payload: dict, verb: str, *, new_chain_ok: bool = False) -> None:
    """The body of every verb that appends the next event to chains (see ``cmd.append_next``)."""
    with progress(state, total, verb) as update:
        report = cmd.append_next(state.client(), signer, subject_type, subjects, kind, payload, new_chain_ok=new_chain_ok, on_progress=update)
    finish(state, report, verb, kind=kind, actor=signer.actor)


# ---------------------------------------------------------------- the root group


@click.group(cls=LedgerGroup, context_settings={"help_option_names": ["-h", "--help"]})
@common_options
@click.pass_context
def cli(ctx: click.Context) -> None:
    """traceledger: signed, hash-chained anti-counterfeit label ledger."""
    ctx.ensure_object(State)


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="traceledger")
