"""``traceledger simulate``: realistic traffic with injected incidents (:mod:`traceledger.simulate`).

The ground truth it writes is scored against the alerts by ``traceledger alerts report``.
"""

from __future__ import annotations

from pathlib import Path

import click

from traceledger.cli.base import State, common_options, echo_progress, emit, pass_state


@click.command()
@click.option("--seed", required=True, type=int)
@click.option("--labels", required=True, type=click.IntRange(min=50))
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Where truth.jsonl, run.json and the simulation's keys go.")
@click.option("--demo-dir", default=".demo", show_default=True, type=click.Path(file_okay=False), help="The demo's keys (registrar, producers, regulator) to reuse.")
@common_options
@pass_state
def simulate(state: State, seed: int, labels: int, out: str, demo_dir: str) -> None:
    """Realistic traffic with injected incidents, through the API; ground truth to OUT/truth.jsonl."""
    from traceledger.simulate import simulate as run

    result = run(state.settings, seed=seed, labels=labels, out=Path(out), demo_dir=demo_dir, client=state.client(), echo=echo_progress(state))
    emit(state, result, f"simulated {result['labels']} labels, {result['events']} events; ground truth in {result['truth']}")


COMMANDS = (simulate,)
