"""Read-only selectors for the monitoring pages: the health-system overview, a model's
layer × slice grid, one metric's trend and slice comparison, reference profiles and the
policy's history. Nothing here writes; the pages' writes go through the services.

Values are formatted here (``fmt_value``) so the templates stay plain: a share as a
percentage, a ratio as ×, hours as h.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from django.db.models import Max, Q, QuerySet

from monitoring.models import (
    BAND_RANK,
    Band,
    Layer,
    MetricResult,
    MonitorPolicy,
    ReferenceProfile,
)
from monitoring.thresholds import BAND_NAMES, LAYERS, METRICS, MetricSpec, metric_spec
from registry.models import ClinicalModel, Deployment, FeatureSpec, ModelVersion, Site

ALL = "all"
#: Where a band's colour cannot be told apart by everyone, its word is shown too.
BAND_WORDS = {
    Band.RED: "red",
    Band.ORANGE: "orange",
    Band.YELLOW: "yellow",
    Band.GREEN: "green",
    Band.INSUFFICIENT: "n too small",
}
DIRECTION_WORDS = {"up": "a rise", "down": "a fall", "both": "a change either way"}
#: What a metric's n counts (``MetricSpec.n_of``), in words.
N_OF_WORDS = {
    "events": "predictions",
    "labelled": "labelled cases",
    "outcome_events": "outcome events (the rarer outcome class among labelled cases)",
    "acted": "acted predictions",
    "decided": "reviewer decisions",
}


# --- formatting -------------------------------------------------------------------------------


def n_of_words(spec: MetricSpec) -> str:
    return N_OF_WORDS.get(spec.n_of, spec.n_of.replace("_", " "))


def fmt_value(value: float | None, unit: str = "") -> str:
    if value is None:
        return "—"
    if unit == "share":
        return f"{value * 100:.1f}%"
    if unit == "ratio":
        return f"×{value:.2f}"
    if unit == "hours":
        return f"{value:.1f} h"
    if unit in ("× cadence", "SD"):
        return f"{value:.2f} {unit}"
    return f"{value:.3f}"


def fmt_deviation(value: float | None, unit: str = "") -> str:
    """A deviation: a share moves in percentage points, a ratio in plain units."""
    if value is None:
        return "—"
    if unit == "share":
        return f"{value * 100:.1f} points"
    if unit == "hours":
        return f"{value:.1f} h"
    return f"{value:.3f}"


def slice_label(key: str, sites: dict[str, Site] | None = None) -> str:
    if key == ALL:
        return "Whole deployment"
    column, _, value = key.partition("=")
    if column == "site":
        site = (sites or {}).get(value)
        return f"Site {value}" + (f" ({site.name})" if site else "")
    return f"{column.replace('_', ' ')} = {value}"


def slice_group(key: str) -> str:
    if key == ALL:
        return "Whole deployment"
    column = key.partition("=")[0]
    return "Sites" if column == "site" else f"Cohort: {column.replace('_', ' ')}"


def slice_order(
    keys: Iterable[str], cohort_values: dict[str, list[str]] | None = None
) -> list[str]:
    """All first, then sites by code, then cohort columns by name, values in declared order."""
    declared = cohort_values or {}

    def key(k: str) -> tuple[int, str, int, str]:
        if k == ALL:
            return (0, "", 0, "")
        column, _, value = k.partition("=")
        if column == "site":
            return (1, "", 0, value)
        values = declared.get(column, [])
        return (2, column, values.index(value) if value in values else len(values), value)

    return sorted(set(keys), key=key)


def severity(result: MetricResult) -> tuple[int, bool, float]:
    """Order results worst first: band, then a confident call, then how far past yellow."""
    dev = (result.details or {}).get("deviation") or [None]
    yellow = (result.thresholds or {}).get("yellow") or 0
    ratio = dev[0] / yellow if dev[0] is not None and yellow > 0 else 0.0
    return (BAND_RANK[Band(result.band)], result.clears_threshold, ratio)


def worst_of(results: Iterable[MetricResult]) -> MetricResult | None:
    return max(results, key=severity, default=None)


# --- which versions, which window --------------------------------------------------------------


def deployed_models() -> QuerySet[ClinicalModel]:
    live = Deployment.objects.active().values("model_id")
    return ClinicalModel.objects.filter(pk__in=live).order_by("name")


def latest_window_end(model: ClinicalModel) -> date | None:
    return MetricResult.objects.filter(model=model).aggregate(end=Max("window_end"))["end"]


def versions_with_results(model: ClinicalModel, end: date | None) -> list[ModelVersion]:
    """Versions with results at ``end``: those live now first, newest first."""
    if end is None:
        return []
    ids = set(
        MetricResult.objects.filter(model=model, window_end=end).values_list(
            "version_id", flat=True
        )
    )
    live = set(Deployment.objects.active().filter(model=model).values_list("version_id", flat=True))
    versions = ModelVersion.objects.filter(pk__in=ids)
    return sorted(versions, key=lambda v: (v.pk not in live, -v.pk))


def pick_version(versions: Sequence[ModelVersion], wanted: str | None) -> ModelVersion | None:
    for version in versions:
        if version.version == wanted:
            return version
    return versions[0] if versions else None


def windows_of(model: ClinicalModel, version: ModelVersion | None, end: date | None) -> list[int]:
    if version is None or end is None:
        return []
    return sorted(
        set(
            MetricResult.objects.filter(version=version, window_end=end).values_list(
                "window_days", flat=True
            )
        )
    )


def pick_window(windows: Sequence[int], wanted: Any) -> int | None:
    try:
        chosen = int(wanted)
    except (TypeError, ValueError):
        chosen = None
    if chosen in windows:
        return chosen
    return windows[0] if windows else None


# --- the overview ------------------------------------------------------------------------------


@dataclass(frozen=True)
class ModelHealth:
    model: ClinicalModel
    window_end: date | None
    worst: MetricResult | None
    red: int
    orange: int
    has_reference: bool
    slice_label: str = ""

    @property
    def band(self) -> str:
        return self.worst.band if self.worst else ""

    @property
    def metric_label(self) -> str:
        return metric_label(self.worst.metric) if self.worst else ""


def model_health(model: ClinicalModel) -> ModelHealth:
    """The worst band at the model's latest window end, over both windows and every slice."""
    end = latest_window_end(model)
    has_reference = ReferenceProfile.objects.filter(version__model=model).exists()
    if end is None:
        return ModelHealth(model, None, None, 0, 0, has_reference)
    results = MetricResult.objects.filter(model=model, window_end=end)
    counts = defaultdict(int)
    for band in results.filter(band__in=[Band.RED, Band.ORANGE]).values_list("band", flat=True):
        counts[band] += 1
    for band in (Band.RED, Band.ORANGE, Band.YELLOW, Band.GREEN, Band.INSUFFICIENT):
        top = list(results.filter(band=band).select_related("site", "version"))
        if top:
            worst = worst_of(top)
            label = slice_label(worst.slice_key, sites_by_code()) if worst else ""
            return ModelHealth(
                model, end, worst, counts[Band.RED], counts[Band.ORANGE], has_reference, label
            )
    return ModelHealth(model, end, None, 0, 0, has_reference)


def overview() -> list[ModelHealth]:
    rows = [model_health(model) for model in deployed_models()]
    return sorted(rows, key=lambda h: (-BAND_RANK.get(h.band, -1), h.model.name))


def sites_by_code() -> dict[str, Site]:
    return {s.code: s for s in Site.objects.all()}


# --- the model dashboard ---------------------------------------------------------------------


@dataclass
class Cell:
    layer: str
    slice_key: str
    worst: MetricResult | None = None
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def band(self) -> str:
        return self.worst.band if self.worst else ""

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    @property
    def label(self) -> str:
        return metric_label(self.worst.metric) if self.worst else ""

    @property
    def value_text(self) -> str:
        if not self.worst:
            return ""
        return fmt_value(self.worst.value, metric_spec(self.worst.metric).unit)

    @property
    def summary(self) -> str:
        """e.g. '2 red, 1 yellow, 30 green, 4 n too small'."""
        return ", ".join(
            f"{self.counts[b]} {BAND_WORDS[b]}" for b in BAND_WORDS if self.counts.get(b)
        )


@dataclass
class SliceRow:
    key: str
    label: str
    group: str
    cells: list[Cell]


@dataclass
class Grid:
    model: ClinicalModel
    versions: list[ModelVersion]
    version: ModelVersion | None
    window_end: date | None
    windows: list[int]
    window: int | None
    window_start: date | None = None
    evaluated_at: datetime | None = None
    rows: list[SliceRow] = field(default_factory=list)
    layers: list[tuple[str, str]] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def counts_text(self) -> str:
        """e.g. '3 red, 2 orange, 140 green, 12 n too small'."""
        return ", ".join(
            f"{self.counts[b]} {BAND_WORDS[b]}" for b in BAND_WORDS if self.counts.get(b)
        )


def metric_label(metric: str) -> str:
    spec = metric_spec(metric)
    feature = metric.partition(":")[2]
    return f"{spec.label}: {feature}" if feature else spec.label


def cohort_values(version: ModelVersion | None) -> dict[str, list[str]]:
    if version is None:
        return {}
    return {c.name: list(c.values or []) for c in version.cohorts.all()}


def grid(model: ClinicalModel, *, version: str | None = None, window: Any = None) -> Grid:
    """Layers × slices for one version and window at the latest window end."""
    end = latest_window_end(model)
    versions = versions_with_results(model, end)
    chosen = pick_version(versions, version)
    windows = windows_of(model, chosen, end)
    days = pick_window(windows, window)
    out = Grid(model, versions, chosen, end, windows, days)
    out.layers = [(layer, Layer(layer).label) for layer in LAYERS]
    if chosen is None or days is None:
        return out
    results = list(
        MetricResult.objects.filter(version=chosen, window_end=end, window_days=days).order_by(
            "slice_key", "metric"
        )
    )
    by_cell: dict[tuple[str, str], list[MetricResult]] = defaultdict(list)
    for r in results:
        by_cell[(r.slice_key, r.layer)].append(r)
        out.counts[r.band] = out.counts.get(r.band, 0) + 1
    out.window_start = min(r.window_start for r in results)
    out.evaluated_at = max(r.evaluated_at for r in results)
    sites = sites_by_code()
    for key in slice_order({r.slice_key for r in results}, cohort_values(chosen)):
        cells = []
        for layer in LAYERS:
            found = by_cell.get((key, layer), [])
            counts: dict[str, int] = defaultdict(int)
            for r in found:
                counts[r.band] += 1
            cells.append(Cell(layer, key, worst_of(found), dict(counts)))
        out.rows.append(SliceRow(key, slice_label(key, sites), slice_group(key), cells))
    return out


def empty_state(model: ClinicalModel) -> dict[str, Any]:
    """What is missing before a dashboard can show anything: the live versions without a
    reference profile, and whether any reference exists at all."""
    live = ModelVersion.objects.filter(
        pk__in=Deployment.objects.active().filter(model=model).values("version_id")
    ).order_by("-pk")
    with_reference = set(
        ReferenceProfile.objects.filter(version__in=live).values_list("version_id", flat=True)
    )
    return {
        "live_versions": list(live),
        "without_reference": [v for v in live if v.pk not in with_reference],
        "has_reference": bool(with_reference),
    }


# --- one metric --------------------------------------------------------------------------------


def known_metric(model: ClinicalModel, metric: str) -> bool:
    """A metric name of the catalogue, and for a per-feature one a feature (or feed) this
    model has results for or declares."""
    name, _, feature = metric.partition(":")
    if name not in METRICS:
        return False
    if not feature:
        return not METRICS[name].per_feature
    if MetricResult.objects.filter(model=model, metric=metric).exists():
        return True
    if feature == "score":
        return True
    return (
        FeatureSpec.objects.filter(version__model=model)
        .filter(Q(name=feature) | Q(feed__slug=feature))
        .exists()
    )


def threshold_lines(result: MetricResult, spec: MetricSpec) -> dict[str, list[float]]:
    """The absolute values where each band starts, from the neutral point and the deviation
    thresholds in force: above it for "up", below for "down", both sides for "both"."""
    neutral = result.baseline
    if neutral is None and not isinstance(spec.neutral, str):
        neutral = float(spec.neutral)
    if neutral is None:
        return {}
    lines: dict[str, list[float]] = {}
    for band in BAND_NAMES:
        t = (result.thresholds or {}).get(band)
        if t is None:
            continue
        if spec.direction == "up":
            lines[band] = [neutral + t]
        elif spec.direction == "down":
            lines[band] = [neutral - t]
        else:
            lines[band] = [neutral - t, neutral + t]
    return lines


@dataclass(frozen=True)
class Point:
    """One result as a row of a table: formatted, with its band."""

    result: MetricResult
    label: str
    value: str
    interval: str
    baseline: str
    lines: dict[str, list[float]]

    @property
    def band(self) -> str:
        return self.result.band


def point(result: MetricResult, spec: MetricSpec, sites: dict[str, Site]) -> Point:
    unit = spec.unit
    interval = (
        f"{fmt_value(result.low, unit)} to {fmt_value(result.high, unit)}"
        if result.low is not None and result.high is not None
        else "—"
    )
    return Point(
        result,
        slice_label(result.slice_key, sites),
        fmt_value(result.value, unit),
        interval,
        fmt_value(result.baseline, unit),
        threshold_lines(result, spec),
    )


def trend(version: ModelVersion, metric: str, slice_key: str, window: int) -> list[MetricResult]:
    return list(
        MetricResult.objects.filter(
            version=version, metric=metric, slice_key=slice_key, window_days=window
        ).order_by("window_end")
    )


def comparison(
    version: ModelVersion, metric: str, window: int, end: date, cohorts: dict[str, list[str]]
) -> list[MetricResult]:
    found = {
        r.slice_key: r
        for r in MetricResult.objects.filter(
            version=version, metric=metric, window_days=window, window_end=end
        )
    }
    return [found[k] for k in slice_order(found, cohorts)]


def reading(result: MetricResult, spec: MetricSpec) -> list[str]:
    """The result in plain words, sentence by sentence."""
    unit = spec.unit
    details = result.details or {}
    min_n = details.get("min_n", spec.min_n)
    n_of = n_of_words(spec)
    words = [
        f"{metric_label(result.metric)} over the {result.window_days} days "
        f"{result.window_start:%Y-%m-%d} to {result.window_end:%Y-%m-%d}: "
        f"{fmt_value(result.value, unit)}"
        + (
            f" (95% interval {fmt_value(result.low, unit)} to {fmt_value(result.high, unit)})"
            if result.low is not None and result.high is not None
            else ""
        )
        + f", from n = {result.n} {n_of}."
    ]
    if result.baseline is not None:
        words.append(f"Baseline (no change): {fmt_value(result.baseline, unit)}.")
    dev = details.get("deviation")
    thresholds = result.thresholds or {}
    harmful = DIRECTION_WORDS[spec.direction]
    if thresholds:
        words.append(
            f"Harmful direction: {harmful}. Bands start at a deviation of "
            + ", ".join(
                f"{b} {fmt_deviation(thresholds.get(b), unit)}"
                for b in BAND_NAMES
                if b in thresholds
            )
            + "."
        )
    if result.band == Band.INSUFFICIENT:
        if result.n < min_n:
            words.append(
                f"Too few to judge: n = {result.n} is below the minimum of {min_n} {n_of}."
            )
        else:
            words.append("Not judged: the value or its baseline could not be computed.")
        return words
    if dev and dev[0] is not None:
        words.append(
            f"Deviation in the harmful direction: {fmt_deviation(dev[0], unit)} "
            f"(interval {fmt_deviation(dev[1], unit)} to {fmt_deviation(dev[2], unit)})."
        )
    words.append(f"Band: {BAND_WORDS[Band(result.band)]} (minimum n {min_n}, met).")
    if result.clears_threshold:
        words.append("The whole interval lies beyond the yellow threshold: confidently not green.")
    elif result.band != Band.GREEN:
        words.append("The interval reaches back below the yellow threshold: not yet confident.")
    if details.get("not_significant"):
        words.append(
            f"The point value alone would be {details.get('band_of_point')}, but the change "
            "is not statistically significant, so the band is green."
        )
    if details.get("p_value") is not None:
        p = details["p_value"]
        words.append(
            f"p = {p:.3g}" + (" (not significant at 0.05)." if p >= 0.05 else " (significant).")
        )
    tightened = details.get("tightened") or {}
    if tightened.get("tier") in ("high", "critical") or tightened.get("launch"):
        why = []
        if tightened.get("tier") in ("high", "critical"):
            why.append(f"the {tightened['tier']} risk tier")
        if tightened.get("launch"):
            why.append("the launch period")
        words.append(f"Thresholds tightened for {' and '.join(why)}.")
    return words


DETAIL_WORDS = {
    "k": "count (k)",
    "positives": "positive outcomes",
    "waiting": "waiting for an outcome",
    "previous_n": "n in the previous period",
}
SHOWN_ELSEWHERE = {"deviation", "p_value", "min_n", "tightened", "not_significant",
                   "band_of_point"}  # fmt: skip


def other_details(result: MetricResult) -> list[tuple[str, str]]:
    out = []
    for key, value in sorted((result.details or {}).items()):
        if key in SHOWN_ELSEWHERE:
            continue
        if isinstance(value, float):
            text = f"{value:.4g}"
        elif isinstance(value, list):
            text = ", ".join("—" if v is None else f"{v:.4g}" if isinstance(v, float) else str(v)
                             for v in value)  # fmt: skip
        else:
            text = str(value)
        out.append((DETAIL_WORDS.get(key, key.replace("_", " ")), text))
    return out


def chart_payload(
    series: Sequence[MetricResult], compared: Sequence[Point], spec: MetricSpec
) -> dict[str, Any]:
    """What ``static/vigil/monitoring.js`` draws: the trend and the slice comparison."""

    def line(band: str, side: int) -> list[float | None]:
        out: list[float | None] = []
        for r in series:
            values = threshold_lines(r, spec).get(band, [])
            out.append(values[side] if len(values) > side else None)
        return out

    sides = 2 if spec.direction == "both" else 1
    return {
        "unit": spec.unit,
        "label": spec.label,
        "trend": {
            "labels": [f"{r.window_end:%Y-%m-%d}" for r in series],
            "value": [r.value for r in series],
            "low": [r.low for r in series],
            "high": [r.high for r in series],
            "band": [r.band for r in series],
            "baseline": [r.baseline for r in series],
            "thresholds": {
                band: [line(band, side) for side in range(sides)] for band in BAND_NAMES
            },
        },
        "comparison": [
            {
                "label": p.label,
                "value": p.result.value,
                "low": p.result.low,
                "high": p.result.high,
                "n": p.result.n,
                "band": p.band,
                "baseline": p.result.baseline,
                "lines": p.lines,
            }
            for p in compared
        ],
    }


# --- reference profiles and policy history -------------------------------------------------------


@dataclass(frozen=True)
class ReferenceRow:
    profile: ReferenceProfile
    auc: str
    oe: str
    outcome_rate: str
    in_force: bool


def reference_rows(version: ModelVersion) -> list[ReferenceRow]:
    profiles = list(
        ReferenceProfile.objects.filter(version=version)
        .select_related("uploaded_by")
        .defer("bins", "reference")
        .order_by("-number")
    )
    rows = []
    for i, p in enumerate(profiles):
        overall = (p.baseline or {}).get(ALL, {})
        rows.append(
            ReferenceRow(
                p,
                fmt_value((overall.get("auc") or {}).get("value")),
                fmt_value((overall.get("calibration_oe") or {}).get("value")),
                fmt_value(overall.get("outcome_rate"), "share"),
                in_force=i == 0,
            )
        )
    return rows


@dataclass(frozen=True)
class PolicyEntry:
    when: datetime
    who: Any
    reason: str
    windows: list[int]
    launch_days: int
    overridden: list[str]
    changed: list[str]


def policy_history(policy: MonitorPolicy | None) -> list[PolicyEntry]:
    """Every saved version of the policy, newest first, with what changed from the one before."""
    if policy is None:
        return []
    records = list(policy.history.select_related("history_user").order_by("-history_date"))
    out = []
    for i, h in enumerate(records):
        before = records[i + 1] if i + 1 < len(records) else None
        changed = (
            sorted(c.field for c in h.diff_against(before).changes if c.field != "reason")
            if before is not None
            else []
        )
        overridden = sorted(set(h.thresholds or {}) | set(h.min_samples or {}))
        out.append(
            PolicyEntry(
                h.history_date,
                h.history_user,
                h.reason,
                list(h.windows or []),
                h.launch_days,
                overridden,
                [c for c in changed if c not in ("updated_at", "updated_by")],
            )
        )
    return out
