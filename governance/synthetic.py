"""A seeded synthetic hospital: 90 days of patients, scores, outcomes and workflow, plus the
named problems the demo's dashboards should find. Pure numpy, no database.

- Patients come from ``synthetic_sepsis`` / ``synthetic_clinics``: correlated vital signs, labs,
  age, sex, race/ethnicity, payer, service line, care unit, at each site.
- Each model's score is a logistic regression FITTED on a training draw of its population
  (``deployed_model``), and each outcome is drawn from the population's true risk, so at
  baseline the scores are calibrated and discriminate as a real model's would.
- ``SCENARIOS`` are declarative records injected on top, each confined to one site or cohort
  from a start day; ``traffic(..., scenarios=())`` is the same hospital without them.
- ``write_reference_csv`` writes a version's reference data set: the same generator before
  any drift, with features, ``score``, ``label`` and the cohort columns.

Day 0 is the oldest of ``DAYS`` days; day ``DAYS - 1`` is the 24 hours before now.
"""

from __future__ import annotations

import csv
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

from governance.synthetic_base import (
    Cases,
    LogisticModel,
    Population,
    fit_model,
    payload,
    rng_for,
    sigmoid,
)
from governance.synthetic_clinics import NoShowPopulation, ReadmissionPopulation
from governance.synthetic_sepsis import SepsisPopulation

DAYS = 90
DAY_SECONDS = 86_400
POPULATIONS: dict[str, Population] = {
    p.slug: p for p in (SepsisPopulation(), ReadmissionPopulation(), NoShowPopulation())
}
#: Mean predictions per site per day (tests scale these down).
VOLUME: dict[str, float] = {"sepsis-ews": 70.0, "readmit-30d": 22.0, "noshow-outreach": 35.0}
#: Each site's size relative to the others.
SITE_VOLUME = {"NORTH": 1.15, "SOUTH": 1.0, "EAST": 0.85, "WEST": 1.0}
#: When the label is known, in hours after the prediction (uniform between the two): sepsis
#: is adjudicated within about two days, a readmission after its 30-day horizon (claims lag a
#: few days more), a no-show on the appointment day, 2–10 days after the nightly run.
LABEL_DELAY_HOURS = {
    "sepsis-ews": (36.0, 60.0),
    "readmit-30d": (31 * 24.0, 35 * 24.0),
    "noshow-outreach": (2 * 24.0, 10 * 24.0),
}
#: Share of the model's ``act`` answers a clinician overrides (the service reports these).
OVERRIDE_RATE = {"sepsis-ews": 0.05, "readmit-30d": 0.03, "noshow-outreach": 0.04}
OVERRIDE_REASONS = {
    "alert_fatigue": 0.35,
    "clinical_judgement": 0.3,
    "already_treated": 0.25,
    "data_error": 0.05,
    "not_applicable": 0.05,
}
CASE_PREFIX = {"sepsis-ews": "SEP", "readmit-30d": "RDM", "noshow-outreach": "NSO"}
TRAINING_ROWS = 30_000


# --- Scenarios ------------------------------------------------------------------------------


#: What a scenario can do, and its ``params``:
#: ``feature_missing`` {feature}: the feed stops delivering the input;
#: ``outcome_shift`` {logit}: the true log-odds of the outcome rise by ``logit``;
#: ``outcome_decoupled`` {keep}: each risk shrinks to the slice's mean, keeping ``keep`` of
#: its distance (0: the outcome is independent of the patient, hence of the score);
#: ``override_rate`` {factor}: clinicians override ``factor`` times as often;
#: ``feature_renamed`` {feature, to}: the interface sends the input under another name.
EFFECTS = (
    "feature_missing",
    "outcome_shift",
    "outcome_decoupled",
    "override_rate",
    "feature_renamed",
)


@dataclass(frozen=True)
class Scenario:
    """A named problem injected into one model's traffic.

    ``where`` is a daily-profile slice key: ``site=<CODE>`` or ``<cohort column>=<value>``.
    From ``start_day`` on, ``effect`` (with ``params``) applies to the cases there, and the
    ``metrics`` — ``(layer, metric)`` pairs — should leave green there and nowhere else.
    """

    name: str
    title: str
    model: str
    where: str
    start_day: int
    metrics: tuple[tuple[str, str], ...]
    effect: str  # one of EFFECTS
    params: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.effect not in EFFECTS:
            raise ValueError(f"Unknown scenario effect {self.effect!r}; use one of {EFFECTS}.")

    @property
    def column(self) -> str:
        return self.where.split("=", 1)[0]

    @property
    def value(self) -> str:
        return self.where.split("=", 1)[1]

    def mask(self, site: str, cohort: Mapping[str, np.ndarray], day: np.ndarray) -> np.ndarray:
        """Which of the cases at ``site`` it touches."""
        if self.column == "site":
            where = np.full(len(day), site == self.value)
        else:
            where = cohort[self.column] == self.value
        return where & (day >= self.start_day)


SCENARIOS: tuple[Scenario, ...] = (
    Scenario(
        name="lactate-feed-lost",
        title="The lactate feed from the SOUTH laboratory stops arriving",
        model="sepsis-ews",
        where="site=SOUTH",
        start_day=75,
        metrics=(("data_quality", "missing_rate:lactate"),),
        effect="feature_missing",
        params={"feature": "lactate"},
    ),
    Scenario(
        name="guideline-change",
        title="A new sepsis screening guideline at NORTH raises the outcome rate",
        model="sepsis-ews",
        where="site=NORTH",
        start_day=60,
        metrics=(("prediction_quality", "calibration_oe"), ("outcome", "outcome_rate")),
        effect="outcome_shift",
        params={"logit": 0.65},
    ),
    Scenario(
        name="auc-regression-80-plus",
        title="Outcomes of patients aged 80 and over stop following the score",
        model="sepsis-ews",
        where="age_band=80+",
        start_day=60,
        metrics=(("prediction_quality", "auc"), ("prediction_quality", "calibration_slope")),
        effect="outcome_decoupled",
        params={"keep": 0.5},
    ),
    Scenario(
        name="override-surge",
        title="Clinicians at EAST override twice as many sepsis alerts",
        model="sepsis-ews",
        where="site=EAST",
        start_day=60,
        metrics=(("workflow", "override_rate"),),
        effect="override_rate",
        params={"factor": 2.0},
    ),
    Scenario(
        name="feature-renamed",
        title="An interface change at WEST sends respiratory_rate instead of resp_rate",
        model="sepsis-ews",
        where="site=WEST",
        start_day=80,
        metrics=(
            ("data_quality", "unexpected_feature_rate"),
            ("data_quality", "missing_rate:resp_rate"),
            ("workflow", "deferral_rate"),
        ),
        effect="feature_renamed",
        params={"feature": "resp_rate", "to": "respiratory_rate"},
    ),
)


# --- The deployed model ---------------------------------------------------------------------


def population(slug: str) -> Population:
    try:
        return POPULATIONS[slug]
    except KeyError:
        raise KeyError(f"No synthetic population for model {slug!r}.") from None


def _labels(rng: np.random.Generator, risk: np.ndarray) -> np.ndarray:
    return (rng.random(len(risk)) < risk).astype(int)


def _site_sizes(n: int) -> np.ndarray:
    """How many of ``n`` cases each site contributes, by its size (SITE_VOLUME order)."""
    weights = np.array(list(SITE_VOLUME.values()))
    sizes = np.floor(n * weights / weights.sum()).astype(int)
    sizes[0] += n - sizes.sum()
    return sizes


def _mixed_sites(slug: str, n: int, purpose: str) -> tuple[Cases, np.ndarray]:
    """``n`` cases drawn across the sites by their size, and their labels (no scenario)."""
    pop = population(slug)
    sizes = _site_sizes(n)
    parts = [
        pop.draw(rng_for(purpose, slug, site), int(size), site)
        for site, size in zip(SITE_VOLUME, sizes, strict=True)
    ]
    cases = Cases(
        {k: np.concatenate([p.features[k] for p in parts]) for k in parts[0].features},
        {k: np.concatenate([p.cohort[k] for p in parts]) for k in parts[0].cohort},
        np.concatenate([p.logit for p in parts]),
    )
    return cases, _labels(rng_for(purpose, slug, "labels"), sigmoid(cases.logit))


@cache
def deployed_model(slug: str) -> LogisticModel:
    """The model whose scores the service sends: fitted once per process on its training set."""
    cases, labels = _mixed_sites(slug, TRAINING_ROWS, "training")
    return fit_model(population(slug).columns, cases, labels)


# --- Traffic --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Encounter:
    """One prediction as the model service sends it, with what happens after.

    ``seconds`` is the time into its ``day``; ``risk`` the true probability of the outcome
    (never sent); ``override_reason`` is the reason code a clinician gives for overriding the
    model if it acts ("" when nobody would).
    """

    index: int
    day: int
    seconds: float
    case_key: str
    features: dict[str, Any]
    cohort: dict[str, str]
    score: float
    confidence: float
    top_factors: tuple[dict[str, Any], ...]
    risk: float
    label: int
    label_delay_hours: float
    override_reason: str


def daily_counts(slug: str, site: str, *, days: int = DAYS) -> np.ndarray:
    """Predictions per day at ``site``: Poisson around ``VOLUME`` × the site's size."""
    mean = VOLUME[slug] * SITE_VOLUME.get(site, 1.0)
    return rng_for("volume", slug, site).poisson(mean, size=days)


def _risk(cases: Cases, masks: list[tuple[Scenario, np.ndarray]]) -> np.ndarray:
    logit = cases.logit.copy()
    for scenario, mask in masks:
        if scenario.effect == "outcome_shift":
            logit[mask] += scenario.params["logit"]
    risk = sigmoid(logit)
    for scenario, mask in masks:
        if scenario.effect == "outcome_decoupled" and mask.any():
            # Same mean risk, but the patient's own risk barely matters any more.
            mean = risk[mask].mean()
            risk[mask] = mean + scenario.params["keep"] * (risk[mask] - mean)
    return risk


def _hide_missing(cases: Cases, masks: list[tuple[Scenario, np.ndarray]]) -> None:
    for scenario, mask in masks:
        if scenario.effect == "feature_missing":
            cases.features[scenario.params["feature"]][mask] = np.nan


def _override_rate(slug: str, masks: list[tuple[Scenario, np.ndarray]], n: int) -> np.ndarray:
    rate = np.full(n, OVERRIDE_RATE[slug])
    for scenario, mask in masks:
        if scenario.effect == "override_rate":
            rate[mask] *= scenario.params["factor"]
    return rate


def _top_factors(model: LogisticModel, cases: Cases) -> list[tuple[dict[str, Any], ...]]:
    names, parts = model.contributions(cases)
    order = np.argsort(-parts, axis=1)[:, :3]
    return [
        tuple({"feature": names[j], "contribution": round(float(parts[i, j]), 3)} for j in row)
        for i, row in enumerate(order)
    ]


def _renamed(features: dict[str, Any], renames: list[Mapping[str, Any]]) -> dict[str, Any]:
    """The interface sends ``feature`` under the name ``to``."""
    for rename in renames:
        if rename["feature"] in features:
            features[rename["to"]] = features.pop(rename["feature"])
    return features


@dataclass(frozen=True)
class _Workflow:
    """What happens around each prediction, from the workflow's own random stream."""

    confidence: np.ndarray
    override_reason: list[str]
    label_delay_hours: np.ndarray


def _workflow(slug: str, site: str, masks: list[tuple[Scenario, np.ndarray]], n: int) -> _Workflow:
    rng = rng_for("workflow", slug, site)
    confidence = 0.97 - 0.42 * rng.random(n) ** 4  # about 3% below 0.6
    overridden = rng.random(n) < _override_rate(slug, masks, n)
    reasons = list(OVERRIDE_REASONS)
    weights = np.array(list(OVERRIDE_REASONS.values()))
    reason = rng.choice(len(reasons), size=n, p=weights / weights.sum())
    low, high = LABEL_DELAY_HOURS[slug]
    return _Workflow(
        confidence=confidence,
        override_reason=[reasons[r] if o else "" for r, o in zip(reason, overridden, strict=True)],
        label_delay_hours=low + rng.random(n) * (high - low),
    )


def _times(slug: str, site: str, days: int) -> tuple[np.ndarray, np.ndarray]:
    """Each prediction's day and seconds into it, in time order."""
    day = np.repeat(np.arange(days), daily_counts(slug, site, days=days))
    moment = (rng_for("timing", slug, site).random(len(day)) + day) * DAY_SECONDS
    return day, np.sort(moment) - day * DAY_SECONDS


def traffic(
    slug: str, site: str, *, days: int = DAYS, scenarios: Sequence[Scenario] = SCENARIOS
) -> list[Encounter]:
    """Every prediction of ``slug`` at ``site`` over ``days`` days, oldest first.

    Separate random streams for the patients, the outcomes and the workflow, so the same
    hospital with and without ``scenarios`` has the same patients and differs only where a
    scenario applies.
    """
    pop, model = population(slug), deployed_model(slug)
    day, seconds = _times(slug, site, days)
    cases = pop.draw(rng_for("cases", slug, site), len(day), site)
    masks = [(s, s.mask(site, cases.cohort, day)) for s in scenarios if s.model == slug]
    risk = _risk(cases, masks)
    labels = _labels(rng_for("outcomes", slug, site), risk)
    _hide_missing(cases, masks)  # after the outcome: a lost feed does not change the patient
    score = model.predict(cases)
    factors = _top_factors(model, cases)
    workflow = _workflow(slug, site, masks, len(day))
    renames = [(s.params, mask) for s, mask in masks if s.effect == "feature_renamed"]
    return [
        Encounter(
            index=i,
            day=int(day[i]),
            seconds=float(seconds[i]),
            case_key=f"{CASE_PREFIX[slug]}-{site}-{i + 1:06d}",
            features=_renamed(payload(pop.columns, cases, i), [p for p, m in renames if m[i]]),
            cohort={k: str(v[i]) for k, v in cases.cohort.items()},
            score=round(float(score[i]), 4),
            confidence=round(float(workflow.confidence[i]), 3),
            top_factors=factors[i],
            risk=float(risk[i]),
            label=int(labels[i]),
            label_delay_hours=round(float(workflow.label_delay_hours[i]), 2),
            override_reason=workflow.override_reason[i],
        )
        for i in range(len(day))
    ]


# --- Reference data -------------------------------------------------------------------------

#: Enough for each site's own baseline (per-site reference slices: sites differ in case mix and
#: in how often a lab is missing, so a site is compared with itself, not with the pool).
REFERENCE_ROWS = 12_000


def reference_columns(slug: str) -> list[str]:
    pop = population(slug)
    # A column that is both an input and a cohort (e.g. the clinic) appears once.
    names = [c.name for c in pop.columns] + ["score", "label"] + list(pop.cohorts) + ["site"]
    return list(dict.fromkeys(names))


def reference_rows(slug: str, *, rows: int = REFERENCE_ROWS) -> list[dict[str, Any]]:
    """The version's reference data set: the hospital before any scenario, across the sites
    by their size, every row labelled. Values as the service sends them (missing: absent)."""
    pop, model = population(slug), deployed_model(slug)
    cases, labels = _mixed_sites(slug, rows, "reference")
    score = model.predict(cases)
    sites = np.repeat(list(SITE_VOLUME), _site_sizes(rows))
    return [
        {
            **payload(pop.columns, cases, i),
            "score": round(float(score[i]), 4),
            "label": int(labels[i]),
            **{k: str(v[i]) for k, v in cases.cohort.items()},
            "site": str(sites[i]),
        }
        for i in range(len(cases))
    ]


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def write_reference_csv(
    model_slug: str, version_number: str, path: str | Path, *, rows: int = REFERENCE_ROWS
) -> int:
    """Write ``model_slug`` ``version_number``'s reference data set to ``path`` as CSV and
    return the number of rows. Columns: every feature, ``score``, ``label`` (0/1), every
    cohort column. A missing value is an empty cell; booleans are ``true`` / ``false``."""
    pop = population(model_slug)
    if version_number not in pop.versions:
        raise KeyError(
            f"No synthetic reference for {model_slug} {version_number}; "
            f"versions: {', '.join(pop.versions)}."
        )
    columns = reference_columns(model_slug)
    data = reference_rows(model_slug, rows=rows)
    with Path(path).open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(columns)
        for row in data:
            writer.writerow([_cell(row.get(name)) for name in columns])
    return len(data)
