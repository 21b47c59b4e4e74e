"""The update ladder on simulated data where the right answer is known, and its fits against
scikit-learn and scipy. No database."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats
from sklearn.linear_model import LogisticRegression

from monitoring.stats.recalibration import (
    Level,
    apply_mapping,
    before_after,
    closed_test,
    compose,
    expit,
    feature_design,
    fit_logistic,
    fit_mapping,
    logit,
    map_scores,
    mapping_dict,
    mapping_of,
    split_sample,
)

SPECS = [
    {"name": "x1", "dtype": "numeric"},
    {"name": "x2", "dtype": "numeric"},
    {"name": "unit", "dtype": "categorical", "categories": ["ward", "icu", "ed"]},
    {"name": "dialysis", "dtype": "boolean"},
]


def simulate(seed: int, n: int = 4000, scenario: str = "unchanged"):
    """True logit -2 + 1.0·x1 + 0.5·x2; the model's score is expit of it. Outcomes follow the
    scenario's truth."""
    rng = np.random.default_rng(seed)
    x1, x2 = rng.normal(size=n), rng.normal(size=n)
    unit = rng.choice(["ward", "icu", "ed"], size=n)
    dialysis = rng.random(n) < 0.2
    lp = -2 + 1.0 * x1 + 0.5 * x2
    truth = {
        "unchanged": lp,
        "rate_shift": lp + 0.8,
        "slope_change": 0.5 * lp,
        "changed_associations": -2 + 1.0 * x1 - 0.5 * x2,
    }[scenario]
    y = (rng.random(n) < expit(truth)).astype(float)
    rows = [
        {"x1": float(a), "x2": float(b), "unit": str(u), "dialysis": bool(d)}
        for a, b, u, d in zip(x1, x2, unit, dialysis, strict=True)
    ]
    return expit(lp), y, rows


EXPECTED = [
    ("unchanged", Level.NO_CHANGE),
    ("rate_shift", Level.INTERCEPT),
    ("slope_change", Level.LOGISTIC),
    ("changed_associations", Level.REFIT),
]


@pytest.mark.parametrize(("scenario", "level"), EXPECTED)
def test_it_climbs_the_ladder_to_the_known_answer(scenario, level):
    score, y, rows = simulate(7, scenario=scenario)
    ladder = closed_test(score, y, SPECS, rows, min_cases=100)
    assert ladder.level == level
    assert ladder.n == 4000 and ladder.events == int(y.sum())


@pytest.mark.parametrize(("scenario", "level"), EXPECTED)
def test_it_gets_the_answer_right_in_most_repetitions(scenario, level):
    # Each step tests at 5%, so "too high a rung" happens about 5% of the time per step;
    # under a real change of the rung's kind the power at n = 4,000 is essentially 1.
    right = 0
    for seed in range(100, 130):
        score, y, rows = simulate(seed, scenario=scenario)
        right += closed_test(score, y, SPECS, rows).level == level
    assert right >= 25


def test_it_never_stops_below_a_real_change():
    # Power: a real change of a rung's kind is always detected at that rung or above.
    order = [Level.NO_CHANGE, Level.INTERCEPT, Level.LOGISTIC, Level.REFIT]
    for scenario, level in EXPECTED[1:]:
        for seed in range(200, 210):
            score, y, rows = simulate(seed, scenario=scenario)
            assert order.index(closed_test(score, y, SPECS, rows).level) >= order.index(level)


def test_it_is_insufficient_below_the_policy_minimum():
    score, y, rows = simulate(3, n=150, scenario="rate_shift")
    ladder = closed_test(score, y, SPECS, rows, min_cases=200)
    assert ladder.level == Level.INSUFFICIENT
    assert "150 labelled cases" in ladder.reason and "200" in ladder.reason
    assert ladder.fits == {}


def test_it_is_insufficient_with_fewer_than_ten_of_an_outcome():
    score = np.full(500, 0.1)
    y = np.zeros(500)
    y[:9] = 1
    ladder = closed_test(score, y, min_cases=100)
    assert ladder.level == Level.INSUFFICIENT
    assert "only 9 cases in the rarer outcome" in ladder.reason


def test_it_reports_separation_as_insufficient_not_a_crash():
    score, _, rows = simulate(5, n=600)
    y = np.array([1.0 if r["x2"] > 0.3 else 0.0 for r in rows])  # x2 separates the outcomes
    ladder = closed_test(score, y, SPECS, rows, min_cases=100)
    assert ladder.level == Level.INSUFFICIENT
    assert "did not converge" in ladder.reason and "M3" in ladder.reason
    assert ladder.fits["M3"].converged is False
    assert "separated" in ladder.fits["M3"].problem


def test_the_lr_tests_match_scipy_and_the_df_are_parameter_counts():
    score, y, rows = simulate(11, scenario="changed_associations")
    ladder = closed_test(score, y, SPECS, rows)
    # The model is linear in x1 and x2, so lp is in their span and x2 drops: the feature
    # columns are x1, unit=icu, unit=ed, dialysis (unit=other and the missing indicators
    # never vary), p' = 4, and the df are p'+2, p'+1, p'.
    assert ladder.feature_names == ("x1", "unit=icu", "unit=ed", "dialysis")
    assert "x2" in ladder.dropped
    ll = {k: f.loglik for k, f in ladder.fits.items()}
    assert [t.df for t in ladder.tests] == [6, 5, 4]
    for test in ladder.tests:
        lr = 2 * (ll["M3"] - ll[test.against])
        assert test.statistic == pytest.approx(lr)
        assert test.p_value == pytest.approx(stats.chi2.sf(lr, test.df))
    assert ladder.fits["M0"].loglik == pytest.approx(
        float(np.sum(y * np.log(score) + (1 - y) * np.log1p(-score)))
    )


def test_the_fits_match_scikit_learn():
    score, y, rows = simulate(13, scenario="slope_change")
    design = feature_design(SPECS, rows, np.column_stack([np.ones(y.size), logit(score)]))
    x = np.column_stack([logit(score), design.matrix])
    ours = fit_logistic(np.column_stack([np.ones(y.size), x]), y)
    # Unpenalised (C = inf: scikit-learn 1.8 deprecates penalty=None for the same fit).
    sk = LogisticRegression(C=np.inf, tol=1e-12, max_iter=10_000).fit(x, y)
    assert ours.converged
    np.testing.assert_allclose(ours.coef[0], sk.intercept_[0], atol=1e-5)
    np.testing.assert_allclose(ours.coef[1:], sk.coef_[0], atol=1e-5)
    p = sk.predict_proba(x)[:, 1]
    assert ours.loglik == pytest.approx(float(np.sum(y * np.log(p) + (1 - y) * np.log1p(-p))))


def test_the_intercept_only_fit_has_its_closed_form():
    # With lp = 0 for every case, a + lp fits the observed log-odds exactly.
    y = np.array([1.0] * 30 + [0.0] * 70)
    fit = fit_logistic(np.ones((100, 1)), y, offset=np.zeros(100))
    assert fit.coef[0] == pytest.approx(math.log(0.3 / 0.7), abs=1e-9)


def test_the_fitted_mapping_recovers_the_true_shift():
    score, y, _ = simulate(17, n=20_000, scenario="rate_shift")
    a, b = mapping_of(fit_mapping(score, y, Level.INTERCEPT), Level.INTERCEPT)
    assert b == 1.0 and a == pytest.approx(0.8, abs=0.1)
    score, y, _ = simulate(17, n=20_000, scenario="slope_change")
    a, b = mapping_of(fit_mapping(score, y, Level.LOGISTIC), Level.LOGISTIC)
    assert a == pytest.approx(0.0, abs=0.1) and b == pytest.approx(0.5, abs=0.05)


def test_the_ladder_hands_over_the_mapping_of_its_level():
    score, y, rows = simulate(7, scenario="slope_change")
    ladder = closed_test(score, y, SPECS, rows)
    assert ladder.mapping == ladder.fits["M2"].coef
    score, y, rows = simulate(7, scenario="rate_shift")
    ladder = closed_test(score, y, SPECS, rows)
    assert ladder.mapping == (ladder.fits["M1"].coef[0], 1.0)
    assert closed_test(*simulate(7)[:2], SPECS, simulate(7)[2]).mapping is None


def test_a_composed_mapping_equals_applying_both():
    raw = np.array([0.01, 0.2, 0.5, 0.93])
    inner, outer = (0.3, 0.8), (-0.5, 1.4)
    a, b = compose(outer, inner)
    once = [apply_mapping(s, a, b) for s in raw]
    twice = [apply_mapping(apply_mapping(s, *inner), *outer) for s in raw]
    np.testing.assert_allclose(once, twice, rtol=1e-12)
    np.testing.assert_allclose(map_scores(raw, (a, b)), once, rtol=1e-12)
    assert compose(outer, None) == outer
    assert mapping_dict(*compose((0.2, 1.0), (0.1, 1.0)))["method"] == "intercept"
    assert mapping_dict(0.2, 0.7) == {"method": "logistic", "intercept": 0.2, "slope": 0.7}


def test_before_after_shows_the_mapping_fixes_calibration():
    score, y, rows = simulate(19, scenario="rate_shift")
    ladder = closed_test(score, y, SPECS, rows)
    evidence = before_after(score, y, ladder.mapping, {"alert": 0.3})
    before, after = evidence["before"], evidence["after"]
    assert before["calibration_intercept"]["low"] > 0  # under-predicts before
    assert after["calibration_intercept"]["low"] < 0 < after["calibration_intercept"]["high"]
    assert after["observed_expected"]["value"] == pytest.approx(1.0, abs=0.05)
    rates = evidence["action_rate"]
    assert rates["after"]["alert"] > rates["before"]["alert"]
    assert rates["before"]["alert"] == pytest.approx(float((score >= 0.3).mean()))


def test_split_sample_fits_on_the_first_half_and_judges_the_second():
    score, y, _ = simulate(23, scenario="rate_shift")
    check = split_sample(score, y, Level.INTERCEPT, {"alert": 0.3})
    assert check["fitted_on"] == 2000 and check["n"] == 2000
    assert check["mapping"]["slope"] == 1.0
    assert abs(check["after"]["calibration_intercept"]["value"]) < abs(
        check["before"]["calibration_intercept"]["value"]
    )


def test_missing_values_get_an_indicator_and_the_mean():
    rows = [{"x1": float(i)} if i % 2 == 0 else ({"x1": None} if i % 4 == 1 else {})
            for i in range(40)]  # fmt: skip
    design = feature_design([{"name": "x1", "dtype": "numeric"}], rows)
    assert design.names == ("x1", "x1:missing")
    np.testing.assert_allclose(design.matrix[:, 1], [i % 2 for i in range(40)])
    imputed = design.matrix[1::2, 0]
    np.testing.assert_allclose(imputed, 0.0, atol=1e-12)  # the mean, standardised
    present = np.array([float(i) for i in range(0, 40, 2)])
    filled = np.concatenate([present, np.full(20, present.mean())])  # standardised as imputed
    np.testing.assert_allclose(design.matrix[0::2, 0], (present - present.mean()) / filled.std())


def test_an_indicator_seen_in_fewer_than_ten_cases_is_dropped():
    rows = [{"x1": float(i)} for i in range(40)]
    for i in (3, 17, 29):
        rows[i] = {"x1": None}
    design = feature_design([{"name": "x1", "dtype": "numeric"}], rows)
    assert design.names == ("x1",) and "x1:missing" in design.dropped


def test_an_indicator_that_separates_the_outcomes_is_dropped_not_fatal():
    """A missing-value flag whose few cases all survived (the demo's sbp) would give M3 no
    finite estimate; the column is dropped, named, and the ladder still answers."""
    rng = np.random.default_rng(11)
    n = 3000
    x = rng.normal(size=n)
    score = expit(-2 + x)
    y = (rng.random(n) < expit(-2 + x + 0.8)).astype(float)  # a rate shift
    rows = [{"x": float(v)} for v in x]
    flagged = np.flatnonzero(y == 0)[:15]
    for i in flagged:
        rows[i] = {"x": None}
    specs = [{"name": "x", "dtype": "numeric"}]
    ladder = closed_test(score, y, specs, rows)
    assert ladder.level == "intercept"
    assert any("separates the outcomes" in name for name in ladder.dropped)
