"""``traceledger alerts list|show|summary|chart|report|ack|resolve``: the detector's alerts.

Every alert verb takes ``--key FILE``: reads are requests signed with that
actor's key (a regulator sees every alert, a producer its own labels'), and
``ack``/``resolve`` sign the transition event itself with it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

import click

from ledger.events import GENESIS_HASH, RESOLUTIONS
from ledger.keys import KeyPair
from projections.detection_config import ALERT_KINDS
from traceledger import commands as cmd
from traceledger.cli.base import LedgerGroup, State, common_options, emit, pass_state, reader_key, reader_options
from traceledger.client import Client

PAGE = 1000

key_options = reader_options("Key file of the regulator or producer asking (requests are signed with it).")


def fetch_alerts(client: Client, key: KeyPair, **filters) -> list[dict]:
    """Every alert matching ``filters`` that ``key``'s actor may see, following the API's pages."""
    out, cursor = [], None
    while True:
        page = client.alerts(key, **filters, limit=PAGE, cursor=cursor)
        out.extend(page["alerts"])
        cursor = page["next_cursor"]
        if cursor is None:
            return out


def format_alert(a: dict) -> str:
    where = a.get("region_name") or a.get("region") or "-"
    who = a.get("serial") or a.get("dedupe_key")
    return f"{a['id']} {a['state']:<12} {a['severity']:<6} {a['kind']:<24} {who}  {where}  x{a['sightings']}  last {a['last_seen']}"


def format_alert_details(a: dict) -> str:
    """One alert, its evidence events and its transitions."""
    lines = [format_alert(a), f"  detail: {json.dumps(a['detail'], ensure_ascii=False)}"]
    for e in a["evidence_events"]:
        lines.append("  evidence: " + "  ".join(f"{k}={v}" for k, v in e.items() if v is not None))
    for t in a["transitions"]:
        lines.append(f"  {t['kind']} by {t['actor']} at {t['occurred_at']} ({t['status']}): {t['note']}")
    return "\n".join(lines)


def format_summary(s: dict) -> str:
    lines = [f"{s['total']} alerts  " + "  ".join(f"{k}={n}" for k, n in s["by_state"].items())]
    lines += [f"  {k:<26}{n:>7}" for k, n in s["by_kind"].items()]
    lines.append("by region:")
    lines += [f"  {r['region'] or '-':<6} {r['name'] or '':<16}{r['total']:>7}" for r in s["by_region"][:20]]
    return "\n".join(lines)


def format_score(scores: dict) -> str:
    lines = [f"{'kind':<26}{'expected':>9}{'alerts':>8}{'TP':>7}{'precision':>11}{'recall':>8}"]
    for kind, s in scores.items():
        p = "-" if s["precision"] is None else f"{s['precision']:.3f}"
        r = "-" if s["recall"] is None else f"{s['recall']:.3f}"
        lines.append(f"{kind:<26}{s['expected']:>9}{s['alerts']:>8}{s['true_positives']:>7}{p:>11}{r:>8}")
        if s["false_alarms_by_behaviour"]:
            lines.append(f"{'':<4}false alarms by behaviour: {s['false_alarms_by_behaviour']}")
    return "\n".join(lines)


@click.group(cls=LedgerGroup)
@common_options
def alerts() -> None:
    """Diversion and counterfeit alerts raised by the detector."""


@alerts.command("list")
@click.option("--kind", type=click.Choice(ALERT_KINDS))
@click.option("--serial")
@click.option("--producer", metavar="ACTOR_ID")
@click.option("--region", metavar="CODE", help="GB/T 2260 code or prefix (31, 4403, 440305).")
@click.option("--state", "state_", type=click.Choice(["open", "acknowledged", "resolved"]))
@click.option("--since", metavar="ISO-TIME", help="Last seen at or after.")
@click.option("--until", metavar="ISO-TIME", help="First seen before.")
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 1000))
@click.option("--all", "all_", is_flag=True, help="Every matching alert (follows pages).")
@key_options
@common_options
@pass_state
def alerts_list(state: State, kind, serial, producer, region, state_, since, until, limit, all_, key, as_actor) -> None:
    """Alerts, newest first."""
    me = reader_key(key, as_actor)
    filters = {"kind": kind, "serial": serial, "producer": producer, "region": region, "state": state_, "since": since, "until": until}
    if all_:
        rows = fetch_alerts(state.client(), me, **filters)
    else:
        rows = state.client().alerts(me, **filters, limit=limit)["alerts"]
    emit(state, {"alerts": rows}, "\n".join(format_alert(a) for a in rows) or "no alerts")


@alerts.command("show")
@click.argument("alert_id", type=click.UUID)
@key_options
@common_options
@pass_state
def alerts_show(state: State, alert_id, key, as_actor) -> None:
    """One alert with its evidence events and its signed transitions."""
    a = state.client().alert(str(alert_id), reader_key(key, as_actor))
    emit(state, a, format_alert_details(a))


def summary_options(command: Callable) -> Callable:
    """The summary's filters, shared by ``summary`` and ``chart``."""
    command = click.option("--level", default="province", show_default=True, type=click.Choice(["province", "city"]))(command)
    command = click.option("--bucket", default="day", show_default=True, type=click.Choice(["hour", "day", "week", "month"]))(command)
    command = click.option("--until", metavar="ISO-TIME")(command)
    return click.option("--since", metavar="ISO-TIME")(command)


@alerts.command("summary")
@summary_options
@key_options
@common_options
@pass_state
def alerts_summary(state: State, since, until, bucket, level, key, as_actor) -> None:
    """Counts by kind and region, and over time."""
    s = state.client().alerts_summary(reader_key(key, as_actor), since=since, until=until, bucket=bucket, level=level)
    emit(state, s, format_summary(s))


@alerts.command("chart")
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="Where to write the SVG.")
@summary_options
@key_options
@common_options
@pass_state
def alerts_chart(state: State, out, since, until, bucket, level, key, as_actor) -> None:
    """The summary chart (GET /v1/alerts/summary.svg) saved as an SVG file."""
    svg = state.client().alerts_summary_svg(reader_key(key, as_actor), since=since, until=until, bucket=bucket, level=level)
    Path(out).write_bytes(svg)
    emit(state, {"out": out, "bytes": len(svg)}, f"chart written to {out} ({len(svg)} bytes)")


def transition(state: State, alert_id, key: str, as_actor: str | None, kind: str, build: Callable[[dict], dict]) -> None:
    """Read the alert, sign the next event of its chain, submit it to the alert's transitions."""
    client = state.client()
    signer = cmd.Signer.load(key, as_actor)
    subject = str(alert_id)
    alert = client.alert(subject, signer.key.with_actor(signer.actor))
    payload = build(alert)
    signer.check("alert", kind, payload, subject=subject)
    head = client.heads("alert", [subject]).get(subject)
    seq, prev = (0, GENESIS_HASH) if head is None else (head["seq"] + 1, bytes.fromhex(head["hash"]))
    signed = signer.sign("alert", subject, kind, payload, seq=seq, prev_hash=prev)
    answer = client.post_alert_transition(subject, signed)
    result = answer["result"]
    emit(state, answer, f"{kind} {subject}: {result['status']} (event {result['event_id']}, seq {result['seq']})")


@alerts.command("ack")
@click.argument("alert_id", type=click.UUID)
@click.option("--note", required=True, help="What is being done about it (signed, on the ledger).")
@key_options
@common_options
@pass_state
def alerts_ack(state: State, alert_id, note, key, as_actor) -> None:
    """Acknowledge an alert: a signed AlertAcknowledged event (its producer or a regulator)."""
    transition(state, alert_id, key, as_actor, "AlertAcknowledged",
               lambda a: cmd.alert_acknowledged_payload(a["kind"], a["serial"], a["producer"], note))


@alerts.command("resolve")
@click.argument("alert_id", type=click.UUID)
@click.option("--resolution", required=True, type=click.Choice(RESOLUTIONS))
@click.option("--note", required=True, help="The outcome (signed, on the ledger).")
@key_options
@common_options
@pass_state
def alerts_resolve(state: State, alert_id, resolution, note, key, as_actor) -> None:
    """Resolve an acknowledged alert: a signed AlertResolved event (its producer or a regulator)."""
    transition(state, alert_id, key, as_actor, "AlertResolved", lambda a: cmd.alert_resolved_payload(resolution, a["producer"], note))


@alerts.command("report")
@click.option("--truth", required=True, type=click.Path(exists=True, dir_okay=False), help="truth.jsonl written by `traceledger simulate`.")
@key_options
@common_options
@pass_state
def alerts_report(state: State, truth: str, key, as_actor) -> None:
    """Precision and recall per alert kind: ground truth vs the alerts raised (needs a regulator's key to see them all)."""
    from traceledger.simulate import read_truth, score

    meta, entries = read_truth(truth)
    scores = score(entries, fetch_alerts(state.client(), reader_key(key, as_actor)))
    emit(state, {"meta": {k: meta.get(k) for k in ("seed", "labels")}, "scores": scores},
         f"seed {meta.get('seed')}, {meta.get('labels')} labels\n" + format_score(scores))


COMMANDS = (alerts,)
