"""The synthetic hospital's discharges (readmit-30d) and clinic appointments (noshow-outreach).

Same pattern as the ward patients: one latent trait per case (frailty for readmission,
disengagement for a missed appointment) drives the inputs and the true risk together.
"""

from __future__ import annotations

import numpy as np

from governance.synthetic_base import (
    BOOLEAN,
    CATEGORICAL,
    Cases,
    Column,
    age_band,
    choice,
    drop,
    rounded,
    sigmoid,
)

RACE_ETHNICITY = {
    "Asian": 0.06,
    "Black": 0.21,
    "Hispanic": 0.15,
    "White": 0.53,
    "Other or unknown": 0.05,
}
SEX = {"female": 0.52, "male": 0.48}


def _payers(rng: np.random.Generator, age: np.ndarray) -> np.ndarray:
    older = choice(
        rng,
        len(age),
        {"Medicare": 0.88, "Medicaid": 0.05, "Commercial": 0.06, "Self-pay or uninsured": 0.01},
    )
    adult = choice(
        rng,
        len(age),
        {"Medicare": 0.08, "Medicaid": 0.36, "Commercial": 0.50, "Self-pay or uninsured": 0.06},
    )
    child = choice(
        rng, len(age), {"Medicaid": 0.45, "Commercial": 0.53, "Self-pay or uninsured": 0.02}
    )
    return np.where(age >= 65, older, np.where(age >= 18, adult, child))


def _adult_ages(rng: np.random.Generator, n: int, older: float) -> np.ndarray:
    """Adults 18–104, skewed old: ``older`` is the share aged 65 and over."""
    young = 18 + rng.random(n) * 47
    old = 65 + np.minimum(rng.exponential(11.0, n), 39)
    return np.floor(np.where(rng.random(n) < older, old, young))


class ReadmissionPopulation:
    slug = "readmit-30d"
    versions = ("2.0.0", "2.1.0")
    columns = (
        Column("age"),
        Column("length_of_stay_days", log=True),
        Column("emergent_admission", BOOLEAN),
        Column("charlson_index"),
        Column("ed_visits_6mo"),
        Column("admissions_12mo"),
        Column("active_medications"),
        Column(
            "discharge_disposition",
            CATEGORICAL,
            categories=("home", "home_health", "skilled_nursing", "rehab", "other"),
        ),
        Column("hemoglobin", decimals=1),
        Column("sodium"),
    )
    cohorts = ("age_band", "sex", "race_ethnicity", "payer", "service_line")
    base_logit = -2.15

    def draw(self, rng: np.random.Generator, n: int, site: str) -> Cases:
        age = _adult_ages(rng, n, older=0.5)
        cohort = {
            "age_band": age_band(age, ("18-44", "45-64", "65-79", "80+")),
            "sex": choice(rng, n, SEX),
            "race_ethnicity": choice(rng, n, RACE_ETHNICITY),
            "payer": _payers(rng, age),
            "service_line": choice(
                rng, n, {"Medicine": 0.55, "Surgery": 0.2, "Cardiology": 0.15, "Oncology": 0.1}
            ),
        }
        frail, age_z = rng.standard_normal(n), (age - 62) / 17
        noise = rng.standard_normal((4, n))
        seen = frail + 0.4 * noise[0]  # prior use reflects frailty, imperfectly
        stay = np.exp(1.35 + 0.35 * frail + 0.5 * noise[1])
        features = {
            "age": age.astype(float),
            "length_of_stay_days": rounded(stay, 1, 120, 0),
            "emergent_admission": (rng.random(n) < sigmoid(0.4 + 0.6 * frail)).astype(float),
            "charlson_index": _counts(rng, 0.7 + 0.5 * frail + 0.25 * age_z, 30),
            "ed_visits_6mo": _counts(rng, -0.6 + 0.55 * seen, 40),
            "admissions_12mo": _counts(rng, -0.9 + 0.55 * seen, 30),
            "active_medications": _counts(rng, 2.0 + 0.15 * frail + 0.1 * age_z, 60),
            "hemoglobin": drop(rng, rounded(12.2 - 0.7 * frail + 1.5 * noise[2], 5, 18, 1), 0.05),
            "sodium": drop(rng, rounded(139 - 0.9 * frail + 3.2 * noise[3], 118, 158, 0), 0.05),
            "discharge_disposition": _disposition(rng, frail, age_z),
        }
        cancer = cohort["service_line"] == "Oncology"
        logit = self.base_logit + 1.15 * frail + 0.1 * age_z + 0.3 * cancer
        return Cases(features, cohort, logit)


def _counts(rng: np.random.Generator, log_mean: np.ndarray, high: int) -> np.ndarray:
    return rounded(rng.poisson(np.exp(log_mean)).astype(float), 0, high, 0)


def _disposition(rng: np.random.Generator, frail: np.ndarray, age_z: np.ndarray) -> np.ndarray:
    needs_care = rng.random(len(frail)) < sigmoid(-1.2 + 0.6 * frail + 0.7 * age_z)
    home = choice(rng, len(frail), {"home": 0.8, "home_health": 0.17, "other": 0.03})
    care = choice(rng, len(frail), {"home_health": 0.35, "skilled_nursing": 0.45, "rehab": 0.2})
    return np.where(needs_care, care, home)


CLINICS = ("primary_care", "cardiology", "endocrinology", "paediatrics")


class NoShowPopulation:
    slug = "noshow-outreach"
    versions = ("1.3.0",)
    columns = (
        Column("lead_time_days"),
        Column("prior_noshow_rate_12mo", decimals=2),
        Column("prior_visits_12mo"),
        Column(
            "appointment_type", CATEGORICAL, categories=("new_patient", "follow_up", "annual_exam")
        ),
        Column("clinic", CATEGORICAL, categories=CLINICS),
        Column("hour_of_day"),
        Column("portal_active", BOOLEAN),
        Column("reminder_confirmed", BOOLEAN),
        Column("age"),
    )
    cohorts = ("age_band", "sex", "race_ethnicity", "payer", "clinic")
    base_logit = -2.45
    #: Children are outside the policy's population: the gate defers them to the paediatric team.
    paediatric_share = 0.05

    def draw(self, rng: np.random.Generator, n: int, site: str) -> Cases:
        child = rng.random(n) < self.paediatric_share
        age = np.where(child, np.floor(rng.random(n) * 18), _adult_ages(rng, n, older=0.3))
        adult_clinic = choice(
            rng, n, {"primary_care": 0.62, "cardiology": 0.18, "endocrinology": 0.2}
        )
        clinic = np.where(child, "paediatrics", adult_clinic).astype(object)
        cohort = {
            "age_band": age_band(age, ("0-17", "18-44", "45-64", "65+")),
            "sex": choice(rng, n, SEX),
            "race_ethnicity": choice(rng, n, RACE_ETHNICITY),
            "payer": _payers(rng, age),
            "clinic": clinic,
        }
        away, age_z = rng.standard_normal(n), (age - 50) / 18
        kind = choice(rng, n, {"new_patient": 0.2, "follow_up": 0.6, "annual_exam": 0.2})
        lead = rounded(rng.exponential(np.where(kind == "new_patient", 24, 12)), 0, 180, 0)
        reminder = (rng.random(n) < sigmoid(0.9 - 1.1 * away)).astype(float)
        missed = sigmoid(-2.2 + 0.8 * away + 0.45 * rng.standard_normal(n))
        portal = rng.random(n) < sigmoid(0.7 - 0.6 * away - 0.3 * age_z)
        features = {
            "lead_time_days": lead,
            "prior_noshow_rate_12mo": rounded(missed, 0, 1, 2),
            "prior_visits_12mo": _counts(rng, 1.3 + 0.25 * age_z, 60),
            "appointment_type": kind,
            "clinic": clinic,
            "hour_of_day": np.floor(8 + rng.random(n) * 10),
            "portal_active": portal.astype(float),
            "reminder_confirmed": drop(rng, reminder, 0.3),  # no reminder went out
            "age": age.astype(float),
        }
        logit = self.base_logit + 1.2 * away + 0.025 * (lead - 14) - 0.15 * age_z
        return Cases(features, cohort, logit)
