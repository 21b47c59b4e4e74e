"""The demo's dashboards point at the injected problems and nowhere else.

``seed_demo`` sends the synthetic hospital's 90 days through the gate, uploads each deployed
version's reference data, builds the daily profiles and evaluates. Every scenario of
``governance.synthetic.SCENARIOS`` must show orange or red at its own site or cohort over the
last 30 days, and every result worse than green must be explained by a scenario: one whose
metrics it belongs to and whose patients are in that slice (the slice itself, the whole
deployment, a cohort for a site's problem, a site for a cohort's problem). Models without
scenarios stay green or insufficient everywhere.

One full-volume seed (about two minutes on SQLite): smaller volumes would not have the
outcome events that AUC and calibration need per site.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager
from io import StringIO

import pytest
from django.core.management import call_command

from governance.audit.models import AuditEvent
from governance.synthetic import CASE_PREFIX, SCENARIOS
from incidents.models import Incident
from monitoring.models import MetricResult

pytestmark = pytest.mark.django_db

CALIBRATION = {
    "calibration_oe", "calibration_intercept", "calibration_slope", "brier", "ece",
    "cusum_calibration_up", "cusum_calibration_down",
}  # fmt: skip
#: What each scenario may move, beyond the metrics it names: a renamed input also degrades
#: the scores (the model imputes it) and with them discrimination and calibration.
FAMILIES = {
    "lactate-feed-lost": {"missing_rate:lactate"},
    "guideline-change": CALIBRATION | {"outcome_rate", "subgroup_gap"},
    "auc-regression-80-plus": CALIBRATION | {"auc"},
    "override-surge": {"override_rate", "ewma_override_rate"},
    "feature-renamed": CALIBRATION
    | {"auc", "unexpected_feature_rate", "missing_rate:resp_rate", "deferral_rate",
       "ewma_deferral_rate"},  # fmt: skip
}


def overlaps(scenario_slice: str, slice_key: str) -> bool:
    if slice_key in ("all", scenario_slice):
        return True
    scenario_is_site = scenario_slice.startswith("site=")
    return scenario_is_site != slice_key.startswith("site=")


def family(scenario) -> set[str]:
    return FAMILIES[scenario.name] | {metric for _, metric in scenario.metrics}


class Captured(logging.Handler):
    """Every record any logger emits, formatted as the console handler would, tracebacks too."""

    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.setFormatter(logging.Formatter("%(levelname)s %(name)s %(message)s"))
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


@contextmanager
def all_logs() -> Iterator[Captured]:
    """The root logger at DEBUG (as ``LOG_LEVEL=DEBUG`` would set it) with a capturing
    handler; loggers configured with their own level (``django.db.backends``) keep it."""
    root, captured = logging.getLogger(), Captured()
    level = root.level
    root.setLevel(logging.DEBUG)
    root.addHandler(captured)
    try:
        yield captured
    finally:
        root.removeHandler(captured)
        root.setLevel(level)


#: A synthetic patient's case key, as the hospital sends it (``SEP-NORTH-000123``).
CASE_KEY = re.compile(rf"\b(?:{'|'.join(CASE_PREFIX.values())})-[A-Z0-9]+-\d{{6}}\b")
IDENTIFIER_WORDS = re.compile(
    r"\b(?:MRN|DOB|SSN|date of birth|medical record number|patient name)\b", re.IGNORECASE
)


def identifiers_in(lines: list[str]) -> list[str]:
    """Log lines carrying a case key, a feature-value mapping or an identifier's name."""
    from registry.models import FeatureSpec

    names = sorted(set(FeatureSpec.objects.values_list("name", flat=True)))
    feature_value = re.compile(rf"""['"](?:{"|".join(map(re.escape, names))})['"]\s*:""")
    return [
        line[:300]
        for line in lines
        if CASE_KEY.search(line) or feature_value.search(line) or IDENTIFIER_WORDS.search(line)
    ]


def test_the_dashboards_point_at_the_injected_problems_and_nowhere_else(monkeypatch):
    monkeypatch.setenv("VIGIL_DEMO_PASSWORD", "demo-pass-for-tests!")
    printed = StringIO()
    with all_logs() as logs:
        logging.getLogger("tests.canary").debug("canary SEP-NORTH-000001")
        call_command("seed_demo", stdout=printed)
    # No patient identifier in the logs of a full demo run (nor in what the seed prints).
    canary = logs.lines.pop(0)
    assert identifiers_in([canary]) == [canary[:300]]  # the scan sees DEBUG lines and keys
    assert identifiers_in(logs.lines + printed.getvalue().splitlines()) == []
    latest = MetricResult.objects.latest("window_end").window_end
    results = MetricResult.objects.filter(window_days=30, window_end=latest).select_related("model")
    assert results.exists()
    # The trend behind the metric pages: the earlier weekly window ends are there too.
    assert MetricResult.objects.values("window_end").distinct().count() == 5

    for scenario in SCENARIOS:
        for _, metric in scenario.metrics:
            found = results.get(
                model__slug=scenario.model, slice_key=scenario.where, metric=metric
            )
            assert found.band in ("orange", "red"), (scenario.name, metric, found.band)

    unexplained = []
    for result in results.exclude(band__in=("green", "insufficient")):
        if not any(
            s.model == result.model.slug
            and result.metric in family(s)
            and overlaps(s.where, result.slice_key)
            for s in SCENARIOS
        ):
            unexplained.append((result.model.slug, result.slice_key, result.metric, result.band))
    assert unexplained == []

    # The scenarios' own slices are confined: the sites and cohort values they do not touch
    # stay green or insufficient on their headline metrics.
    for scenario in SCENARIOS:
        column = scenario.where.partition("=")[0]
        for _, metric in scenario.metrics:
            others = results.filter(
                model__slug=scenario.model, metric=metric, slice_key__startswith=f"{column}="
            ).exclude(slice_key=scenario.where)
            assert others.exists()
            touched = {
                r.slice_key
                for r in others
                if r.band not in ("green", "insufficient")
                and not any(
                    o.name != scenario.name
                    and metric in family(o)
                    and overlaps(o.where, r.slice_key)
                    for o in SCENARIOS
                )
            }
            assert touched == set(), (scenario.name, metric, touched)

    # Each scenario is one incident at its own slice, routed to the owner of its cause, and no
    # incident opened anywhere else.
    owners = {
        "lactate-feed-lost": "data_engineer",
        "guideline-change": "ml_engineer",
        "auc-regression-80-plus": "ml_engineer",
        "override-surge": "clinical_informaticist",
        "feature-renamed": "data_engineer",
    }
    incidents = {(i.model.slug, i.slice_key): i.routed_role for i in Incident.objects.all()}
    assert incidents == {(s.model, s.where): owners[s.name] for s in SCENARIOS}

    # A second seed the same day changes nothing, monitoring included.
    before = (AuditEvent.objects.count(), MetricResult.objects.count())
    out = StringIO()
    call_command("seed_demo", stdout=out)
    assert "nothing changed" in out.getvalue()
    assert (AuditEvent.objects.count(), MetricResult.objects.count()) == before
