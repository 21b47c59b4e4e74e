"""The evidence a release carries, computed by Vigil: from an uploaded validation set
(discrimination and calibration overall, per subgroup and per time window, and a subgroup
regression check against the current version) and from a shadow deployment's events.

No view code and no writes: the release workflow stores what ``evaluate_validation_set`` returns
on ``Release.evidence`` and the file itself as an ``EvidenceFile``. Every number is a
``{"value", "ci_low", "ci_high", "n"}`` dict (95% intervals, ``None`` where undefined), the shape
of ``ModelVersion.validation_results``, so the two compare directly.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any, TypedDict

import numpy as np

from governance.evidence_io import MIN_PER_CLASS, ValidationSet, read_validation_set
from monitoring.models import Outcome, PredictionEvent
from monitoring.stats import calibration
from monitoring.stats.binning import ScoreHistogram
from monitoring.stats.core import Estimate
from monitoring.stats.discrimination import auc_from_histograms
from monitoring.stats.intervals import wilson
from registry.models import ClinicalModel, Deployment, DeploymentMode, ModelVersion, Site

#: A candidate AUC is "worse" when its whole interval lies below the current AUC minus this.
AUC_MARGIN = 0.02
#: A candidate slope is "worse" when its whole interval lies farther from 1 than the current
#: slope is, plus this.
SLOPE_MARGIN = 0.1
METRICS = ("auc", "calibration_intercept", "calibration_slope", "oe", "ece", "brier")
LABELS = {
    "auc": "AUC",
    "calibration_intercept": "calibration intercept",
    "calibration_slope": "calibration slope",
    "oe": "O/E",
    "ece": "ECE",
    "brier": "Brier",
}
#: Names a version's recorded ``validation_results`` may use for the compared metrics.
RECORDED_NAMES = {
    "auc": ("auc", "auroc", "roc_auc", "c_statistic"),
    "calibration_slope": ("calibration_slope", "slope"),
}
REGRESSION_BASIS = (
    "The validation set holds only the candidate's scores, so each subgroup's AUC and "
    "calibration slope on it are compared with the current version's recorded validation "
    "results (ModelVersion.validation_results), not with the current version re-scored on the "
    f"same cases. Worse: the candidate's 95% interval lies wholly below the current AUC minus "
    f"{AUC_MARGIN}, or wholly farther from 1 than the current slope plus {SLOPE_MARGIN}."
)


class Metric(TypedDict):
    value: float | None
    ci_low: float | None
    ci_high: float | None
    n: int


class RegressionRow(TypedDict):
    subgroup: str
    metric: str
    current: Metric | None
    candidate: Metric | None
    delta: float | None
    verdict: str  # better | no worse | worse | insufficient
    reason: str


# --- Metrics of one set of cases -------------------------------------------------------------


def _metric(est: Estimate) -> Metric:
    d = est.as_dict()
    return {"value": d["value"], "ci_low": d["low"], "ci_high": d["high"], "n": int(est.n)}


def exact_auc(scores: np.ndarray, labels: np.ndarray) -> Estimate:
    """AUC of the raw scores (ties count ½) with its DeLong interval: the histogram statistic
    on one bin per distinct score, where it is exact (equals sklearn's ``roc_auc_score``)."""
    distinct, index = np.unique(scores, return_inverse=True)
    positive = labels > 0.5
    neg = np.bincount(index[~positive], minlength=distinct.size)
    pos = np.bincount(index[positive], minlength=distinct.size)
    return auc_from_histograms(neg, pos)


def measure(scores: np.ndarray, labels: np.ndarray) -> dict[str, Any]:
    """``n``, ``events``, ``insufficient`` and, unless insufficient (fewer than
    ``MIN_PER_CLASS`` positives or negatives), every metric of ``METRICS``."""
    events = int((labels > 0.5).sum())
    n = int(labels.size)
    out: dict[str, Any] = {"n": n, "events": events}
    out["insufficient"] = min(events, n - events) < MIN_PER_CLASS
    if out["insufficient"]:
        return out
    h = ScoreHistogram.from_arrays(scores, labels)
    out["auc"] = _metric(exact_auc(scores, labels))
    out["calibration_intercept"] = _metric(calibration.calibration_in_the_large(h))
    out["calibration_slope"] = _metric(calibration.calibration_slope(h))
    out["oe"] = _metric(calibration.observed_expected(h))
    out["ece"] = _metric(calibration.ece(h))
    out["brier"] = _metric(calibration.brier(h))
    return out


def subgroup_masks(dataset: ValidationSet) -> dict[str, np.ndarray]:
    """``"<cohort>=<value>"`` (and ``"site=<code>"`` with a site column) → its rows."""
    keys: list[list[str]] = [
        [f"{column}={value}" for column, value in cohort.items()] for cohort in dataset.cohorts
    ]
    if dataset.sites is not None:
        for row, site in zip(keys, dataset.sites, strict=True):
            if site:
                row.append(f"site={site}")
    masks: dict[str, np.ndarray] = {}
    for i, row in enumerate(keys):
        for key in row:
            masks.setdefault(key, np.zeros(len(dataset), dtype=bool))[i] = True
    return dict(sorted(masks.items()))


# --- The regression check ------------------------------------------------------------------


def _recorded(results: Any, subgroup: str, metric: str) -> Metric | None:
    """The current version's recorded value (a metric dict or a bare number), or None."""
    if not isinstance(results, Mapping):
        return None
    block = results.get("overall") if subgroup == "overall" else None
    if subgroup != "overall" and isinstance(results.get("subgroups"), Mapping):
        block = results["subgroups"].get(subgroup)
    if not isinstance(block, Mapping):
        return None
    for name in RECORDED_NAMES[metric]:
        raw = block.get(name)
        entry = raw if isinstance(raw, Mapping) else {"value": raw}
        value = _number(entry.get("value"))
        if value is not None:
            n = entry.get("n")
            return {
                "value": value,
                "ci_low": _number(entry.get("ci_low")),
                "ci_high": _number(entry.get("ci_high")),
                "n": int(n) if isinstance(n, int | float) and not isinstance(n, bool) else 0,
            }
    return None


def _number(x: Any) -> float | None:
    if isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x):
        return float(x)
    return None


def verdict(metric: str, candidate: Metric, current: float) -> str:
    """How the candidate's interval stands against the current version's point estimate.

    AUC (higher is better): "worse" when the candidate's upper limit is below
    current − ``AUC_MARGIN``; "better" when its lower limit is above current + ``AUC_MARGIN``.
    Calibration slope (1 is ideal; both too steep and too flat are harm): with d = |current − 1|,
    "worse" when every slope in the candidate's interval is farther than d + ``SLOPE_MARGIN``
    from 1; "better" when every slope in it is nearer than d − ``SLOPE_MARGIN``.
    Otherwise "no worse": the data cannot show a difference larger than the margin, which is
    all a release needs to know. The margins are tolerances, not targets.
    """
    low, high = candidate["ci_low"], candidate["ci_high"]
    if low is None or high is None:
        return "insufficient"
    if metric == "auc":
        if high < current - AUC_MARGIN:
            return "worse"
        return "better" if low > current + AUC_MARGIN else "no worse"
    distance = abs(current - 1)
    nearest = 0.0 if low <= 1 <= high else min(abs(low - 1), abs(high - 1))
    farthest = max(abs(low - 1), abs(high - 1))
    if nearest > distance + SLOPE_MARGIN:
        return "worse"
    return "better" if farthest < distance - SLOPE_MARGIN else "no worse"


def _regression_row(
    subgroup: str, metric: str, measured: Mapping[str, Any] | None, results: Any
) -> RegressionRow:
    current = _recorded(results, subgroup, metric)
    candidate: Metric | None = None
    reason = ""
    if measured is None:
        reason = "the validation set has no rows in this subgroup"
    elif measured["insufficient"]:
        reason = f"fewer than {MIN_PER_CLASS} positives or negatives in the validation set"
    else:
        candidate = measured[metric]
    if current is None and not reason:
        reason = "the current version records no value for this subgroup and metric"
    row: RegressionRow = {
        "subgroup": subgroup, "metric": metric, "current": current, "candidate": candidate,
        "delta": None, "verdict": "insufficient", "reason": reason,
    }  # fmt: skip
    value = candidate["value"] if candidate is not None else None
    baseline = current["value"] if current is not None else None
    if candidate is not None and value is not None and baseline is not None:
        row["delta"] = value - baseline
        row["verdict"] = verdict(metric, candidate, baseline)
        if row["verdict"] == "insufficient":
            row["reason"] = "the candidate's interval is undefined"
    elif candidate is not None and not reason:
        row["reason"] = "the candidate's value is undefined"
    return row


def regression_check(
    overall: Mapping[str, Any], subgroups: Mapping[str, Any], current: ModelVersion
) -> list[RegressionRow]:
    """Overall and every subgroup (measured here or recorded by the current version), AUC and
    calibration slope each, against ``current.validation_results`` (see ``verdict``)."""
    results = current.validation_results
    recorded = results.get("subgroups") if isinstance(results, Mapping) else None
    names = sorted(set(subgroups) | set(recorded if isinstance(recorded, Mapping) else ()))
    rows = []
    for name in ["overall", *names]:
        measured = overall if name == "overall" else subgroups.get(name)
        rows.extend(_regression_row(name, m, measured, results) for m in RECORDED_NAMES)
    return rows


# --- Backtests -----------------------------------------------------------------------------


def backtests(dataset: ValidationSet, windows: int) -> list[dict[str, Any]]:
    """The set cut by ``occurred_at`` into ``windows`` consecutive windows of equal count (the
    first ones one row larger when it does not divide; rows at the same moment may fall on
    either side of a cut), each with the overall metrics. Every row is in exactly one window."""
    if dataset.occurred is None:
        return []
    order = np.argsort(np.array([m.timestamp() for m in dataset.occurred]), kind="stable")
    out = []
    for part in np.array_split(order, windows):
        if part.size == 0:
            continue
        first, last = dataset.occurred[part[0]], dataset.occurred[part[-1]]
        block = measure(dataset.scores[part], dataset.labels[part])
        out.append({"window": [first.isoformat(), last.isoformat()], **block})
    return out


# --- The whole evidence --------------------------------------------------------------------


def evaluate_validation_set(
    *,
    version: ModelVersion,
    data: bytes,
    filename: str,
    current_version: ModelVersion | None = None,
    windows: int = 3,
) -> dict[str, Any]:
    """The evidence JSON of a validation set scored by ``version`` (see the module docstring
    and ``REGRESSION_BASIS``). Raises ``ValidationError({"file": [...]})`` listing every
    problem of a bad file, computing nothing. Non-fatal gaps (no time column, no current
    version) are sentences in ``problems``."""
    if windows < 1:
        raise ValueError(f"windows must be at least 1, got {windows!r}")
    dataset = read_validation_set(version=version, data=data, filename=filename)
    problems: list[str] = []
    overall = measure(dataset.scores, dataset.labels)
    subgroups = {
        key: measure(dataset.scores[mask], dataset.labels[mask])
        for key, mask in subgroup_masks(dataset).items()
    }
    regression: list[RegressionRow] = []
    if current_version is None:
        problems.append("No current version to compare with: no regression check.")
    else:
        regression = regression_check(overall, subgroups, current_version)
    tests: list[dict[str, Any]] = []
    if dataset.occurred is None:
        problems.append("The validation set has no occurred_at column: no backtests.")
    else:
        tests = backtests(dataset, windows)
    return {
        "version": str(version),
        "dataset": _dataset_summary(dataset),
        "overall": overall,
        "subgroups": subgroups,
        "current_version": str(current_version) if current_version else None,
        "regression_basis": REGRESSION_BASIS,
        "margins": {"auc": AUC_MARGIN, "calibration_slope": SLOPE_MARGIN},
        "regression": regression,
        "backtests": tests,
        "problems": problems,
    }


def _dataset_summary(dataset: ValidationSet) -> dict[str, Any]:
    period = None
    if dataset.occurred:
        period = [min(dataset.occurred).isoformat(), max(dataset.occurred).isoformat()]
    sites = None
    if dataset.sites is not None:
        sites = dict(Counter(s for s in dataset.sites if s).most_common())
    return {
        "rows": len(dataset),
        "events": int((dataset.labels > 0.5).sum()),
        "sha256": dataset.sha256,
        "filename": dataset.filename,
        "period": period,
        "sites": sites,
    }


def current_version_at(*, model: ClinicalModel, sites: Iterable[Site]) -> ModelVersion | None:
    """The version live now at most of ``sites`` (ties: the most recently started), or None
    when none of them runs the model live. The yardstick of the regression check."""
    live = (
        Deployment.objects.active()
        .filter(model=model, mode=DeploymentMode.LIVE, site__in=list(sites))
        .select_related("version__model")
        .order_by("-started_at")
    )
    counts: Counter[int] = Counter()
    versions: dict[int, ModelVersion] = {}
    for deployment in live:
        counts[deployment.version_id] += 1
        versions.setdefault(deployment.version_id, deployment.version)
    if not counts:
        return None
    top = max(counts.values())
    return next(v for vid, v in versions.items() if counts[vid] == top)


# --- Shadow results ------------------------------------------------------------------------


def shadow_results(
    *, version: ModelVersion, sites: Iterable[Site | int], since: datetime | None = None
) -> dict[str, Any] | None:
    """How ``version`` did in shadow at ``sites`` (since ``since``), or None when it has no
    shadow events there. Metrics rest on the events with a standing outcome (the outcome row
    no correction replaced); ``would_defer`` / ``would_act`` count the events whose gate
    reasons would / would not have deferred them had the deployment been live."""
    events = PredictionEvent.objects.filter(
        version=version, mode=DeploymentMode.SHADOW, site__in=list(sites)
    )
    if since is not None:
        events = events.filter(occurred_at__gte=since)
    rows = list(events.values_list("id", "score", "reasons", "occurred_at", "site__code"))
    if not rows:
        return None
    standing = dict(
        Outcome.objects.filter(event__in=events, corrected_by__isnull=True).values_list(
            "event_id", "label"
        )
    )
    labelled = [(score, standing[pk]) for pk, score, *_ in rows if pk in standing]
    scores = np.array([s for s, _ in labelled], dtype=float)
    labels = np.array([1.0 if y > 0.5 else 0.0 for _, y in labelled], dtype=float)
    defer = sum(1 for _, _, reasons, *_ in rows if reasons)
    moments = [r[3] for r in rows]
    return {
        "predictions": len(rows),
        "labelled": len(labelled),
        "period": [min(moments).isoformat(), max(moments).isoformat()],
        "sites": dict(Counter(r[4] for r in rows).most_common()),
        "would_defer": defer,
        "would_act": len(rows) - defer,
        "deferral_rate": _metric(wilson(defer, len(rows))),
        **measure(scores, labels),
    }


# --- Summary lines ---------------------------------------------------------------------------


def _fmt(entry: Mapping[str, Any] | None, digits: int = 2) -> str:
    if not entry or entry.get("value") is None:
        return "undefined"
    text = f"{entry['value']:.{digits}f}"
    if entry.get("ci_low") is not None and entry.get("ci_high") is not None:
        text += f" ({entry['ci_low']:.{digits}f}–{entry['ci_high']:.{digits}f})"
    return text


def _headline(block: Mapping[str, Any]) -> str:
    size = f"n={block['n']:,}, {block['events']:,} events"
    if block.get("insufficient"):
        return f"too few events to measure ({size})"
    return (
        f"AUC {_fmt(block.get('auc'))}, {size}; calibration slope "
        f"{_fmt(block.get('calibration_slope'))}, O/E {_fmt(block.get('oe'))}, "
        f"Brier {_fmt(block.get('brier'), 3)}"
    )


def _worse_part(row: Mapping[str, Any]) -> str:
    return f"{LABELS[row['metric']]} {_fmt(row['candidate'])} vs {row['current']['value']:.2f}"


def _regression_lines(rows: list[Mapping[str, Any]]) -> list[str]:
    worse = [r for r in rows if r["verdict"] == "worse"]
    lines = []
    overall = [_worse_part(r) for r in worse if r["subgroup"] == "overall"]
    if overall:
        lines.append("Overall worse than the current version: " + "; ".join(overall))
    groups = sorted({r["subgroup"] for r in worse if r["subgroup"] != "overall"})
    if groups:
        parts = [f"{r['subgroup']} {_worse_part(r)}" for r in worse if r["subgroup"] in groups]
        noun = "subgroup" if len(groups) == 1 else "subgroups"
        lines.append(f"{len(groups)} {noun} worse than the current version: " + "; ".join(parts))
    if not worse:
        lines.append("No subgroup worse than the current version.")
    for metric in RECORDED_NAMES:
        unjudged = [
            r["subgroup"] for r in rows if r["metric"] == metric and r["verdict"] == "insufficient"
        ]
        if unjudged:
            label = LABELS[metric][:1].upper() + LABELS[metric][1:]
            lines.append(
                f"{label} not compared (too few events or no recorded value): "
                + ", ".join(unjudged)
            )
    return lines


def evidence_summary(evidence: Mapping[str, Any]) -> list[str]:
    """Short human lines for the release page; tolerant of missing parts (a release may
    carry only shadow results, or evidence computed by an older Vigil)."""
    lines: list[str] = []
    dataset = evidence.get("dataset")
    if dataset:
        period = dataset.get("period")
        span = f", {period[0][:10]} to {period[1][:10]}" if period else ""
        lines.append(
            f"Validation set {dataset['filename']}: {dataset['rows']:,} rows, "
            f"{dataset['events']:,} events{span} (sha256 {dataset['sha256'][:12]}…)"
        )
    if evidence.get("overall"):
        lines.append(_headline(evidence["overall"]))
    subgroups = evidence.get("subgroups") or {}
    thin = sorted(k for k, v in subgroups.items() if v.get("insufficient"))
    if thin:
        lines.append(f"{len(thin)} subgroup(s) with too few events to measure: {', '.join(thin)}")
    if evidence.get("current_version"):
        lines.append(f"Compared with {evidence['current_version']}'s recorded validation:")
        lines.extend(_regression_lines(evidence.get("regression") or []))
    tests = evidence.get("backtests") or []
    if tests:
        aucs = ", ".join(_fmt(t.get("auc")) if not t["insufficient"] else "n/a" for t in tests)
        lines.append(f"Backtests over {len(tests)} time windows: AUC {aucs}")
    shadow = evidence.get("shadow")
    if shadow:
        lines.append(
            f"Shadow: {shadow['predictions']:,} predictions, {shadow['would_defer']:,} would "
            f"have deferred; " + _headline(shadow)
        )
    lines.extend(evidence.get("problems") or [])
    return lines
