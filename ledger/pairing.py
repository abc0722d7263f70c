"""Pairing of aggregation events inside one batch: pure, no I/O.

Packing N children into a container is one ``Packed`` event on the container
and one ``PackedInto`` event on each child's own chain (unpacking likewise:
``Unpacked`` + ``UnpackedFrom``). The ledger appends such a group as one
all-or-nothing batch, so the container's list and the children's chains can
never disagree, and because every child's chain is written, two packers
racing for the same unit cannot both win (the chain's version check).

:func:`check_pairs` is the batch-level half of that rule: every child named by
a container event has its own event after it in the same batch, and every
child event belongs to a container event before it. The per-chain rules
(custody, one container at a time) are in :mod:`ledger.lifecycle`.
"""

from __future__ import annotations

from typing import Sequence

from ledger.errors import Refused
from ledger.events import Event

CHILD_KIND = {"Packed": "PackedInto", "Unpacked": "UnpackedFrom"}
PARENT_KIND = {child: parent for parent, child in CHILD_KIND.items()}


def check_pairs(events: Sequence[Event | None]) -> dict[int, Refused]:
    """Refusals by batch index for aggregation events without their counterpart.

    ``events`` is the batch in order (None where an item did not decode).
    """
    refusals: dict[int, Refused] = {}
    # (container, child kind, child) -> index of the container event that names it, in order
    named: dict[tuple[str, str, str], int] = {}
    claimed: set[tuple[str, str, str]] = set()
    for index, e in enumerate(events):
        if e is None:
            continue
        if e.kind in CHILD_KIND:
            for child in e.payload["children"]:
                named[(e.subject, CHILD_KIND[e.kind], child)] = index
        elif e.kind in PARENT_KIND:
            key = (e.payload["container"], e.kind, e.subject)
            if key not in named or key in claimed:
                refusals[index] = Refused(
                    "unpaired_aggregation",
                    f"{e.kind} of {e.subject} needs a {PARENT_KIND[e.kind]} event of container {e.payload['container']} "
                    "listing it earlier in the same batch",
                    field="container",
                )
            else:
                claimed.add(key)
    for key, index in named.items():
        if key not in claimed and index not in refusals:
            container, kind, child = key
            refusals[index] = Refused(
                "unpaired_aggregation",
                f"container {container} lists {child}, but the batch has no {kind} event of {child} after it",
                field="children",
            )
    return refusals
