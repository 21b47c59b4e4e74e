"""Wilson, Newcombe, Garwood (Poisson) intervals and the data-quality rates built on them."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from monitoring.stats.intervals import garwood, newcombe_difference, poisson_ratio, wilson
from monitoring.stats.quality import rate, rate_vs_reference

FAST = settings(max_examples=50, deadline=None)


@pytest.mark.parametrize(("k", "n"), [(0, 10), (7, 23), (10, 10), (1, 1), (500, 1000)])
def test_wilson_matches_scipy(k, n):
    ci = stats.binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
    e = wilson(k, n)
    assert e.value == k / n and e.n == n
    assert e.low == pytest.approx(ci.low, abs=1e-12)
    assert e.high == pytest.approx(ci.high, abs=1e-12)


@FAST
@given(n=st.integers(1, 5000), frac=st.floats(0, 1), level=st.sampled_from([0.8, 0.95, 0.99]))
def test_wilson_matches_scipy_everywhere(n, frac, level):
    k = int(round(frac * n))
    z = stats.norm.ppf(0.5 + level / 2)
    ci = stats.binomtest(k, n).proportion_ci(confidence_level=level, method="wilson")
    e = wilson(k, n, z=z)
    assert e.low == pytest.approx(ci.low, abs=1e-9)
    assert e.high == pytest.approx(ci.high, abs=1e-9)
    assert e.low <= e.value <= e.high


def test_wilson_hand_value():
    # 0/10: upper = z²/(n + z²) = 3.8415/13.8415
    assert wilson(0, 10).high == pytest.approx(3.841458820694124 / 13.841458820694124)


@pytest.mark.parametrize(
    ("args", "low", "high"),
    [
        # Newcombe (1998), Statistics in Medicine 17:873-890, Table II, method 10.
        ((56, 70, 48, 80), 0.0524, 0.3339),
        ((9, 10, 3, 10), 0.1705, 0.8090),
        ((6, 7, 2, 7), 0.0582, 0.8062),
        ((5, 56, 0, 29), -0.0381, 0.1926),
    ],
)
def test_newcombe_published_examples(args, low, high):
    e = newcombe_difference(*args)
    assert e.value == pytest.approx(args[0] / args[1] - args[2] / args[3])
    assert e.low == pytest.approx(low, abs=5e-5)
    assert e.high == pytest.approx(high, abs=5e-5)
    assert e.n == args[1]


@FAST
@given(
    n1=st.integers(1, 400),
    n2=st.integers(1, 400),
    f1=st.floats(0, 1),
    f2=st.floats(0, 1),
)
def test_newcombe_contains_the_difference_and_is_antisymmetric(n1, n2, f1, f2):
    k1, k2 = round(f1 * n1), round(f2 * n2)
    a = newcombe_difference(k1, n1, k2, n2)
    b = newcombe_difference(k2, n2, k1, n1)
    assert -1 <= a.low <= a.value <= a.high <= 1
    assert a.value == pytest.approx(-b.value)
    assert a.low == pytest.approx(-b.high, abs=1e-12)
    assert a.high == pytest.approx(-b.low, abs=1e-12)


def test_garwood_known_values_and_defining_identity():
    assert garwood(0) == (0.0, pytest.approx(3.6888794541139363))
    low, high = garwood(10)
    assert low == pytest.approx(4.795389, abs=1e-6)
    assert high == pytest.approx(18.390356, abs=1e-6)
    # exact limits: P(X >= 10 | low) = 0.025 and P(X <= 10 | high) = 0.025
    assert stats.poisson.sf(9, low) == pytest.approx(0.025, abs=1e-9)
    assert stats.poisson.cdf(10, high) == pytest.approx(0.025, abs=1e-9)


def test_poisson_ratio_hand_case():
    e = poisson_ratio(10, 5.0, n=200)
    assert e.value == 2.0 and e.n == 200
    assert e.low == pytest.approx(4.795389 / 5, abs=1e-6)
    assert e.high == pytest.approx(18.390356 / 5, abs=1e-6)
    # two-sided exact p: 2·P(X >= 10 | mean 5)
    assert e.p_value == pytest.approx(2 * stats.poisson.sf(9, 5.0))
    assert poisson_ratio(5, 5.0).p_value == 1.0


@FAST
@given(o=st.integers(0, 500), e=st.floats(0.01, 500))
def test_poisson_ratio_interval_brackets_value(o, e):
    est = poisson_ratio(o, e)
    assert est.low <= est.value <= est.high
    assert 0 <= est.p_value <= 1


def test_empty_inputs_give_nan():
    for e in (wilson(0, 0), newcombe_difference(0, 0, 3, 10), poisson_ratio(0, 0.0)):
        assert math.isnan(e.value) and math.isnan(e.low) and math.isnan(e.high)
    assert rate(0, 0).as_dict()["value"] is None


@pytest.mark.parametrize(
    "call",
    [
        lambda: wilson(5, 3),
        lambda: wilson(-1, 3),
        lambda: wilson(1.5, 3),
        lambda: wilson(1, 3, z=0),
        lambda: newcombe_difference(3, 2, 1, 2),
        lambda: poisson_ratio(3, -1.0),
        lambda: poisson_ratio(-3, 1.0),
    ],
)
def test_malformed_inputs_raise(call):
    with pytest.raises(ValueError):
        call()


def test_quality_rates():
    r = rate(3, 40)
    assert (r.value, r.low, r.high) == (wilson(3, 40).value, wilson(3, 40).low, wilson(3, 40).high)
    d = rate_vs_reference(12, 100, 30, 1000)
    assert d.value == pytest.approx(0.12 - 0.03)
    assert d.n == 100
    # Newcombe interval excludes 0: missingness rose
    assert d.low > 0
    same = rate_vs_reference(30, 1000, 30, 1000)
    assert same.value == 0 and same.low < 0 < same.high


@FAST
@given(n=st.integers(30, 3000), p=st.floats(0.02, 0.98), seed=st.integers(0, 2**32 - 1))
def test_wilson_covers_like_a_95_percent_interval(n, p, seed):
    # Coverage over 400 simulated samples; Wilson's is close to nominal (allow 0.89-0.995).
    ks, times = np.unique(np.random.default_rng(seed).binomial(n, p, size=400), return_counts=True)
    covered = sum(
        t
        for k, t in zip(ks, times, strict=True)
        if wilson(int(k), n).low <= p <= wilson(int(k), n).high
    )
    assert 0.89 <= covered / 400 <= 0.995
