"""Profiles as data (pure): what counts as a number, a category, a slice; profiles add."""

from __future__ import annotations

import math

import numpy as np

from monitoring import profile_data as pd_
from monitoring.profile_data import Batch, FeatureBins


def test_text_and_booleans_are_never_numbers_whatever_the_other_rows_hold():
    assert np.isnan(pd_.numeric_array(["1.5", 2.0, None])[[0, 2]]).all()
    assert pd_.numeric_array(["1.5", 2.0, None])[1] == 2.0
    assert math.isnan(pd_.numeric_array([True, 2])[0])
    assert pd_.numeric_array([1, 2.5, None]).tolist()[:2] == [1.0, 2.5]


def _batch(features, cohorts=None, sites=None, wrong_type=None):
    n = len(features)
    return Batch(
        features=features,
        scores=np.full(n, 0.2),
        labels=np.full(n, np.nan),
        cohorts=cohorts or [{}] * n,
        sites=sites,
        wrong_type=wrong_type,
    )


def test_codes_count_missing_wrong_type_unknown_and_out_of_range():
    bins = [
        FeatureBins("hr", "numeric", edges=(60.0, 100.0), min_value=20, max_value=250),
        FeatureBins("unit", "categorical", categories=("ward", "icu")),
        FeatureBins("dialysis", "boolean", categories=("false", "true")),
    ]
    rows = [
        {"hr": 50, "unit": "ward", "dialysis": True},
        {"hr": 300, "unit": "theatre", "dialysis": 1},
        {"hr": "fast", "unit": 3, "dialysis": False},
        {"unit": None},
        {"hr": True, "unit": "icu", "dialysis": None},
    ]
    # The gate flagged rows 2, 3 and 5 as wrong-typed: only those are re-checked.
    profile = pd_.profile_of(
        _batch(rows, wrong_type=np.array([False, True, True, False, True])),
        bins,
        {"all": np.arange(5)},
    )["all"]
    hr, unit, dialysis = (profile["features"][n] for n in ("hr", "unit", "dialysis"))
    assert (hr["missing"], hr["wrong_type"], hr["out_of_range"]) == (1, 2, 1)
    assert hr["counts"] == [1, 0, 1] and hr["sums"] == [50.0, 0.0, 300.0]
    assert (unit["missing"], unit["unknown"], unit["wrong_type"]) == (1, 1, 1)
    assert unit["counts"] == [1, 1]
    assert (dialysis["missing"], dialysis["wrong_type"], dialysis["counts"]) == (2, 1, [1, 1])


def test_slices_use_declared_cohort_values_and_profiles_add():
    bins = [FeatureBins("hr", "numeric", edges=(80.0,))]
    rows = [{"hr": 70}, {"hr": 90}, {"hr": 95}, {"hr": 60}]
    cohorts = [{"sex": "F"}, {"sex": "M"}, {"sex": "X"}, {}]
    batch = _batch(rows, cohorts=cohorts, sites=["N", "N", "S", "S"])
    slices = pd_.slices_of(batch, {"sex": ["F", "M"]})
    assert {k: v.tolist() for k, v in slices.items()} == {
        "all": [0, 1, 2, 3], "site=N": [0, 1], "site=S": [2, 3], "sex=F": [0], "sex=M": [1],
    }  # fmt: skip
    parts = pd_.profile_of(batch, bins, slices)
    merged = pd_.merge([parts["site=N"], parts["site=S"]])
    assert merged["n"] == parts["all"]["n"] == 4
    assert merged["features"]["hr"]["counts"] == parts["all"]["features"]["hr"]["counts"]
    assert merged["score"] == parts["all"]["score"]
