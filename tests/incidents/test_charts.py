"""The alert chart is pure SVG: one dot per value coloured by band, the line broken where a
window has no value, whiskers for the interval, a dashed baseline, and every text escaped."""

from __future__ import annotations

import re

from incidents.charts import BAND_COLOURS, ChartPoint, describe, format_value, render_svg


def _pts(*values, band="green", baseline=None):
    return [
        ChartPoint(label=f"2024-01-{i + 1:02d}", value=v, low=None if v is None else v - 0.01,
                   high=None if v is None else v + 0.01, baseline=baseline, band=band)
        for i, v in enumerate(values)
    ]  # fmt: skip


def test_one_dot_per_value_with_whiskers_a_line_and_an_accessible_name():
    svg = render_svg(_pts(0.1, 0.12, 0.2, baseline=0.1), title="Missing rate · site=NORTH")
    assert svg.startswith("<svg") and svg.endswith("</svg>")
    assert svg.count("<circle") == 3 and svg.count('class="interval"') == 3
    assert svg.count("<polyline") == 1 and 'stroke-dasharray="4 3"' in svg
    assert 'role="img"' in svg and 'aria-label="Missing rate · site=NORTH over the last 3' in svg
    assert "<title>Missing rate" in svg and "last value 0.2 (green)" in svg
    assert "nan" not in svg.lower() and "inf" not in svg.lower()


def test_dots_are_coloured_by_band():
    points = [
        ChartPoint(label=f"d{i}", value=float(i), band=band)
        for i, band in enumerate(["green", "yellow", "orange", "red", "insufficient"])
    ]
    svg = render_svg(points, title="m")
    fills = re.findall(r'<circle[^>]*fill="(#[0-9a-f]+)"', svg)
    assert fills == ["#2e7d32", "#f2c037", "#e67e22", "#c0392b", "#9e9e9e"]
    assert fills == [BAND_COLOURS[b] for b in ["green", "yellow", "orange", "red", "insufficient"]]


def test_missing_values_break_the_line_and_get_no_dot():
    svg = render_svg(_pts(0.1, 0.2, None, 0.3, 0.4), title="m")
    assert svg.count("<circle") == 4 and svg.count("<polyline") == 2
    assert svg.count('class="interval"') == 4
    assert "last value 0.4" in svg


def test_a_single_point_no_baseline_and_no_points_at_all():
    one = render_svg(_pts(0.5), title="m")
    assert one.count("<circle") == 1 and "<polyline" not in one and "dasharray" not in one
    assert 'cx="120.0"' in one  # centred
    assert render_svg([], title="m").count("<circle") == 0
    assert "no results yet" in render_svg([], title="m")
    only_none = render_svg(_pts(None, None), title="m")
    assert "<circle" not in only_none and "no value yet" in only_none
    flat = render_svg(_pts(0.0, 0.0, 0.0), title="m")  # no spread: still drawable
    assert flat.count("<circle") == 3 and "nan" not in flat.lower()


def test_non_finite_values_are_not_drawn():
    svg = render_svg([ChartPoint("a", float("nan")), ChartPoint("b", float("inf")),
                      ChartPoint("c", 1.0, band="red")], title="m")  # fmt: skip
    assert svg.count("<circle") == 1 and "nan" not in svg.lower()


def test_text_is_escaped():
    points = [ChartPoint(label='<b>"x"</b>', value=1.0, band='"><script>')]
    svg = render_svg(points, title='<script>alert("t")</script> & co')
    assert "<script>" not in svg and "<b>" not in svg
    assert "&lt;script&gt;alert(&quot;t&quot;)&lt;/script&gt; &amp; co" in svg
    assert 'fill="#9e9e9e"' in svg  # an unknown band gets the neutral grey, never its text


def test_format_and_describe():
    assert format_value(None) == "—" and format_value(0.123456) == "0.123"
    assert describe([], title="m") == "m: no results yet"
