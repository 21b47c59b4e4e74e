"""The metric catalogue and the default bands of a monitoring policy. Pure Python.

Every metric is banded on its **deviation**: how far it has moved in the harmful direction from
its neutral point (the reference's baseline, or 0 for a drift distance, or 1 for a ratio).
A deviation at or beyond ``yellow`` / ``orange`` / ``red`` gives that band; below ``yellow`` it
is green; fewer than ``min_n`` observations make it ``insufficient`` rather than a guess.

Sources of the defaults (``source``): where the literature gives a threshold it is cited; the
rest are this health system's **local policy**, stated as such, to be tuned by the model's
owners in its ``MonitorPolicy``.

Tightening: for high and critical risk tiers every threshold is multiplied by
``TIER_FACTOR`` (0.8), and again by ``LAUNCH_FACTOR`` (0.8) during the first ``launch_days``
(default 90) after the deployment started at the site: early and high-stakes drift is flagged
sooner.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

TIER_FACTOR = 0.8
LAUNCH_FACTOR = 0.8
TIGHT_TIERS = frozenset({"high", "critical"})
BAND_NAMES = ("yellow", "orange", "red")

LOCAL = "Local policy (no published standard); tune per model."


@dataclass(frozen=True)
class MetricSpec:
    name: str
    layer: str
    label: str
    #: how the deviation is measured from ``neutral``: "up" (value − neutral), "down"
    #: (neutral − value) or "both" (|value − neutral|)
    direction: str
    #: "baseline" (the reference's own value), or a fixed number
    neutral: str | float
    yellow: float
    orange: float
    red: float
    min_n: int
    #: what n counts: "events", "labelled", "outcome_events" (the rarer outcome class among
    #: labelled cases: "100 outcome events" for AUC and calibration), "acted", "decided"
    n_of: str
    source: str
    unit: str = ""
    per_feature: bool = False

    def deviation(self, value: float, neutral: float) -> float:
        if self.direction == "up":
            return value - neutral
        if self.direction == "down":
            return neutral - value
        return abs(value - neutral)

    def deviation_interval(self, low: float, high: float, neutral: float) -> tuple[float, float]:
        """The smallest and largest deviation an interval [low, high] allows."""
        ends = sorted((self.deviation(low, neutral), self.deviation(high, neutral)))
        if self.direction == "both" and low <= neutral <= high:
            return 0.0, ends[1]
        return ends[0], ends[1]


def _spec(*args: Any, **kwargs: Any) -> MetricSpec:
    return MetricSpec(*args, **kwargs)


# fmt: off
METRICS: dict[str, MetricSpec] = {
    m.name: m
    for m in (
        # --- data quality (per feature, vs the reference's rate) -----------------------------
        _spec("missing_rate", "data_quality", "Missing rate", "up", "baseline",
              0.02, 0.05, 0.10, 100, "events", LOCAL, "share", per_feature=True),
        _spec("out_of_range_rate", "data_quality", "Out-of-range rate", "up", "baseline",
              0.01, 0.03, 0.05, 100, "events", LOCAL, "share", per_feature=True),
        _spec("unknown_category_rate", "data_quality", "Unknown-category rate", "up", "baseline",
              0.01, 0.03, 0.05, 100, "events", LOCAL, "share", per_feature=True),
        _spec("unexpected_feature_rate", "data_quality", "Unexpected-input rate", "up", 0.0,
              0.01, 0.05, 0.10, 100, "events",
              "Local policy: any input outside the spec is a schema change to investigate.",
              "share"),
        _spec("staleness", "data_quality", "Feed silence (× expected interval)", "up", 0.0,
              12.0, 24.0, 48.0, 0, "events",  # no minimum: silence is the finding
              "Local policy: silence in multiples of the interval a value is expected at (the "
              "feed's cadence or the site's mean gap between predictions, the longer).",
              "× interval", per_feature=True),
        # --- prediction quality: distribution drift (per feature, and the score) ------------
        _spec("psi", "prediction_quality", "Population stability index", "up", 0.0,
              0.10, 0.20, 0.25, 200, "events",
              "Siddiqi (2006), Credit Risk Scorecards; Yurdakul (2018): < 0.1 stable, "
              "0.1–0.25 moderate shift, > 0.25 major shift.", per_feature=True),
        _spec("js_distance", "prediction_quality", "Jensen–Shannon distance", "up", 0.0,
              0.10, 0.15, 0.20, 200, "events", LOCAL + " (Evidently's default flag is 0.1).",
              per_feature=True),
        _spec("ks", "prediction_quality", "Kolmogorov–Smirnov D", "up", 0.0,
              0.10, 0.15, 0.20, 200, "events", LOCAL, per_feature=True),
        _spec("wasserstein", "prediction_quality", "Wasserstein distance / reference SD", "up",
              0.0, 0.10, 0.20, 0.30, 200, "events",
              LOCAL + " (Evidently's default flag for normalised Wasserstein is 0.1).",
              "SD", per_feature=True),
        _spec("chi_square", "prediction_quality", "Cramér's V (two-sample χ²)", "up", 0.0,
              0.10, 0.20, 0.30, 200, "events",
              "Cohen (1988) effect sizes for Cramér's V, tightened as local policy.",
              per_feature=True),
        # --- prediction quality: discrimination and calibration (labelled events) ------------
        _spec("auc", "prediction_quality", "AUC (discrimination)", "down", "baseline",
              0.03, 0.05, 0.10, 100, "outcome_events",
              "Local policy; a fall of 0.05 in AUC is commonly treated as clinically "
              "meaningful (e.g. Davis et al. 2017, JAMIA, calibration drift)."),
        _spec("calibration_oe", "prediction_quality", "Observed / expected events", "both", 1.0,
              0.10, 0.20, 0.30, 100, "outcome_events",
              "Van Calster et al. (2019) BMC Medicine, 'Calibration: the Achilles heel'; "
              "O/E outside 0.8–1.2 as local policy for orange."),
        _spec("calibration_intercept", "prediction_quality", "Calibration-in-the-large",
              "both", 0.0, 0.10, 0.20, 0.40, 100, "outcome_events",
              "Van Calster et al. (2016) J Clin Epidemiol calibration hierarchy; bands local."),
        _spec("calibration_slope", "prediction_quality", "Calibration slope", "both", 1.0,
              0.10, 0.20, 0.30, 100, "outcome_events",
              "Van Calster et al. (2016); a slope below 0.8 signals overfitting / drift "
              "(Steyerberg, Clinical Prediction Models, 2019)."),
        _spec("ece", "prediction_quality", "Expected calibration error (increase)", "up",
              "baseline", 0.02, 0.04, 0.08, 100, "outcome_events",
              LOCAL + " ECE is biased upwards in small samples: judged against the reference's."),
        _spec("brier", "prediction_quality", "Brier score (excess over calibrated)", "up",
              "baseline", 0.005, 0.01, 0.02, 100, "outcome_events",
              "Local policy. Judged against Σp(1−p)/n, the Brier score expected if the scores "
              "were calibrated (Spiegelhalter 1986), so a riskier case mix alone does not "
              "raise it."),
        _spec("expected_auc", "prediction_quality", "Expected AUC before labels (CBPE)",
              "down", "baseline", 0.03, 0.05, 0.10, 200, "events",
              "NannyML's confidence-based performance estimation; bands as for AUC."),
        _spec("expected_event_rate", "prediction_quality", "Expected event rate (from scores)",
              "both", "baseline", 0.02, 0.04, 0.06, 200, "events", LOCAL, "share"),
        # --- sequential detection (charts over the window's days) -------------------------------
        _spec("cusum_calibration_up", "prediction_quality",
              "Risk-adjusted CUSUM: more events than the scores predict (÷ alarm limit)",
              "up", 0.0, 0.8, 0.9, 1.0, 100, "outcome_events",
              "Steiner, Cook, Farewell & Treasure (2000) Biostatistics 1(4): Bernoulli CUSUM "
              "for a doubling of the odds; alarm limit h = 6 (the paper's example uses 4.5; raised "
              "because every slice runs its own chart), red at the limit.", "× h"),
        _spec("cusum_calibration_down", "prediction_quality",
              "Risk-adjusted CUSUM: fewer events than the scores predict (÷ alarm limit)",
              "up", 0.0, 0.8, 0.9, 1.0, 100, "outcome_events",
              "Steiner et al. (2000), lower chart: a halving of the odds, h = 6.", "× h"),
        _spec("ewma_deferral_rate", "workflow", "EWMA of the daily deferral rate (÷ limit)",
              "up", 0.0, 0.8, 0.9, 1.0, 100, "events",
              "Roberts (1959) EWMA, λ = 0.2, L = 3 limits (Montgomery, Introduction to "
              "Statistical Quality Control, §9.2) around the previous period's mean daily rate, "
              "σ from its day-to-day spread (≥ 14 days).", "× limit"),
        _spec("ewma_override_rate", "workflow", "EWMA of the daily override rate (÷ limit)",
              "up", 0.0, 0.8, 0.9, 1.0, 100, "acted",
              "Roberts (1959) EWMA, λ = 0.2, L = 3, around the previous period's rate.",
              "× limit"),
        # --- workflow (vs the slice's own trailing baseline) -----------------------------------
        _spec("deferral_rate", "workflow", "Deferral rate (× baseline)", "up", 1.0,
              0.25, 0.50, 1.00, 100, "events",
              "Local policy: the share deferred to humans, as a ratio to the slice's own "
              "previous period; doubling (ratio 2) is red.", "ratio"),
        _spec("override_rate", "workflow", "Override rate (× baseline)", "up", 1.0,
              0.25, 0.50, 1.00, 100, "acted",
              "Local policy: overrides of acted predictions as a ratio to the slice's own "
              "previous period; doubling is red (alert-fatigue literature, e.g. "
              "Ancker et al. 2017).", "ratio"),
        _spec("time_to_action_p90", "workflow", "Time to action, 90th percentile", "up", 0.0,
              4.0, 8.0, 24.0, 30, "decided",
              "Local policy, hours from deferral to a reviewer's decision.", "hours"),
        # --- outcome impact --------------------------------------------------------------------
        _spec("outcome_rate", "outcome", "Outcome rate vs reference", "up", "baseline",
              0.03, 0.05, 0.08, 100, "labelled", LOCAL, "share"),
        _spec("subgroup_gap", "outcome", "Outcome rate gap vs the rest (change)", "up",
              "baseline", 0.03, 0.05, 0.08, 100, "labelled",
              LOCAL + " Change in (slice − rest of the population) since the reference.",
              "share"),
    )
}
# fmt: on

LAYERS = ("data_quality", "prediction_quality", "workflow", "outcome")


def metric_spec(metric: str) -> MetricSpec:
    """The spec of ``metric`` (``psi`` or ``psi:lactate``)."""
    return METRICS[metric.partition(":")[0]]


def thresholds_for(
    spec: MetricSpec,
    *,
    overrides: Mapping[str, Mapping[str, float]] | None = None,
    tier: str = "",
    in_launch: bool = False,
) -> dict[str, float]:
    """The bands in force for ``spec``: the policy's overrides, then tightening."""
    own = dict((overrides or {}).get(spec.name, {}))
    bands = {name: float(own.get(name, getattr(spec, name))) for name in BAND_NAMES}
    factor = (TIER_FACTOR if tier in TIGHT_TIERS else 1.0) * (LAUNCH_FACTOR if in_launch else 1.0)
    return {name: value * factor for name, value in bands.items()}


def band_of(deviation: float, thresholds: Mapping[str, float]) -> str:
    for name in ("red", "orange", "yellow"):
        if deviation >= thresholds[name]:
            return name
    return "green"


def policy_errors(
    thresholds: Mapping[str, Any], min_samples: Mapping[str, Any], windows: Any
) -> dict[str, str]:
    """What is wrong with a policy's overrides, field by field (empty when valid)."""
    errors: dict[str, str] = {}
    for metric, bands in (thresholds or {}).items():
        if metric not in METRICS:
            errors["thresholds"] = f"Unknown metric {metric!r}."
            break
        if not isinstance(bands, Mapping) or set(bands) - set(BAND_NAMES):
            errors["thresholds"] = f"{metric}: give only yellow, orange and red."
            break
        merged = {n: bands.get(n, getattr(METRICS[metric], n)) for n in BAND_NAMES}
        if not all(_number(v) and v >= 0 for v in merged.values()):
            errors["thresholds"] = f"{metric}: thresholds must be numbers ≥ 0."
            break
        if not merged["yellow"] <= merged["orange"] <= merged["red"]:
            errors["thresholds"] = f"{metric}: need yellow ≤ orange ≤ red."
            break
    for metric, n in (min_samples or {}).items():
        if metric not in METRICS:
            errors["min_samples"] = f"Unknown metric {metric!r}."
            break
        if not isinstance(n, int) or isinstance(n, bool) or n < 0:
            errors["min_samples"] = (
                f"{metric}: the minimum sample must be a whole number ≥ 0 (0: no minimum)."
            )
            break
    if (
        not isinstance(windows, list)
        or not windows
        or not all(
            isinstance(w, int) and not isinstance(w, bool) and 1 <= w <= 365 for w in windows
        )
        or len(set(windows)) != len(windows)
    ):
        errors["windows"] = "List one or more distinct window lengths in days (1–365)."
    return errors


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


DEFAULT_WINDOWS = [7, 30]
