"""Every monitoring metric of one slice, from merged profiles. Pure (numpy + monitoring.stats).

``slice_metrics(current, reference, previous, ...)`` compares a window's merged profile with the
reference data's profile of the same slice (data quality, drift, discrimination, calibration,
outcome rate) and with the slice's own previous period (workflow rates, which the reference file
cannot know). Each metric is a ``Measured``: its estimate, the neutral point it is judged from
(``baseline``), and the interval of its deviation (see ``monitoring.thresholds``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from monitoring.profile_data import FeatureBins
from monitoring.stats import (
    calibration,
    cbpe,
    discrimination,
    drift,
    quality,
    sequential,
    workflow,
)
from monitoring.stats.binning import ScoreHistogram
from monitoring.stats.core import Estimate
from monitoring.stats.ratios import rate_ratio
from monitoring.thresholds import METRICS

#: PSI and Jensen–Shannon compare numeric features on the fine quantile bins merged in groups
#: of this many (50 fine bins → 10 deciles), the customary resolution for PSI; KS and
#: Wasserstein use the fine bins.
COARSE_GROUP = 5
#: Score drift uses the 100 fixed score bins merged into 10 equal-width groups.
SCORE_GROUP = 10


@dataclass(frozen=True)
class Measured:
    metric: str  # "psi:lactate", "auc", ...
    estimate: Estimate
    baseline: float | None
    #: the deviation's value and interval, in the harmful direction (None: undefined)
    deviation: tuple[float, float, float] | None
    details: dict[str, Any] = field(default_factory=dict)
    #: p-value of "no change" where a test of it exists (drift: χ² homogeneity on the same
    #: bins, or KS); None where the deviation's interval decides
    p_value: float | None = None

    @property
    def name(self) -> str:
        return self.metric.partition(":")[0]

    @property
    def layer(self) -> str:
        return METRICS[self.name].layer


def _measured(
    metric: str,
    est: Estimate,
    neutral: float | None,
    *,
    deviation: Estimate | None = None,
    p_value: float | None = None,
    **details: Any,
) -> Measured:
    """A result whose deviation is computed from its own interval (or given, e.g. Newcombe)."""
    spec = METRICS[metric.partition(":")[0]]
    if deviation is not None:
        dev = (
            (deviation.value, deviation.low, deviation.high)
            if _finite(deviation.value, deviation.low, deviation.high)
            else None
        )
        if dev is not None and spec.direction == "down":
            dev = (-dev[0], -dev[2], -dev[1])
    elif neutral is None or not _finite(est.value, est.low, est.high):
        dev = None
    else:
        lo, hi = spec.deviation_interval(est.low, est.high, neutral)
        dev = (spec.deviation(est.value, neutral), lo, hi)
    return Measured(metric, est, neutral, dev, details, p_value)


def _finite(*values: float | None) -> bool:
    return all(v is not None and math.isfinite(v) for v in values)


def _group(counts: Sequence[float], size: int) -> np.ndarray:
    a = np.asarray(counts, dtype=float)
    pad = (-len(a)) % size
    if pad:
        a = np.concatenate([a, np.zeros(pad)])
    return a.reshape(-1, size).sum(axis=1)


# --- data quality ------------------------------------------------------------------------------


def _rate_metric(metric: str, k: int, n: int, k_ref: int, n_ref: int) -> Measured:
    est = quality.rate(k, n)
    base = k_ref / n_ref if n_ref else None
    diff = quality.rate_vs_reference(k, n, k_ref, n_ref) if n_ref else None
    return _measured(metric, est, base, deviation=diff, k=k, reference_rate=base)


def data_quality(
    cur: Mapping[str, Any], ref: Mapping[str, Any], bins: Sequence[FeatureBins]
) -> list[Measured]:
    out = []
    n, n_ref = cur["n"], ref["n"]
    for fb in bins:
        c, r = cur["features"][fb.name], ref["features"][fb.name]
        out.append(_rate_metric(f"missing_rate:{fb.name}", c["missing"], n, r["missing"], n_ref))
        if fb.dtype == "numeric":
            out.append(
                _rate_metric(
                    f"out_of_range_rate:{fb.name}", c["out_of_range"], n, r["out_of_range"], n_ref
                )
            )
        elif fb.dtype == "categorical":
            out.append(
                _rate_metric(
                    f"unknown_category_rate:{fb.name}", c["unknown"], n, r["unknown"], n_ref
                )
            )
    est = quality.rate(cur.get("unexpected", 0), n)
    out.append(_measured("unexpected_feature_rate", est, 0.0, k=cur.get("unexpected", 0)))
    return out


def staleness(
    last_seen: Mapping[str, str],
    feeds: Mapping[str, tuple[str, float]],
    *,
    as_of_epoch: float,
    window_start_epoch: float,
    events: int,
) -> list[Measured]:
    """Per feed: how long since any of its features last carried a value, in multiples of the
    interval at which one is expected. Vigil sees a feed only through the predictions that carry
    its values, so the expected interval is the feed's declared cadence or the slice's mean gap
    between predictions over the window, whichever is longer (a quiet night at a small site is
    not a dead feed). ``feeds`` maps a feature to (feed slug, cadence in minutes)."""
    from datetime import datetime

    window_minutes = max(as_of_epoch - window_start_epoch, 60.0) / 60
    # A slice with no events at all in the window is judged on the feed's cadence alone: its
    # silence is the finding, not a reason to expect nothing.
    mean_gap = window_minutes / events if events else 0.0
    newest: dict[str, float] = {}
    cadence: dict[str, float] = {}
    for feature, (feed, minutes) in feeds.items():
        cadence[feed] = minutes
        seen = last_seen.get(feature)
        when = datetime.fromisoformat(seen).timestamp() if seen else window_start_epoch
        newest[feed] = max(newest.get(feed, -math.inf), when)
    out = []
    for feed in sorted(newest):
        silent_h = max(as_of_epoch - newest[feed], 0.0) / 3600
        expected = max(cadence[feed], mean_gap)
        multiple = silent_h * 60 / expected
        est = Estimate(multiple, multiple, multiple, events)
        out.append(
            _measured(
                f"staleness:{feed}",
                est,
                0.0,
                silent_hours=round(silent_h, 2),
                cadence_minutes=cadence[feed],
                expected_interval_minutes=round(expected, 1),
                never_seen_in_window=not any(
                    last_seen.get(f) for f, (fd, _) in feeds.items() if fd == feed
                ),
            )
        )
    return out


# --- distribution drift -------------------------------------------------------------------------


def _drift_family(
    name: str,
    ref_coarse: np.ndarray,
    cur_coarse: np.ndarray,
    ref_fine: Sequence[float] | None = None,
    cur_fine: Sequence[float] | None = None,
) -> list[Measured]:
    """PSI and JS on the coarse bins, KS on the fine ones (numeric); all but KS take their
    "no change" p-value from the χ² test of homogeneity on the same coarse bins, so a distance
    at the noise floor of a small sample is not called drift."""
    same = drift.chi_square(ref_coarse, cur_coarse).p_value
    out = [
        _measured(f"psi:{name}", drift.psi(ref_coarse, cur_coarse), 0.0, p_value=same),
        _measured(
            f"js_distance:{name}", drift.js_distance(ref_coarse, cur_coarse), 0.0, p_value=same
        ),
    ]
    if ref_fine is not None and cur_fine is not None:
        ks = drift.ks_binned(ref_fine, cur_fine)
        out.append(_measured(f"ks:{name}", ks, 0.0, p_value=ks.p_value))
    return out


def feature_drift(
    cur: Mapping[str, Any],
    ref: Mapping[str, Any],
    bins: Sequence[FeatureBins],
    ref_std: Mapping[str, float],
) -> list[Measured]:
    out = []
    for fb in bins:
        c, r = cur["features"][fb.name], ref["features"][fb.name]
        name = fb.name
        if fb.dtype == "numeric":
            coarse_r = _group(r["counts"], COARSE_GROUP)
            coarse_c = _group(c["counts"], COARSE_GROUP)
            family = _drift_family(name, coarse_r, coarse_c, r["counts"], c["counts"])
            out += family
            std = ref_std.get(name) or 0.0
            if std > 0:
                est = drift.wasserstein_binned(r["counts"], r["sums"], c["counts"], c["sums"], std)
                same = family[0].p_value
                out.append(
                    _measured(f"wasserstein:{name}", est, 0.0, p_value=same, reference_sd=std)
                )
        else:
            ref_counts = np.asarray(r["counts"], dtype=float)
            cur_counts = np.asarray(c["counts"], dtype=float)
            out += _drift_family(name, ref_counts, cur_counts)
            chi = drift.chi_square(ref_counts, cur_counts)
            out.append(_measured(f"chi_square:{name}", chi, 0.0, p_value=chi.p_value))
    return out


def score_drift(cur_h: ScoreHistogram, ref_h: ScoreHistogram) -> list[Measured]:
    fine_c, fine_r = cur_h.count.sum(axis=0), ref_h.count.sum(axis=0)
    family = _drift_family(
        "score", _group(fine_r, SCORE_GROUP), _group(fine_c, SCORE_GROUP), fine_r, fine_c
    )
    return [m for m in family if m.name in ("psi", "ks")]


# --- discrimination, calibration, performance before labels ----------------------------------


def finite_or_none(value: float | None) -> float | None:
    """A number JSON can hold: NaN and infinities (undefined) become ``None``."""
    return value if value is not None and math.isfinite(value) else None


def _value(est: Estimate) -> float | None:
    return finite_or_none(est.value)


def performance(cur_h: ScoreHistogram, ref_h: ScoreHistogram) -> list[Measured]:
    ref_auc = discrimination.auc_from_score_histogram(ref_h)
    ref_brier = calibration.brier(ref_h)
    labelled = cur_h.n_labelled
    positives = int(cur_h.count[1].sum())
    out = [
        _measured(
            "auc",
            discrimination.auc_from_score_histogram(cur_h),
            _value(ref_auc),
            positives=positives,
        ),
        _measured("calibration_oe", calibration.observed_expected(cur_h), 1.0, positives=positives),
        _measured("calibration_intercept", calibration.calibration_in_the_large(cur_h), 0.0),
        _measured("calibration_slope", calibration.calibration_slope(cur_h), 1.0),
        _measured("ece", calibration.ece(cur_h), _value(calibration.ece(ref_h))),
        _measured(
            "brier",
            calibration.brier(cur_h),
            _calibrated_brier(cur_h),
            reference_brier=_value(ref_brier),
        ),
    ]
    # Before labels arrive: the events still waiting for an outcome, under the assumption
    # that calibration holds (confidence-based performance estimation).
    waiting = _only_unlabelled(cur_h)
    ref_all = _as_unlabelled(ref_h)
    out.append(
        _measured(
            "expected_auc",
            cbpe.expected_auc(waiting),
            _value(cbpe.expected_auc(ref_all)),
            labelled=labelled,
            waiting=waiting.n,
        )
    )
    out.append(
        _measured(
            "expected_event_rate",
            cbpe.expected_event_rate(waiting),
            _value(cbpe.expected_event_rate(ref_all)),
            waiting=waiting.n,
        )
    )
    return out


def _calibrated_brier(h: ScoreHistogram) -> float | None:
    """Σp(1−p)/n over the labelled cases: the Brier score if the scores were calibrated."""
    n = h.n_labelled
    if not n:
        return None
    return float((h.sum_p[:2].sum() - h.sum_p2[:2].sum()) / n)


def _only_unlabelled(h: ScoreHistogram) -> ScoreHistogram:
    def keep(a: np.ndarray) -> np.ndarray:
        out = np.zeros_like(a)
        out[2] = a[2]
        return out

    return ScoreHistogram(
        count=keep(h.count), sum_p=keep(h.sum_p), sum_p2=keep(h.sum_p2), sum_logit=keep(h.sum_logit)
    )


def _as_unlabelled(h: ScoreHistogram) -> ScoreHistogram:
    def fold(a: np.ndarray) -> np.ndarray:
        out = np.zeros_like(a)
        out[2] = a.sum(axis=0)
        return out

    return ScoreHistogram(
        count=fold(h.count), sum_p=fold(h.sum_p), sum_p2=fold(h.sum_p2), sum_logit=fold(h.sum_logit)
    )


# --- workflow and outcome ---------------------------------------------------------------------


def workflow_metrics(cur: Mapping[str, Any], prev: Mapping[str, Any] | None) -> list[Measured]:
    if "actions" not in cur:
        return []
    out = []
    judged = cur["actions"]["act"] + cur["actions"]["defer"]
    prev_judged = prev["actions"]["act"] + prev["actions"]["defer"] if prev else 0
    deferred = cur["actions"]["defer"]
    prev_deferred = prev["actions"]["defer"] if prev else 0
    out.append(_ratio("deferral_rate", deferred, judged, prev_deferred, prev_judged))
    out.append(
        _ratio(
            "override_rate",
            cur["overridden"],
            cur["acted"],
            prev["overridden"] if prev else 0,
            prev["acted"] if prev else 0,
        )
    )
    counts = cur["tta_counts"]
    est = workflow.time_quantile(counts, 0.9)
    hours = Estimate(est.value / 3600, est.low / 3600, est.high / 3600, est.n)
    out.append(_measured("time_to_action_p90", hours, 0.0))
    return out


def _ratio(metric: str, k: int, n: int, k0: int, n0: int) -> Measured:
    """A workflow rate as a ratio to the slice's previous period (neutral 1)."""
    rate = quality.rate(k, n)
    if n0 == 0:
        est = Estimate(math.nan, math.nan, math.nan, n)
    else:
        est = rate_ratio(k, n, k0, n0)
    return _measured(
        metric,
        est,
        1.0,
        k=k,
        rate=_value(rate),
        rate_interval=[finite_or_none(rate.low), finite_or_none(rate.high)],
        previous_rate=(k0 / n0) if n0 else None,
        previous_n=n0,
    )


def outcome_metrics(
    cur_h: ScoreHistogram,
    ref_h: ScoreHistogram,
    *,
    all_h: ScoreHistogram | None = None,
    ref_all_h: ScoreHistogram | None = None,
) -> list[Measured]:
    pos, lab = int(cur_h.count[1].sum()), cur_h.n_labelled
    ref_pos, ref_lab = int(ref_h.count[1].sum()), ref_h.n_labelled
    out = [_rate_metric("outcome_rate", pos, lab, ref_pos, ref_lab)]
    if all_h is not None and ref_all_h is not None:
        gap = workflow.subgroup_difference(pos, lab, int(all_h.count[1].sum()), all_h.n_labelled)
        ref_gap = workflow.subgroup_difference(
            ref_pos, ref_lab, int(ref_all_h.count[1].sum()), ref_all_h.n_labelled
        )
        base = _value(ref_gap)
        if base is not None and gap.defined:
            change = Estimate(gap.value - base, gap.low - base, gap.high - base, gap.n)
            out.append(_measured("subgroup_gap", gap, base, deviation=change, reference_gap=base))
        else:
            out.append(_measured("subgroup_gap", gap, base))
    return out


def slice_metrics(
    cur: Mapping[str, Any],
    ref: Mapping[str, Any],
    prev: Mapping[str, Any] | None,
    bins: Sequence[FeatureBins],
    ref_std: Mapping[str, float],
    *,
    whole: Mapping[str, Any] | None = None,
    ref_whole: Mapping[str, Any] | None = None,
) -> list[Measured]:
    """Every metric of one slice; ``whole``/``ref_whole`` (the all-slice) add subgroup gaps."""
    cur_h, ref_h = ScoreHistogram.from_dict(cur["score"]), ScoreHistogram.from_dict(ref["score"])
    out = data_quality(cur, ref, bins)
    out += feature_drift(cur, ref, bins, ref_std)
    out += score_drift(cur_h, ref_h)
    out += performance(cur_h, ref_h)
    out += workflow_metrics(cur, prev)
    out += outcome_metrics(
        cur_h,
        ref_h,
        all_h=ScoreHistogram.from_dict(whole["score"]) if whole else None,
        ref_all_h=ScoreHistogram.from_dict(ref_whole["score"]) if ref_whole else None,
    )
    return out


# --- sequential detection over the window's days ----------------------------------------------

#: Steiner et al. (2000): detect a doubling (R = 2) or a halving (R = 0.5) of the odds of the
#: outcome relative to the scores; alarm at h = 6 (the paper's example uses 4.5 for one chart;
#: every slice runs its own here, so the limit is raised to keep chance alarms rare).
CUSUM_ODDS = {"cusum_calibration_up": 2.0, "cusum_calibration_down": 0.5}
CUSUM_H = 6.0
#: EWMA limits come from the previous period's own day-to-day spread: at least this many days,
#: with at least this many counted events a day on average (below that a daily rate is mostly
#: 0 or a lone event, too lumpy to chart; the window's rate ratio still judges the slice).
EWMA_MIN_DAYS = 14
EWMA_MIN_DAILY_EVENTS = 5


def sequential_metrics(
    days: Sequence[Mapping[str, Any]], before: Sequence[Mapping[str, Any]]
) -> list[Measured]:
    """Risk-adjusted CUSUMs over the daily calibration, and EWMA charts of the daily deferral
    and override rates against the previous period: slow drift shows here before a window
    average moves. Each value is the chart's highest point in the window in units of its
    alarm limit (≥ 1: the chart alarmed)."""
    out = []
    histograms = [ScoreHistogram.from_dict(d["score"]) for d in days]
    for metric, odds in CUSUM_ODDS.items():
        terms = [sequential.daily_cusum_terms(h, odds) for h in histograms]
        if not terms:
            out.append(_measured(metric, Estimate(math.nan, math.nan, math.nan, 0), 0.0))
            continue
        path, alarm = sequential.risk_adjusted_cusum(
            [o for o, _ in terms], [a for _, a in terms], odds, CUSUM_H
        )
        top = float(path.max()) / CUSUM_H
        out.append(
            _measured(
                metric,
                Estimate(top, top, top, sum(h.n_labelled for h in histograms)),
                0.0,
                path=[round(float(v), 3) for v in path],
                alarm_day_index=alarm,
                odds_ratio=odds,
                h=CUSUM_H,
            )
        )
    if days and "actions" in days[0]:
        out.append(_ewma("ewma_deferral_rate", days, before, "defer"))
        out.append(_ewma("ewma_override_rate", days, before, "overridden"))
    return out


def _daily_rate(day: Mapping[str, Any], what: str) -> tuple[int, int]:
    if what == "defer":
        return day["actions"]["defer"], day["actions"]["act"] + day["actions"]["defer"]
    return day.get("overridden", 0), day.get("acted", 0)


def _ewma(
    metric: str,
    days: Sequence[Mapping[str, Any]],
    before: Sequence[Mapping[str, Any]],
    what: str,
) -> Measured:
    """EWMA of the daily rate around the previous period's mean, with limits from the
    previous period's own day-to-day spread (real daily rates vary more than a binomial:
    weekdays, case mix), so an ordinary week does not cross them."""
    counts = [(k, n) for k, n in (_daily_rate(d, what) for d in days) if n > 0]
    total = sum(n for _, n in counts)
    past = [(k, n) for k, n in (_daily_rate(d, what) for d in before if "actions" in d) if n > 0]
    history = [k / n for k, n in past]
    undefined = _measured(metric, Estimate(math.nan, math.nan, math.nan, total), 0.0)
    if (
        not counts
        or len(history) < EWMA_MIN_DAYS
        or sum(k for k, _ in past) / len(past) < EWMA_MIN_DAILY_EVENTS
    ):
        return undefined
    target, sd = float(np.mean(history)), float(np.std(history, ddof=1))
    if sd <= 0:
        return undefined
    chart = sequential.ewma([k / n for k, n in counts], target, sd)
    width = chart.ucl - target
    top = float(np.max((chart.path - target) / width))  # upward moves only: a rise is harm
    return _measured(
        metric,
        Estimate(top, top, top, total),
        0.0,
        target=target,
        daily_sd=sd,
        path=[round(float(v), 4) for v in chart.path],
        alarm_day_index=chart.first_alarm,
    )


def n_for(measured: Measured, cur: Mapping[str, Any]) -> int:
    """The sample size the metric's minimum applies to."""
    spec = METRICS[measured.name]
    if spec.n_of in ("labelled", "outcome_events"):
        h = cur["score"]["count"]
        negatives, positives = int(sum(h[0])), int(sum(h[1]))
        if spec.n_of == "outcome_events":
            return min(negatives, positives)
        return negatives + positives
    if spec.n_of == "acted":
        return int(cur.get("acted", 0))
    if spec.n_of == "decided":
        return int(cur.get("decided", 0))
    if measured.name in ("expected_auc", "expected_event_rate"):
        return int(measured.details.get("waiting", 0))
    return int(cur["n"])
