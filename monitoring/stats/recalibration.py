"""Recalibration: map a model's scores through a logistic recalibration. Pure numpy.

A mapping is ``p' = expit(intercept + slope * logit(p))``: recalibration-in-the-large moves the
intercept only (slope 1); logistic recalibration fits both (Steyerberg, *Clinical Prediction
Models*, ch. 20; Vergouwe et al. 2017).
"""

from __future__ import annotations

import math

import numpy as np

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
