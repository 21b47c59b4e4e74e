"""Building blocks of the synthetic hospital: columnar cases and a fitted logistic model.

Pure numpy, no Django. A population (``synthetic_sepsis``, ``synthetic_clinics``) draws
``Cases``: every input as its feed would send it (``nan`` / ``None`` where it did not arrive),
the cohort columns, and the TRUE log-odds of the outcome, which the deployed model never sees.
The deployed model is a logistic regression fitted here by Newton's method (IRLS) on a training
draw of the same population, so its scores are what a real model of those inputs would say.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

#: The one seed everything derives from: same seed, same hospital.
SEED = 20_261_127

NUMERIC, BOOLEAN, CATEGORICAL = "numeric", "boolean", "categorical"


@dataclass(frozen=True)
class Column:
    """One model input. ``decimals`` rounds a numeric value as the feed sends it (0: an
    integer); ``log`` makes the model use log(value) (labs and counts are skewed)."""

    name: str
    kind: str = NUMERIC
    decimals: int = 0
    log: bool = False
    categories: tuple[str, ...] = ()


@dataclass
class Cases:
    """Columnar cases. Numeric and boolean features are float arrays (``nan``: missing),
    categorical ones object arrays (``None``: missing); ``logit`` is the true log-odds."""

    features: dict[str, np.ndarray]
    cohort: dict[str, np.ndarray]
    logit: np.ndarray

    def __len__(self) -> int:
        return len(self.logit)


class Population(Protocol):
    slug: str
    versions: tuple[str, ...]
    columns: tuple[Column, ...]
    cohorts: tuple[str, ...]

    def draw(self, rng: np.random.Generator, n: int, site: str) -> Cases: ...


def rng_for(*parts: object) -> np.random.Generator:
    """A generator seeded by ``SEED`` and ``parts``: stable across runs and Python versions."""
    keys = [zlib.crc32(str(part).encode()) for part in parts]
    return np.random.default_rng([SEED, *keys])


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(x, -35.0, 35.0)))


def choice(rng: np.random.Generator, n: int, weights: Mapping[str, float]) -> np.ndarray:
    names = list(weights)
    p = np.array([weights[k] for k in names], dtype=float)
    return np.array(names, dtype=object)[rng.choice(len(names), size=n, p=p / p.sum())]


def rounded(values: np.ndarray, low: float, high: float, decimals: int) -> np.ndarray:
    """Clip to the physiological range the spec allows, then round as the feed does."""
    return np.round(np.clip(values, low, high), decimals)


def drop(rng: np.random.Generator, values: np.ndarray, rate: float) -> np.ndarray:
    """``values`` with a random share ``rate`` missing (a feed that did not deliver)."""
    out = values.astype(float).copy()
    out[rng.random(len(out)) < rate] = np.nan
    return out


def age_band(age: np.ndarray, bands: Sequence[str]) -> np.ndarray:
    """The cohort band of each age: bands written ``"18-44"`` or ``"80+"``."""
    out = np.empty(len(age), dtype=object)
    for band in bands:
        low, _, high = band.rstrip("+").partition("-")
        top = float(high) if high else np.inf
        out[(age >= float(low)) & (age <= top)] = band
    return out


# --- The deployed model ---------------------------------------------------------------------


@dataclass(frozen=True)
class Term:
    """One column of the design matrix: ``feature`` is the input it explains."""

    feature: str
    kind: str  # value | missing | level
    level: str = ""
    centre: float = 0.0
    scale: float = 1.0


def _value(column: Column, raw: np.ndarray) -> np.ndarray:
    values = raw.astype(float)
    return np.log(np.maximum(values, 1e-3)) if column.log else values


def _terms(columns: Sequence[Column], cases: Cases) -> tuple[Term, ...]:
    """The design learned from training ``cases``: standardised values, a missing indicator
    for inputs that may be missing, one indicator per category but the first."""
    terms: list[Term] = []
    for column in columns:
        raw = cases.features[column.name]
        if column.kind == CATEGORICAL:
            terms += [Term(column.name, "level", level) for level in column.categories[1:]]
            continue
        values = _value(column, raw)
        present = values[~np.isnan(values)]
        scale = float(present.std()) or 1.0
        terms.append(Term(column.name, "value", centre=float(present.mean()), scale=scale))
        if np.isnan(values).any():
            terms.append(Term(column.name, "missing"))
    return tuple(terms)


def _matrix(columns: Sequence[Column], terms: Sequence[Term], cases: Cases) -> np.ndarray:
    by_name = {c.name: c for c in columns}
    X = np.zeros((len(cases), len(terms)))
    for j, term in enumerate(terms):
        column = by_name[term.feature]
        raw = cases.features.get(term.feature)
        if raw is None:  # the input never arrived at all
            raw = np.full(len(cases), None if column.kind == CATEGORICAL else np.nan)
        if term.kind == "level":
            X[:, j] = raw == term.level
            continue
        values = _value(column, raw)
        if term.kind == "missing":
            X[:, j] = np.isnan(values)
        else:  # mean imputation: a missing value contributes nothing
            X[:, j] = np.nan_to_num((values - term.centre) / term.scale, nan=0.0)
    return X


def fit_logistic(
    X: np.ndarray, y: np.ndarray, *, ridge: float = 1e-3, iterations: int = 50
) -> np.ndarray:
    """Maximum-likelihood logistic regression by Newton's method (IRLS), with a small ridge
    penalty (not on the intercept) so a rare indicator cannot diverge. Returns
    ``[intercept, *coefficients]``."""
    Xb = np.column_stack([np.ones(len(X)), X])
    penalty = np.full(Xb.shape[1], ridge * len(X))
    penalty[0] = 0.0
    beta = np.zeros(Xb.shape[1])
    for _ in range(iterations):
        p = sigmoid(Xb @ beta)
        gradient = Xb.T @ (y - p) - penalty * beta
        hessian = (Xb * (p * (1 - p))[:, None]).T @ Xb + np.diag(penalty)
        step = np.linalg.solve(hessian, gradient)
        beta += step
        if np.abs(step).max() < 1e-9:
            break
    return beta


@dataclass(frozen=True)
class LogisticModel:
    """The deployed model: a fitted logistic regression on the version's inputs."""

    columns: tuple[Column, ...]
    terms: tuple[Term, ...]
    intercept: float
    coef: np.ndarray

    def linear(self, cases: Cases) -> np.ndarray:
        return self.intercept + _matrix(self.columns, self.terms, cases) @ self.coef

    def predict(self, cases: Cases) -> np.ndarray:
        return sigmoid(self.linear(cases))

    def contributions(self, cases: Cases) -> tuple[list[str], np.ndarray]:
        """Per input, its share of the log-odds against an average patient (as an explainer
        reports it): the names and an (n × inputs) array."""
        names = [c.name for c in self.columns]
        parts = _matrix(self.columns, self.terms, cases) * self.coef
        out = np.zeros((len(cases), len(names)))
        for j, term in enumerate(self.terms):
            out[:, names.index(term.feature)] += parts[:, j]
        return names, out


def fit_model(columns: Sequence[Column], cases: Cases, labels: np.ndarray) -> LogisticModel:
    terms = _terms(columns, cases)
    beta = fit_logistic(_matrix(columns, terms, cases), labels.astype(float))
    return LogisticModel(tuple(columns), terms, float(beta[0]), beta[1:])


def payload(columns: Sequence[Column], cases: Cases, i: int) -> dict[str, Any]:
    """Case ``i``'s inputs as its service sends them: Python types, missing ones left out."""
    out: dict[str, Any] = {}
    for column in columns:
        value = cases.features[column.name][i]
        if column.kind == CATEGORICAL:
            if value is not None:
                out[column.name] = str(value)
        elif not np.isnan(value):
            if column.kind == BOOLEAN:
                out[column.name] = bool(value)
            elif column.decimals == 0:
                out[column.name] = int(value)
            else:
                out[column.name] = round(float(value), column.decimals)
    return out
