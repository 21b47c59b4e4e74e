"""A small server-rendered SVG chart of one metric over time, for the incident work page.

Pure: points in, SVG markup out. Every piece of text is escaped here and every number is
formatted here, so the markup is safe to mark safe; the page needs no JavaScript.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from django.utils.html import escape

BAND_COLOURS = {
    "green": "#2e7d32",
    "yellow": "#f2c037",
    "orange": "#e67e22",
    "red": "#c0392b",
    "insufficient": "#9e9e9e",
}
UNKNOWN_COLOUR = "#9e9e9e"
LINE_COLOUR = "#455a64"
INTERVAL_COLOUR = "#90a4ae"
BASELINE_COLOUR = "#607d8b"

WIDTH = 240
HEIGHT = 64
PAD = 6


@dataclass(frozen=True)
class ChartPoint:
    """One window's result: ``label`` names the window (its end date)."""

    label: str
    value: float | None
    low: float | None = None
    high: float | None = None
    baseline: float | None = None
    band: str = ""


def _num(x: Any) -> float | None:
    """A finite float, or None (NaN and infinities are not drawable)."""
    if x is None or isinstance(x, bool):
        return None
    try:
        f = float(x)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def format_value(x: Any) -> str:
    """Three significant figures, or an em dash when there is no value."""
    f = _num(x)
    return "—" if f is None else f"{f:.3g}"


def last_value(points: Sequence[ChartPoint]) -> ChartPoint | None:
    """The latest point that has a value."""
    for p in reversed(points):
        if _num(p.value) is not None:
            return p
    return None


def describe(points: Sequence[ChartPoint], *, title: str) -> str:
    """The chart's accessible name: what it shows and its last value (plain text, unescaped)."""
    if not points:
        return f"{title}: no results yet"
    last = last_value(points)
    tail = (
        f"last value {format_value(last.value)} ({last.band or 'no band'})"
        f" in the window to {last.label}"
        if last
        else "no value yet"
    )
    windows = "1 window" if len(points) == 1 else f"{len(points)} windows"
    span = points[0].label if len(points) == 1 else f"{points[0].label} to {points[-1].label}"
    return f"{title} over the last {windows}, {span}; {tail}"


def _c(x: float) -> str:
    return f"{x:.1f}"


def render_svg(points: Sequence[ChartPoint], *, title: str) -> str:
    """The chart as SVG markup: the value line (broken where a window has no value), one dot per
    value coloured by its band, the 95% interval as whiskers, and a dashed line at the latest
    baseline. Colours are presentation attributes, so a strict style CSP does not strip them."""
    label = escape(describe(points, title=title))
    head = (
        f'<svg xmlns="http://www.w3.org/2000/svg" class="alert-chart" role="img" '
        f'width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" aria-label="{label}">'
        f"<title>{label}</title>"
    )
    ys = []
    for p in points:
        ys += [
            v for v in (_num(p.value), _num(p.low), _num(p.high), _num(p.baseline)) if v is not None
        ]
    if not ys:
        return head + "</svg>"
    lo, hi = min(ys), max(ys)
    if hi - lo < 1e-12:
        span = abs(hi) * 0.1 or 1.0
        lo, hi = lo - span, hi + span
    n = len(points)
    inner_w, inner_h = WIDTH - 2 * PAD, HEIGHT - 2 * PAD

    def x_at(i: int) -> float:
        return WIDTH / 2 if n == 1 else PAD + inner_w * i / (n - 1)

    def y_at(v: float) -> float:
        return PAD + inner_h * (hi - v) / (hi - lo)

    parts = [head]
    baseline = next((b for p in reversed(points) if (b := _num(p.baseline)) is not None), None)
    if baseline is not None:
        y = _c(y_at(baseline))
        parts.append(
            f'<line class="baseline" x1="{PAD}" y1="{y}" x2="{WIDTH - PAD}" y2="{y}" '
            f'stroke="{BASELINE_COLOUR}" stroke-width="1" stroke-dasharray="4 3"/>'
        )
    for i, p in enumerate(points):
        low, high = _num(p.low), _num(p.high)
        if low is not None and high is not None:
            x = _c(x_at(i))
            parts.append(
                f'<line class="interval" x1="{x}" y1="{_c(y_at(high))}" x2="{x}" '
                f'y2="{_c(y_at(low))}" stroke="{INTERVAL_COLOUR}" stroke-width="3" '
                f'stroke-opacity="0.6" stroke-linecap="round"/>'
            )
    run: list[str] = []
    runs: list[list[str]] = []
    for i, p in enumerate(points):
        v = _num(p.value)
        if v is None:
            runs.append(run)
            run = []
        else:
            run.append(f"{_c(x_at(i))},{_c(y_at(v))}")
    runs.append(run)
    for r in runs:
        if len(r) > 1:
            parts.append(
                f'<polyline class="value-line" points="{" ".join(r)}" fill="none" '
                f'stroke="{LINE_COLOUR}" stroke-width="1.5"/>'
            )
    for i, p in enumerate(points):
        v = _num(p.value)
        if v is None:
            continue
        colour = BAND_COLOURS.get(p.band, UNKNOWN_COLOUR)
        tip = escape(f"{p.label}: {format_value(v)} ({p.band or 'no band'})")
        parts.append(
            f'<circle class="point" cx="{_c(x_at(i))}" cy="{_c(y_at(v))}" r="3" fill="{colour}" '
            f'stroke="#ffffff" stroke-width="1"><title>{tip}</title></circle>'
        )
    parts.append("</svg>")
    return "".join(parts)
