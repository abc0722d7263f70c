"""What a consumer is told about a label: a pure function of the read model row.

:func:`verdict` gives the verdict, the reasons as English sentences (the JSON view,
the CLI) and the same reasons as codes (``[{"code", "arg"}]``), which every channel
renders in its own language (:mod:`traceledger.shopper.wording`). :data:`REASON_CODES`
lists every code a view can carry, so a new reason cannot fall through unnamed.
"""

from __future__ import annotations

from typing import Iterable

VERDICTS = ("genuine", "unknown", "recalled", "counterfeit", "suspicious")

# Every reason code a verification view carries (``arg``: what the reason names, or None).
# ``integrity`` is added by projections.integrity when the stored chain was altered.
REASON_CODES = (
    "never_issued", "flagged_counterfeit", "item_recalled", "lot_recalled", "container_recalled",
    "input_lot_recalled", "decommissioned", "integrity",
)


def reason(code: str, arg: str | None = None) -> dict:
    """One reason code (``code`` must be one of :data:`REASON_CODES`)."""
    if code not in REASON_CODES:
        raise ValueError(f"unknown reason code {code!r}")
    return {"code": code, "arg": arg}


def verdict(
    label: dict | None,
    lot_recalled: bool = False,
    recalled_containers: Iterable[str] = (),
    recalled_inputs: Iterable[tuple[str, str | None]] = (),
) -> tuple[str, list[str], list[dict]]:
    """(verdict, reasons, reason codes) for a label row (None = never issued).

    ``recalled_containers`` (SSCCs) and ``recalled_inputs`` (``(lot, product)``) are
    recalls that reach the label from outside its own chain and lot: a container it
    was in while recalled, an input lot it was made from.
    """
    if label is None:
        return "unknown", ["this code was never issued"], [reason("never_issued")]
    pairs: list[tuple[str, dict]] = []
    if label["counterfeit"]:
        pairs.append(("a regulator flagged an item bearing this code as counterfeit", reason("flagged_counterfeit")))
    if label["recalled"]:
        pairs.append(("this item has been recalled", reason("item_recalled")))
    if lot_recalled:
        pairs.append((f"lot {label['lot']} has been recalled", reason("lot_recalled", label["lot"])))
    for sscc in recalled_containers:
        pairs.append((f"container {sscc} was recalled while this item was in it", reason("container_recalled", sscc)))
    for lot, product in recalled_inputs:
        pairs.append((f"input lot {lot} ({product or 'material'}) it was made from has been recalled", reason("input_lot_recalled", lot)))
    reasons, codes = [p[0] for p in pairs], [p[1] for p in pairs]
    if label["counterfeit"]:
        return "counterfeit", reasons, codes
    if pairs:
        return "recalled", reasons, codes
    if label["status"] == "decommissioned":
        return "suspicious", ["this code was decommissioned; an item still carrying it may be a copy"], [reason("decommissioned")]
    return "genuine", [], []
