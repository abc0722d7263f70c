"""Batch issuance end to end (issue 16): CLI ``issue`` until the last label answers ``genuine``.

``python -m bench.batch_issuance [--labels 100000] [--pins] [--single-events]``, or as part of
``make bench`` (:mod:`bench.run`). One throw-away world (database, topics, API, relay and
projector running), the producer's CLI issues ``--labels`` labels (batch events of up to
8,192 labels by default), and the clock stops when ``GET /v1/labels/{serial}`` of the last
serial of the CSV answers ``genuine`` through the API. The figure is labels/s over that
whole time, next to the same run's one-core Ed25519 sign rate (the baseline issue 16
states its target against: ≥ 0.5×). CPU per label of each process is reported too.
"""

from __future__ import annotations

import argparse
import csv
import http.client
import json
import time

from bench.run import World, children_cpu, ed25519_rates, say, tree_cpu
from ledger.config import Settings

GTIN = "06901234000016"


def _verdict(port: int, serial: str) -> str | None:
    try:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        c.request("GET", f"/v1/labels/{serial}")
        r = c.getresponse()
        return json.loads(r.read()).get("verdict") if r.status == 200 else None
    except (OSError, ValueError):
        return None


def issue_until_genuine(w: World, *, pins: bool = False, single_events: bool = False, timeout: float = 1800) -> dict:
    """Issue ``w.labels`` through the CLI with relay and projector running; until the last answers genuine."""
    relay = w.spawn("relay", "-m", "consumers.relay")
    projector = w.spawn("projector", "-m", "consumers.projector")
    api_cpu, cli_cpu = tree_cpu(w.api.pid), children_cpu()
    out = w.work / f"labels-{'pins' if pins else 'plain'}.csv"
    args = ["issue", "--key", str(w.work / "keys" / "producer.key"), "--gtin", GTIN, "--lot", f"B{int(time.time()) % 100000}",
            "--product", "Bench battery", "--count", str(w.labels), "--out", str(out)]
    t = time.perf_counter()
    w.cli(*args, *(["--pins"] if pins else []), *(["--single-events"] if single_events else []))
    issued_s = time.perf_counter() - t
    cli_cpu = children_cpu() - cli_cpu
    with open(out) as fh:
        last = list(csv.DictReader(fh))[-1]["serial"]
    while _verdict(w.port, last) != "genuine":
        for name, p in (("relay", relay), ("projector", projector)):
            if p.poll() is not None:
                raise SystemExit(f"the {name} exited; see {w.work / (name + '.log')}")
        if time.perf_counter() - t > timeout:
            raise SystemExit(f"label {last} not genuine after {timeout:.0f} s")
        time.sleep(0.05)
    genuine_s = time.perf_counter() - t
    cpu = {"cli": cli_cpu, "api": tree_cpu(w.api.pid) - api_cpu, "relay": tree_cpu(relay.pid), "projector": tree_cpu(projector.pid)}
    w.stop(relay)
    w.stop(projector)
    return {"labels": w.labels, "pins": pins, "single_events": single_events, "issued_s": issued_s, "genuine_s": genuine_s,
            "labels_per_s": w.labels / genuine_s, "cpu_us_per_label": {k: v / w.labels * 1e6 for k, v in cpu.items()}}


def rows(results: list[dict], sign_per_s: float) -> list[tuple]:
    """Report rows: (figure, value, baseline, ratio, target, met?) as in ``bench.run.table_row``."""
    out = []
    for r in results:
        what = "single events" if r["single_events"] else ("batch events, with PINs" if r["pins"] else "batch events")
        rate = r["labels_per_s"]
        cpu = r["cpu_us_per_label"]
        out.append((f"issue {r['labels']:,} labels via CLI until the last answers genuine ({what})",
                    f"{rate:,.0f} labels/s ({r['genuine_s']:.1f} s; CPU µs/label CLI {cpu['cli']:.0f}, API {cpu['api']:.0f}, relay {cpu['relay']:.0f}, projector {cpu['projector']:.0f})",
                    f"Ed25519 sign {sign_per_s:,.0f}/s (one core)", rate / sign_per_s, "≥ 0.5×", rate / sign_per_s >= 0.5))
    return out


def run(base: Settings, labels: int, *, pins_too: bool = True, single_events: bool = False, api_workers: int = 2) -> list[dict]:
    """One world; the plain figure, then (on top of it) the one with PINs."""
    results = []
    w = World(base, labels, api_workers=api_workers)
    try:
        w.start_api()
        w.members()
        for pins in ((False, True) if pins_too else (False,)):
            say(f"[{labels:,}] {'single-event' if single_events else 'batch'} issuance{' with PINs' if pins else ''} until the last label answers genuine ...")
            results.append(issue_until_genuine(w, pins=pins, single_events=single_events))
            say(f"[{labels:,}] {results[-1]['labels_per_s']:,.0f} labels/s end to end (CLI done after {results[-1]['issued_s']:.1f} s)")
    finally:
        w.close()
    return results


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--labels", type=int, default=100_000)
    ap.add_argument("--no-pins", action="store_true", help="only the plain figure")
    ap.add_argument("--single-events", action="store_true", help="the old path (one signed event per label), for comparison")
    args = ap.parse_args(argv)
    sign = ed25519_rates()["sign_per_s"]
    say(f"baseline Ed25519 sign (one core, this run): {sign:,.0f}/s")
    results = run(Settings.from_env(), args.labels, pins_too=not args.no_pins, single_events=args.single_events)
    from bench.run import print_report

    print_report(rows(results, sign), {"ed25519_sign_per_s": sign, "results": results})


if __name__ == "__main__":
    main()
