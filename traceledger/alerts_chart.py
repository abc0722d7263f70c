"""The regulator's first view as one self-contained SVG: alerts by kind over time and by region.

:func:`render` turns the JSON of ``GET /v1/alerts/summary`` into an SVG
document (no scripts, fonts or other external assets, so it opens anywhere
and can be attached to a report): on top, stacked columns of alerts per time
bucket coloured by kind; below, the regions with most alerts as stacked bars;
a legend with each kind's total. Pure: no I/O.
"""

from __future__ import annotations

from datetime import datetime
from xml.sax.saxutils import escape

from projections.detection_config import ALERT_KINDS

WIDTH = 960
MARGIN = 48
TIME_TOP, TIME_HEIGHT = 70, 220
BAR_HEIGHT, BAR_GAP = 18, 6
TOP_REGIONS = 12
# One colour per kind (Okabe-Ito and Tableau tones: distinguishable, print-safe).
COLOURS = dict(zip(ALERT_KINDS, (
    "#E69F00", "#56B4E9", "#D55E00", "#CC79A7", "#009E73", "#0072B2", "#000000", "#999933", "#882255",
)))
OTHER_COLOUR = "#BBBBBB"


def colour(kind: str) -> str:
    return COLOURS.get(kind, OTHER_COLOUR)


def _label_of_bucket(iso: str, bucket: str) -> str:
    t = datetime.fromisoformat(iso)
    return {"hour": t.strftime("%m-%d %H:00"), "day": t.strftime("%m-%d"), "week": t.strftime("%m-%d"), "month": t.strftime("%Y-%m")}[bucket]


def _text(x: float, y: float, text: str, *, size: int = 11, anchor: str = "start", weight: str = "normal", fill: str = "#222") -> str:
    return (f'<text x="{x:.1f}" y="{y:.1f}" font-size="{size}" text-anchor="{anchor}" font-weight="{weight}" '
            f'fill="{fill}">{escape(text)}</text>')


def _rect(x: float, y: float, w: float, h: float, fill: str, title: str) -> str:
    return f'<rect x="{x:.1f}" y="{y:.1f}" width="{max(w, 0):.1f}" height="{max(h, 0):.1f}" fill="{fill}"><title>{escape(title)}</title></rect>'


def render(summary: dict, *, title: str = "Alerts") -> str:
    """An SVG document of ``summary`` (the shape ``GET /v1/alerts/summary`` answers)."""
    kinds = list(summary["by_kind"])  # most frequent first
    parts: list[str] = [_text(MARGIN, 30, title, size=18, weight="bold"),
                        _text(MARGIN, 50, f"{summary['total']} alerts · per {summary['bucket']} · by {summary['level']}", size=12, fill="#555")]

    # -- over time: one stacked column per bucket
    buckets: dict[str, dict[str, int]] = {}
    for point in summary["series"]:
        buckets.setdefault(point["bucket"], {})[point["kind"]] = point["count"]
    plot_w = WIDTH - 2 * MARGIN
    peak = max((sum(b.values()) for b in buckets.values()), default=0)
    base = TIME_TOP + TIME_HEIGHT
    parts.append(f'<line x1="{MARGIN}" y1="{base}" x2="{WIDTH - MARGIN}" y2="{base}" stroke="#888"/>')
    parts.append(_text(MARGIN - 6, TIME_TOP + 8, str(peak), size=10, anchor="end", fill="#555"))
    parts.append(_text(MARGIN - 6, base, "0", size=10, anchor="end", fill="#555"))
    if buckets:
        step = plot_w / len(buckets)
        width = max(step * 0.8, 1.0)
        label_every = max(1, round(len(buckets) / 12))
        for i, (when, counts) in enumerate(sorted(buckets.items())):
            x = MARGIN + i * step + (step - width) / 2
            y = base
            label = _label_of_bucket(when, summary["bucket"])
            for kind in kinds:
                n = counts.get(kind, 0)
                if n:
                    h = TIME_HEIGHT * n / peak
                    y -= h
                    parts.append(_rect(x, y, width, h, colour(kind), f"{label}: {n} {kind}"))
            if i % label_every == 0:
                parts.append(_text(x + width / 2, base + 14, label, size=10, anchor="middle", fill="#555"))
    else:
        parts.append(_text(WIDTH / 2, TIME_TOP + TIME_HEIGHT / 2, "no alerts", size=14, anchor="middle", fill="#888"))

    # -- by region: the regions with most alerts, stacked by kind
    y = base + 50
    parts.append(_text(MARGIN, y, "By region", size=14, weight="bold"))
    y += 12
    top = summary["by_region"][:TOP_REGIONS]
    most = max((r["total"] for r in top), default=0)
    name_w = 150
    for r in top:
        label = f"{r['region'] or '—'} {r['name'] or ''}".strip()
        parts.append(_text(MARGIN, y + BAR_HEIGHT - 5, label, size=11))
        x = MARGIN + name_w
        for kind in kinds:
            n = r["by_kind"].get(kind, 0)
            if n:
                w = (plot_w - name_w - 50) * n / most
                parts.append(_rect(x, y, w, BAR_HEIGHT, colour(kind), f"{label}: {n} {kind}"))
                x += w
        parts.append(_text(x + 6, y + BAR_HEIGHT - 5, str(r["total"]), size=11, fill="#555"))
        y += BAR_HEIGHT + BAR_GAP

    # -- legend: every kind with its total
    y += 20
    x = MARGIN
    for kind in kinds:
        entry = f"{kind} {summary['by_kind'][kind]}"
        step = 24 + 7 * len(entry)
        if x + step > WIDTH - MARGIN:
            x, y = MARGIN, y + 20
        parts.append(_rect(x, y - 10, 12, 12, colour(kind), kind))
        parts.append(_text(x + 16, y, entry, size=11))
        x += step
    height = y + 20
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" viewBox="0 0 {WIDTH} {height}" '
            f'font-family="sans-serif" role="img" aria-label="{escape(title)}">'
            f'<rect width="100%" height="100%" fill="#fff"/>' + "".join(parts) + "</svg>")
