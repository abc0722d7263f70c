"""What a consumer is told about a label: a pure function of the read model row."""

from __future__ import annotations

from typing import Sequence

VERDICTS = ("genuine", "unknown", "recalled", "counterfeit", "suspicious")


def verdict(label: dict | None, lot_recalled: bool = False, recalled_because: Sequence[str] = ()) -> tuple[str, list[str]]:
    """(verdict, reasons) for a label row (None = never issued).

    ``recalled_because``: recalls that reach the label from outside its own
    chain and lot (a container it was in, an input lot it was made from).
    """
    if label is None:
        return "unknown", ["this code was never issued"]
    reasons = []
    if label["counterfeit"]:
        reasons.append("a regulator flagged an item bearing this code as counterfeit")
    if label["recalled"]:
        reasons.append("this item has been recalled")
    if lot_recalled:
        reasons.append(f"lot {label['lot']} has been recalled")
    reasons.extend(recalled_because)
    if label["counterfeit"]:
        return "counterfeit", reasons
    if label["recalled"] or lot_recalled or recalled_because:
        return "recalled", reasons
    if label["status"] == "decommissioned":
        return "suspicious", ["this code was decommissioned; an item still carrying it may be a copy"]
    return "genuine", []
