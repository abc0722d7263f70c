"""``traceledger demo``: run the demo scenario (:mod:`traceledger.demo`) through the API."""

from __future__ import annotations

import json

import click

from traceledger.cli.base import State, common_options, echo_progress, pass_state


@click.command()
@click.option("--labels", default=3000, show_default=True, type=click.IntRange(min=10), help="Labels to issue for the first producer.")
@click.option("--out-dir", default=".demo", show_default=True, type=click.Path(file_okay=False), help="Where keys and labels.csv go.")
@common_options
@pass_state
def demo(state: State, labels: int, out_dir: str) -> None:
    """Run the demo scenario through the API (idempotent set-up)."""
    from traceledger.demo import run_demo

    result = run_demo(state.settings, out_dir=out_dir, labels=labels, echo=echo_progress(state), client=state.client())
    if state.json:
        click.echo(json.dumps(result, default=str))


COMMANDS = (demo,)
