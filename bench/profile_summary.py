"""Summarize py-spy collapsed stacks (``py-spy record -f raw``): where the time goes.

    .venv/bin/python -m bench.profile_summary FILE.txt [--top 25] [--match traceledger]

Prints the functions with the most samples inclusive (on the stack) and
exclusive (on top of the stack), as percentages of all samples. Start-up is left
out (stacks importing modules or building the app: they say nothing about
serving), and so are threads parked on a condition (idle thread pools).
"""

from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path

STARTUP = ("_find_and_load", "Config.load", "create_app")
PARKED = ("Condition.wait", "Event.wait", "SimpleQueue.get", "_worker (thread.py)")


def serving(stack: str) -> bool:
    """Whether a collapsed stack is the process serving (not importing, starting or parked)."""
    return not any(s in stack for s in STARTUP) and not any(stack.endswith(p) or f"{p} (" in stack.rsplit(";", 1)[-1]
                                                            for p in PARKED)


def summarize(path: Path, top: int = 25) -> str:
    inclusive: Counter = Counter()
    exclusive: Counter = Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not serving(stack):
            continue
        n = int(count)
        total += n
        frames = [f.split(" (")[0] + " (" + f.split(" (")[1].split(":")[0].rsplit("/", 1)[-1] + ")" if " (" in f else f for f in stack.split(";")]
        for f in set(frames):
            inclusive[f] += n
        exclusive[frames[-1]] += n
    out = [f"{path.name}: {total} samples while serving (start-up and parked threads left out)", "inclusive:"]
    out += [f"  {n / total:6.1%}  {f}" for f, n in inclusive.most_common(top)]
    out += ["exclusive:"]
    out += [f"  {n / total:6.1%}  {f}" for f, n in exclusive.most_common(top)]
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("files", nargs="+", type=Path)
    ap.add_argument("--top", type=int, default=25)
    args = ap.parse_args()
    for f in args.files:
        print(summarize(f, args.top))


if __name__ == "__main__":
    main()
