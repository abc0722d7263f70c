"""Detection thresholds: the one place they live.

:class:`DetectionConfig` holds the defaults and per-product overrides (keyed
by GTIN or a GTIN prefix, longest match wins). The detector reads an optional
JSON file (``python -m consumers.detector --config FILE``) shaped like
:meth:`DetectionConfig.as_dict`; anything missing keeps its default.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path

ALERT_KINDS = (
    "diversion_territory",
    "diversion_channel",
    "clone_impossible_travel",
    "clone_overscan",
    "unknown_code",
    "recalled_scan",
    "counterfeit_scan",
    "scan_before_ship",
    "pin_reuse",
)

DEFAULT_SEVERITY = {
    "diversion_territory": "medium",
    "diversion_channel": "medium",
    "clone_impossible_travel": "high",
    "clone_overscan": "medium",
    "unknown_code": "medium",
    "recalled_scan": "high",
    "counterfeit_scan": "high",
    "scan_before_ship": "medium",
    "pin_reuse": "high",
}


@dataclass(frozen=True)
class Thresholds:
    """What a real item of one product may do before it looks like a copy."""

    # Faster than any airliner between two scans (after each place's uncertainty).
    max_speed_kmh: float = 900.0
    # Jumps shorter than this are never "travel": coarse phone positions and
    # IP geolocation err by tens of km inside one metro area.
    min_travel_km: float = 100.0
    # Distinct consumer sessions (phones, browsers) per label: the buyer, the
    # family, a second look a week later... a copied code gets many more.
    max_sessions: int = 5
    # Wrong scratch-off PINs on one label that raise pin_reuse: a typo or two
    # is a consumer; a third is someone guessing PINs for a copied code.
    max_wrong_pins: int = 3


@dataclass(frozen=True)
class DetectionConfig:
    defaults: Thresholds = field(default_factory=Thresholds)
    # GTIN or GTIN prefix -> overrides of Thresholds fields.
    per_product: dict[str, dict] = field(default_factory=dict)
    severity: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_SEVERITY))
    # A scan channel that tells the sales channel an item is offered through
    # (an online marketplace's intake or listing scan). Consumer channels
    # (web, sms, app) tell nothing and are not checked.
    sales_channel_of_scan: dict[str, str] = field(
        default_factory=lambda: {"marketplace": "online_marketplace", "livestream": "online_marketplace", "ecommerce": "online_marketplace"}
    )
    # Actors that are themselves a sales channel (their receipts and scans).
    sales_channel_of_actor: dict[str, str] = field(default_factory=dict)
    # Shipped channels that authorize any sales channel.
    any_channel: tuple[str, ...] = ("any", "all")
    # Unknown codes: a cluster (channel + city) alerts from this many distinct
    # made-up serials within the window; one mistyped code is not a batch.
    unknown_code_min_serials: int = 3
    unknown_code_window_hours: float = 72.0
    unknown_code_high_serials: int = 20  # severity high from here
    # Anonymous evidence is weighed by independent clients (issue 15): a finding backed
    # by fewer distinct clients than this is capped at single_client_severity.
    corroborating_clients: int = 2
    single_client_severity: str = "medium"
    # A gateway scan placed by the sender's or caller's number prefix (event.v4 place_source
    # "number") is where the number was allocated, not where the phone is: it never counts for
    # impossible travel, and a diversion it shows is at most this severe (a roaming phone).
    number_place_severity: str = "low"
    # How many recent scans and sessions a label's detector state keeps.
    recent_scans: int = 8
    evidence_cap: int = 100

    def thresholds(self, gtin: str | None) -> Thresholds:
        """The thresholds of a product: defaults with its longest-prefix override."""
        if not gtin or not self.per_product:
            return self.defaults
        best = max((p for p in self.per_product if gtin.startswith(p)), key=len, default=None)
        return replace(self.defaults, **self.per_product[best]) if best else self.defaults

    def as_dict(self) -> dict:
        d = asdict(self)
        d["any_channel"] = list(self.any_channel)
        return d

    @classmethod
    def from_dict(cls, raw: dict) -> "DetectionConfig":
        """Build from a JSON-shaped dict; unknown keys are refused by name."""
        known = {f.name for f in fields(cls)}
        unknown = set(raw) - known
        if unknown:
            raise ValueError(f"unknown detection setting(s): {', '.join(sorted(unknown))}")
        thresholds_known = {f.name for f in fields(Thresholds)}
        d = dict(raw)
        if "defaults" in d:
            bad = set(d["defaults"]) - thresholds_known
            if bad:
                raise ValueError(f"unknown threshold(s) in defaults: {', '.join(sorted(bad))}")
            d["defaults"] = Thresholds(**d["defaults"])
        for prefix, override in d.get("per_product", {}).items():
            bad = set(override) - thresholds_known
            if bad:
                raise ValueError(f"unknown threshold(s) for product {prefix}: {', '.join(sorted(bad))}")
        if "severity" in d:
            d["severity"] = {**DEFAULT_SEVERITY, **d["severity"]}
        if "any_channel" in d:
            d["any_channel"] = tuple(d["any_channel"])
        return cls(**d)

    @classmethod
    def load(cls, path: str | Path | None) -> "DetectionConfig":
        """The defaults, or the JSON file at ``path`` over them."""
        if path is None:
            return cls()
        try:
            raw = json.loads(Path(path).read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise SystemExit(f"detection config {path}: {exc}") from None
        try:
            return cls.from_dict(raw)
        except (TypeError, ValueError) as exc:
            raise SystemExit(f"detection config {path}: {exc}") from None
