"""Recalibration: map a model's scores through a logistic recalibration. Pure numpy.

A mapping is ``p' = expit(intercept + slope * logit(p))``: recalibration-in-the-large moves the
intercept only (slope 1); logistic recalibration fits both (Steyerberg, *Clinical Prediction
Models*, ch. 20; Vergouwe et al. 2017).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import numpy as np
from scipy import stats

from monitoring.stats.binning import ScoreHistogram
from monitoring.stats.calibration import (
    calibration_in_the_large,
    calibration_slope,
    ece,
    observed_expected,
)

#: Scores are clipped this far from 0 and 1 before the logit, so 0 and 1 stay finite.
EPS = 1e-12


def logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(p, dtype=float), EPS, 1 - EPS)
    return np.log(p) - np.log1p(-p)


def expit(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=float)
    return np.exp(-np.logaddexp(0.0, -x))


def apply_mapping(score: float, intercept: float, slope: float) -> float:
    """One score through the mapping (the gate's per-request path: plain floats, no arrays)."""
    p = min(max(score, EPS), 1 - EPS)
    z = intercept + slope * (math.log(p) - math.log1p(-p))
    if z >= 0:
        return 1.0 / (1.0 + math.exp(-z))
    e = math.exp(z)
    return e / (1.0 + e)


# --- The update ladder: fits, the closed test, mappings -------------------------------------
#
# Vergouwe Y, Nieboer D, Oostenbrink R, et al. A closed testing procedure to select an
# appropriate method for updating prediction models. Stat Med 2017;36:4529-39. Davis SE et al.
# Detection of calibration drift in clinical prediction models. JAMIA 2019.

ALPHA = 0.05
#: A labelled window needs at least this many cases in its rarer outcome class.
MIN_MINORITY = 10
#: A feature column is dropped when, after projection on the columns kept before it, less
#: than this share of its (standardised) norm remains: it adds no information the fit can use.
DEPENDENCE_TOL = 1e-3
#: Newton–Raphson stops when no coefficient moves by more than this.
STEP_TOL = 1e-9
MAX_ITER = 100
#: A coefficient beyond this (on standardised inputs) means the MLE runs off to infinity:
#: the outcomes are (quasi-)separated and the fit is not reported as converged.
SEPARATION_BOUND = 25.0


class Level(StrEnum):
    """The ladder's rungs (same values as ``governance.models.Recommendation.Level``)."""

    NO_CHANGE = "no_change"
    INTERCEPT = "intercept"
    LOGISTIC = "logistic"
    REFIT = "refit"
    INSUFFICIENT = "insufficient"


@dataclass(frozen=True)
class LogisticFit:
    """A maximum-likelihood logistic fit. ``converged`` False means the estimate is not to be
    used (``problem`` says why: separation, singular design, no convergence)."""

    coef: tuple[float, ...]
    loglik: float
    converged: bool
    iterations: int
    problem: str = ""

    def as_dict(self, names: Sequence[str] = ()) -> dict[str, Any]:
        out: dict[str, Any] = {
            "loglik": _finite(self.loglik),
            "converged": self.converged,
            "iterations": self.iterations,
            "problem": self.problem,
            "parameters": len(self.coef),
        }
        if names:
            out["coef"] = {n: _finite(c) for n, c in zip(names, self.coef, strict=True)}
        else:
            out["coef"] = [_finite(c) for c in self.coef]
        return out


def _finite(x: float) -> float | None:
    return float(x) if math.isfinite(x) else None


def loglik(eta: np.ndarray, y: np.ndarray) -> float:
    """Bernoulli log-likelihood of outcomes ``y`` at linear predictor ``eta``."""
    eta = np.asarray(eta, dtype=float)
    return float((y * eta - np.logaddexp(0.0, eta)).sum())


def fit_logistic(x: np.ndarray, y: np.ndarray, offset: np.ndarray | None = None) -> LogisticFit:
    """Logistic regression by Newton–Raphson with step halving, never raising.

    ``x`` is the design (include a column of ones for an intercept); ``offset`` enters the
    linear predictor with coefficient 1. The log-likelihood never decreases between
    iterations; convergence is a step below ``STEP_TOL``. Separation shows as coefficients
    running past ``SEPARATION_BOUND`` or fitted probabilities hitting 0 or 1.
    """
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    off = np.zeros(y.shape) if offset is None else np.asarray(offset, dtype=float)
    beta = np.zeros(x.shape[1])
    ll = loglik(x @ beta + off, y)
    for it in range(1, MAX_ITER + 1):
        mu = expit(x @ beta + off)
        grad = x.T @ (y - mu)
        info = (x * (mu * (1 - mu))[:, None]).T @ x
        try:
            step = np.linalg.solve(info, grad)
        except np.linalg.LinAlgError:
            return LogisticFit(tuple(beta), ll, False, it, "singular information matrix")
        if not np.all(np.isfinite(step)):
            return LogisticFit(tuple(beta), ll, False, it, "singular information matrix")
        t = 1.0
        while True:
            cand = beta + t * step
            ll_new = loglik(x @ cand + off, y)
            if ll_new >= ll - 1e-10 * max(1.0, abs(ll)) or t < 1e-10:
                break
            t /= 2
        beta, ll = cand, ll_new
        if np.max(np.abs(beta), initial=0.0) > SEPARATION_BOUND:
            return LogisticFit(
                tuple(beta), ll, False, it, "the outcomes are separated: no finite estimate"
            )
        if np.max(np.abs(t * step), initial=0.0) < STEP_TOL:
            return LogisticFit(tuple(beta), ll, True, it)
    return LogisticFit(tuple(beta), ll, False, MAX_ITER, f"no convergence in {MAX_ITER} steps")


# --- the refit design ----------------------------------------------------------------------


@dataclass(frozen=True)
class Design:
    """The feature columns of a refit: ``matrix`` (n × p) and one name per column.
    ``dropped`` names columns left out (constant, or linearly dependent on earlier ones)."""

    matrix: np.ndarray
    names: tuple[str, ...]
    dropped: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()


def _numeric(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return math.nan
    return float(value) if math.isfinite(value) else math.nan


def _standardised(v: np.ndarray) -> np.ndarray:
    sd = float(v.std())
    return (v - v.mean()) / sd if sd > 0 else np.zeros_like(v)


def _feature_columns(spec: Mapping[str, Any], rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """One feature's columns. Numeric: standardised, missing set to the mean (0) plus a
    missing indicator. Boolean: 0/1 plus a missing indicator. Categorical: one-hot for every
    listed category but the first (the reference), an ``other`` column for values outside the
    list and a missing indicator. Indicator columns that never vary are dropped later."""
    name, dtype = str(spec["name"]), str(spec.get("dtype", "numeric"))
    raw = [r.get(name) for r in rows]
    missing = np.array([v is None for v in raw], dtype=float)
    cols: dict[str, np.ndarray] = {}
    if dtype == "categorical":
        cats = [str(c) for c in spec.get("categories") or []]
        for c in cats[1:]:
            cols[f"{name}={c}"] = np.array([v is not None and str(v) == c for v in raw], float)
        known = set(cats)
        cols[f"{name}=other"] = np.array(
            [v is not None and str(v) not in known for v in raw], float
        )
    elif dtype == "boolean":
        cols[name] = np.array([1.0 if v is True or v in (1, "true", "True") else 0.0 for v in raw])
    else:
        v = np.array([_numeric(x) for x in raw])
        missing = np.isnan(v).astype(float)
        seen = v[~np.isnan(v)]
        fill = float(seen.mean()) if seen.size else 0.0
        cols[name] = _standardised(np.where(np.isnan(v), fill, v))
    cols[f"{name}:missing"] = missing
    return cols


def feature_design(
    specs: Sequence[Mapping[str, Any]],
    rows: Sequence[Mapping[str, Any]],
    base: np.ndarray | None = None,
) -> Design:
    """The refit's feature columns from the version's feature specs (dicts with ``name``,
    ``dtype``, ``categories``) and each case's feature dict.

    Columns are kept greedily in order, after ``base`` (the columns every model already has:
    intercept and linear predictor): a column is dropped when it is (numerically) a linear
    combination of those kept before it — a constant, an empty indicator, the reference
    category's complement, or the original linear predictor itself when the model is linear
    in its inputs. So the refit's parameter count is the rank of its design. An indicator set
    (or unset) in fewer than ``MIN_INDICATOR_CASES`` cases is dropped too: it cannot be
    estimated and would separate the outcomes.
    """
    n = len(rows)
    kept = np.ones((n, 1)) if base is None else np.asarray(base, dtype=float).reshape(n, -1)
    basis, _ = np.linalg.qr(_scaled(kept))
    names: list[str] = []
    columns: list[np.ndarray] = []
    dropped: list[str] = []
    for spec in specs:
        for col_name, col in _feature_columns(spec, rows).items():
            if _too_rare(col):
                dropped.append(col_name)
                continue
            z = col - col.mean()
            norm = float(np.linalg.norm(z))
            resid = z - basis @ (basis.T @ z) if norm > 0 else z
            if norm == 0 or float(np.linalg.norm(resid)) < DEPENDENCE_TOL * norm:
                if not col_name.endswith((":missing", "=other")) or norm > 0:
                    dropped.append(col_name)
                continue
            names.append(col_name)
            columns.append(col)
            basis = np.column_stack([basis, resid / float(np.linalg.norm(resid))])
    matrix = np.column_stack(columns) if columns else np.empty((n, 0))
    return Design(matrix, tuple(names), tuple(dropped))


#: An indicator column (a category, a missing-value flag) seen in fewer cases than this, or
#: missing from fewer, is dropped: a handful of cases cannot estimate a coefficient, and a flag
#: whose few cases share one outcome separates the data (no finite maximum likelihood).
MIN_INDICATOR_CASES = 10


def _too_rare(col: np.ndarray) -> bool:
    if col.size == 0 or not np.isin(col, (0.0, 1.0)).all():
        return False
    ones = int(col.sum())
    return 0 < min(ones, col.size - ones) < MIN_INDICATOR_CASES


def _without_separating(design: Design, y: np.ndarray) -> Design:
    """Drop an indicator column whose flagged cases (or unflagged ones) all share one outcome:
    it separates the data, so M3 has no finite maximum likelihood and the test cannot run.
    The dropped columns are reported with the others."""
    keep, dropped = [], list(design.dropped)
    for j, name in enumerate(design.names):
        col = design.matrix[:, j]
        if np.isin(col, (0.0, 1.0)).all():
            flagged, rest = y[col == 1.0], y[col == 0.0]
            if any(part.size and np.ptp(part) == 0 for part in (flagged, rest)):
                dropped.append(f"{name} (separates the outcomes)")
                continue
        keep.append(j)
    if len(keep) == len(design.names):
        return design
    names = tuple(design.names[j] for j in keep)
    return Design(design.matrix[:, keep], names, tuple(dropped), design.notes)


def _scaled(m: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(m, axis=0)
    return m / np.where(norms > 0, norms, 1.0)


# --- the closed test -----------------------------------------------------------------------


@dataclass(frozen=True)
class Test:
    """One likelihood-ratio step of the closed test: the refit against ``against``."""

    against: str
    statistic: float
    df: int
    p_value: float
    significant: bool

    def as_dict(self) -> dict[str, Any]:
        return {
            "against": self.against,
            "lr_statistic": _finite(self.statistic),
            "df": self.df,
            "p_value": _finite(self.p_value),
            "significant": self.significant,
        }


@dataclass(frozen=True)
class Ladder:
    """The closed test's answer. ``fits`` holds M0–M3 (M0: no parameters; the others may
    be missing when the test stopped early for too few cases). ``reason`` explains an
    ``insufficient`` level."""

    level: Level
    n: int
    events: int
    alpha: float
    fits: Mapping[str, LogisticFit] = field(default_factory=dict)
    feature_names: tuple[str, ...] = ()
    dropped: tuple[str, ...] = ()
    tests: tuple[Test, ...] = ()
    reason: str = ""

    @property
    def mapping(self) -> tuple[float, float] | None:
        """(intercept, slope) on the window's linear predictor for the two recalibration
        levels; None otherwise."""
        if self.level == Level.INTERCEPT:
            return (self.fits["M1"].coef[0], 1.0)
        if self.level == Level.LOGISTIC:
            a, b = self.fits["M2"].coef
            return (a, b)
        return None

    def as_dict(self) -> dict[str, Any]:
        names = {
            "M0": (),
            "M1": ("intercept",),
            "M2": ("intercept", "slope"),
            "M3": ("intercept", "slope", *self.feature_names),
        }
        return {
            "level": str(self.level),
            "n": self.n,
            "events": self.events,
            "alpha": self.alpha,
            "reason": self.reason,
            "fits": {k: f.as_dict(names[k]) for k, f in self.fits.items()},
            "feature_columns": list(self.feature_names),
            "dropped_columns": list(self.dropped),
            "tests": [t.as_dict() for t in self.tests],
        }


def _insufficient(n: int, events: int, alpha: float, reason: str, **kw: Any) -> Ladder:
    return Ladder(Level.INSUFFICIENT, n, events, alpha, reason=reason, **kw)


def closed_test(
    score: np.ndarray,
    y: np.ndarray,
    specs: Sequence[Mapping[str, Any]] = (),
    rows: Sequence[Mapping[str, Any]] | None = None,
    *,
    min_cases: int = 0,
    alpha: float = ALPHA,
) -> Ladder:
    """Choose the update by Vergouwe's closed testing procedure on one labelled window.

    lp = logit(score). M0: the scores as they are (no parameter). M1: a + lp. M2: a + b·lp.
    M3 (revision): a + b·lp + Σ γ_j x_j over the feature columns of ``feature_design``.
    Every model is nested in M3, so each step is a likelihood-ratio test of M3 against a
    smaller model, at level ``alpha`` with no further correction (closed testing keeps the
    family-wise error at ``alpha``):
    step 1 M3 vs M0, not significant → no change; step 2 M3 vs M1 → intercept; step 3
    M3 vs M2 → logistic; else refit.

    Degrees of freedom are parameter counts: M3 has 2 + p' where p' is the number of feature
    columns kept (the rank of its design beyond intercept and lp). When the original model is
    linear in its inputs, lp is in their span and one column drops, so p' = p − 1 and the df
    are p + 1, p, p − 1 — exactly Vergouwe's "re-estimate all p coefficients and the intercept";
    otherwise (a non-linear model) they are p + 2, p + 1, p.
    """
    y = np.asarray(y, dtype=float)
    p = np.asarray(score, dtype=float)
    n, events = int(y.size), int((y > 0.5).sum())
    minority = min(events, n - events)
    if n < max(min_cases, 1):
        return _insufficient(
            n, events, alpha, f"{n} labelled cases; the policy needs at least {min_cases}."
        )
    if minority < MIN_MINORITY:
        return _insufficient(
            n, events, alpha,
            f"only {minority} cases in the rarer outcome; at least {MIN_MINORITY} are needed.",
        )  # fmt: skip
    lp = logit(p)
    ones = np.ones((n, 1))
    design = _without_separating(
        feature_design(specs, rows or [{} for _ in range(n)], np.column_stack([ones, lp])), y
    )
    fits = {
        "M0": LogisticFit((), loglik(lp, y), True, 0),
        "M1": fit_logistic(ones, y, offset=lp),
        "M2": fit_logistic(np.column_stack([ones, lp]), y),
        "M3": fit_logistic(np.column_stack([ones, lp, design.matrix]), y),
    }
    extra = {"fits": fits, "feature_names": design.names, "dropped": design.dropped}
    failed = [k for k, f in fits.items() if not f.converged]
    if failed:
        why = "; ".join(f"{k}: {fits[k].problem}" for k in failed)
        return _insufficient(n, events, alpha, f"a fit did not converge ({why}).", **extra)
    k = design.matrix.shape[1]
    steps = [("M0", k + 2, Level.NO_CHANGE), ("M1", k + 1, Level.INTERCEPT)]
    steps.append(("M2", k, Level.LOGISTIC))
    tests: list[Test] = []
    for name, df, level in steps:
        test = lr_test(fits["M3"].loglik, fits[name].loglik, df, name, alpha)
        tests.append(test)
        if not test.significant:
            return Ladder(level, n, events, alpha, tests=tuple(tests), **extra)
    return Ladder(Level.REFIT, n, events, alpha, tests=tuple(tests), **extra)


def lr_test(ll_full: float, ll_reduced: float, df: int, against: str, alpha: float) -> Test:
    """Likelihood-ratio test; df 0 (no feature columns left at step 3) is never significant."""
    stat = max(2.0 * (ll_full - ll_reduced), 0.0)
    if df <= 0:
        return Test(against, stat, df, 1.0, False)
    pv = float(stats.chi2.sf(stat, df))
    return Test(against, stat, df, pv, pv < alpha)


# --- mappings -----------------------------------------------------------------------------


def compose(outer: tuple[float, float], inner: tuple[float, float] | None) -> tuple[float, float]:
    """The one mapping equal to ``outer`` after ``inner`` (both (intercept, slope) on the
    logit scale): a2 + b2·(a1 + b1·x) = (a2 + b2·a1) + (b2·b1)·x."""
    if inner is None:
        return outer
    a2, b2 = outer
    a1, b1 = inner
    return (a2 + b2 * a1, b2 * b1)


def mapping_dict(intercept: float, slope: float) -> dict[str, Any]:
    """The release / deployment ``score_mapping``: method "intercept" when the slope is 1."""
    if abs(slope - 1.0) < 1e-12:
        return {"method": "intercept", "intercept": float(intercept), "slope": 1.0}
    return {"method": "logistic", "intercept": float(intercept), "slope": float(slope)}


def map_scores(score: np.ndarray, mapping: tuple[float, float] | None) -> np.ndarray:
    """Vectorised ``apply_mapping``; None is the identity."""
    p = np.asarray(score, dtype=float)
    if mapping is None:
        return p
    return expit(mapping[0] + mapping[1] * logit(p))


def action_rates(score: np.ndarray, thresholds: Mapping[str, float]) -> dict[str, float | None]:
    """Share of cases at or above each decision threshold (None for no cases)."""
    p = np.asarray(score, dtype=float)
    if p.size == 0:
        return {name: None for name in thresholds}
    return {name: float((p >= float(t)).mean()) for name, t in thresholds.items()}


# --- before / after evidence ---------------------------------------------------------------


def calibration_evidence(score: np.ndarray, y: np.ndarray) -> dict[str, Any]:
    """Calibration intercept and slope, O/E and ECE (each with its interval) of scores
    against outcomes, as the monitoring metrics compute them."""
    h = ScoreHistogram.from_arrays(np.asarray(score, dtype=float), np.asarray(y, dtype=float))
    return {
        "calibration_intercept": calibration_in_the_large(h).as_dict(),
        "calibration_slope": calibration_slope(h).as_dict(),
        "observed_expected": observed_expected(h).as_dict(),
        "ece": ece(h).as_dict(),
        "mean_score": _finite(float(np.mean(score))) if np.size(score) else None,
        "observed_rate": _finite(float(np.mean(y))) if np.size(y) else None,
    }


def fit_mapping(score: np.ndarray, y: np.ndarray, level: Level) -> LogisticFit:
    """The recalibration of ``level`` (intercept or logistic) fitted on one sample."""
    lp = logit(score)
    ones = np.ones((lp.size, 1))
    if level == Level.INTERCEPT:
        return fit_logistic(ones, y, offset=lp)
    return fit_logistic(np.column_stack([ones, lp]), y)


def mapping_of(fit: LogisticFit, level: Level) -> tuple[float, float]:
    if level == Level.INTERCEPT:
        return (fit.coef[0], 1.0)
    return (fit.coef[0], fit.coef[1])


def before_after(
    score: np.ndarray,
    y: np.ndarray,
    mapping: tuple[float, float],
    thresholds: Mapping[str, float],
) -> dict[str, Any]:
    """Calibration and action rates before and after ``mapping`` on the same cases."""
    after = map_scores(score, mapping)
    return {
        "n": int(np.size(y)),
        "before": calibration_evidence(score, y),
        "after": calibration_evidence(after, y),
        "action_rate": {
            "before": action_rates(score, thresholds),
            "after": action_rates(after, thresholds),
        },
    }


def split_sample(
    score: np.ndarray, y: np.ndarray, level: Level, thresholds: Mapping[str, float]
) -> dict[str, Any]:
    """Fit the mapping on the first half (cases in time order) and judge it on the second: an
    out-of-sample check of the in-sample before/after."""
    half = int(np.size(y)) // 2
    fit = fit_mapping(score[:half], y[:half], level)
    if not fit.converged:
        return {"fitted_on": half, "problem": fit.problem}
    mapping = mapping_of(fit, level)
    out = before_after(score[half:], y[half:], mapping, thresholds)
    out.update(fitted_on=half, mapping={"intercept": mapping[0], "slope": mapping[1]})
    return out


def flag_performance(
    score: np.ndarray, y: np.ndarray, thresholds: Mapping[str, float]
) -> dict[str, dict[str, float | int | None]]:
    """Per threshold on labelled cases: cases flagged, sensitivity (outcomes flagged / all
    outcomes) and PPV (outcomes among flagged); None where undefined."""
    p = np.asarray(score, dtype=float)
    yy = np.asarray(y, dtype=float) > 0.5
    out: dict[str, dict[str, float | int | None]] = {}
    for name, t in thresholds.items():
        flagged = p >= float(t)
        hits = int((flagged & yy).sum())
        out[name] = {
            "flagged": int(flagged.sum()),
            "sensitivity": hits / int(yy.sum()) if yy.any() else None,
            "ppv": hits / int(flagged.sum()) if flagged.any() else None,
        }
    return out
