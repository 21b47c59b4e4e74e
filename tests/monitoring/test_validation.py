"""Feature checks against a spec: pure, no database."""

from __future__ import annotations

from monitoring.validation import FeatureRule, check_features

SPEC = [
    FeatureRule("age", "numeric", 0, 120),
    FeatureRule("lactate", "numeric", 0, 30, required=False, missing_allowed=True),
    FeatureRule("temp", "numeric", 30, 45, required=False, missing_allowed=False),
    FeatureRule("unit", "categorical", categories=frozenset({"ward", "icu"})),
    FeatureRule("dialysis", "boolean", required=False, missing_allowed=True),
]


def codes(features):
    return [(p.code, p.feature) for p in check_features(SPEC, features)]


def test_a_clean_case_has_no_problems():
    assert codes({"age": 50, "unit": "icu", "lactate": None, "dialysis": False}) == []


def test_it_reports_each_kind_of_problem():
    assert codes({"unit": "ward"}) == [("missing_required", "age")]
    assert codes({"age": None, "unit": "ward"}) == [("missing_required", "age")]
    assert codes({"age": 130, "unit": "ward"}) == [("out_of_range", "age")]
    assert codes({"age": -1, "unit": "ward"}) == [("out_of_range", "age")]
    assert codes({"age": "50", "unit": "ward"}) == [("wrong_type", "age")]
    assert codes({"age": True, "unit": "ward"}) == [("wrong_type", "age")]
    assert codes({"age": 50, "unit": "moon"}) == [("unknown_category", "unit")]
    assert codes({"age": 50, "unit": 3}) == [("wrong_type", "unit")]
    assert codes({"age": 50, "unit": "ward", "dialysis": "yes"}) == [("wrong_type", "dialysis")]
    assert codes({"age": 50, "unit": "ward", "shoe": 44}) == [("unexpected_feature", "shoe")]
    assert codes({"age": 50, "unit": "ward", "temp": None}) == [("missing_value", "temp")]


def test_boundaries_are_inside_the_range():
    assert codes({"age": 0, "unit": "ward"}) == [] and codes({"age": 120, "unit": "ward"}) == []


def test_problems_name_the_value_for_people():
    (problem,) = check_features(SPEC, {"age": 130, "unit": "ward"})
    assert "130" in problem.text and "120" in problem.text
