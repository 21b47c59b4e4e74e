"""The synthetic hospital's adult ward patients, as sepsis-ews 1.1.0 sees them.

Each case is one hourly assessment of a ward patient. A latent deterioration ``d`` (standard
normal) drives the vital signs and labs together, so they are correlated as in real charts; the
true risk of sepsis within 12 hours rises with ``d``, age and cancer care, and the model sees
``d`` only through its noisy traces. Missing labs are missing at random (not ordered, or not
resulted yet), so their absence alone says nothing about risk.
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

AGE_BANDS = ("18-44", "45-64", "65-79", "80+")
CARE_UNITS = ("medical_ward", "surgical_ward", "step_down", "oncology_ward")
RACE_ETHNICITY = {
    "Asian": 0.07,
    "Black": 0.20,
    "Hispanic": 0.14,
    "White": 0.55,
    "Other or unknown": 0.04,
}
#: The admitting service line at each hospital: NORTH, the tertiary centre, sees more cancer.
SERVICE_LINES = {
    "NORTH": {"Medicine": 0.48, "Surgery": 0.26, "Oncology": 0.13, "Cardiology": 0.13},
    "SOUTH": {"Medicine": 0.53, "Surgery": 0.25, "Oncology": 0.09, "Cardiology": 0.13},
    "EAST": {"Medicine": 0.51, "Surgery": 0.24, "Oncology": 0.11, "Cardiology": 0.14},
    "WEST": {"Medicine": 0.50, "Surgery": 0.26, "Oncology": 0.11, "Cardiology": 0.13},
}
CARE_UNIT_OF = {
    "Medicine": {"medical_ward": 0.8, "step_down": 0.2},
    "Surgery": {"surgical_ward": 0.85, "step_down": 0.15},
    "Oncology": {"oncology_ward": 0.9, "medical_ward": 0.1},
    "Cardiology": {"step_down": 0.6, "medical_ward": 0.4},
}
#: Labs are ordered when a clinician wants them: these shares of assessments have none.
MISSING = {"wbc": 0.08, "creatinine": 0.06, "lactate": 0.30, "altered_mentation": 0.04}
VITALS_MISSING = 0.0015  # a vital sign not charted: the gate defers (a required input)


def _ages(rng: np.random.Generator, n: int) -> np.ndarray:
    band = choice(rng, n, {"18-44": 0.17, "45-64": 0.30, "65-79": 0.33, "80+": 0.20})
    low = np.select([band == "18-44", band == "45-64", band == "65-79"], [18, 45, 65], 80)
    width = np.select([band == "18-44", band == "45-64", band == "65-79"], [27, 20, 15], 0)
    age = low + rng.random(n) * width
    return np.floor(np.where(band == "80+", 80 + np.minimum(rng.exponential(6.0, n), 25), age))


def _payers(rng: np.random.Generator, age: np.ndarray) -> np.ndarray:
    older = choice(
        rng,
        len(age),
        {"Medicare": 0.9, "Medicaid": 0.04, "Commercial": 0.05, "Self-pay or uninsured": 0.01},
    )
    younger = choice(
        rng,
        len(age),
        {"Medicare": 0.07, "Medicaid": 0.34, "Commercial": 0.53, "Self-pay or uninsured": 0.06},
    )
    return np.where(age >= 65, older, younger)


def _care_units(rng: np.random.Generator, service: np.ndarray) -> np.ndarray:
    out = np.empty(len(service), dtype=object)
    for line, units in CARE_UNIT_OF.items():
        rows = service == line
        out[rows] = choice(rng, int(rows.sum()), units)
    return out


class SepsisPopulation:
    slug = "sepsis-ews"
    versions = ("1.1.0",)
    columns = (
        Column("heart_rate"),
        Column("resp_rate"),
        Column("temperature", decimals=1),
        Column("sbp"),
        Column("spo2"),
        Column("altered_mentation", BOOLEAN),
        Column("wbc", decimals=1, log=True),
        Column("creatinine", decimals=2, log=True),
        Column("age"),
        Column("lactate", decimals=1, log=True),
        Column("care_unit", CATEGORICAL, categories=CARE_UNITS),
    )
    cohorts = ("age_band", "sex", "race_ethnicity", "payer", "service_line")
    #: Intercept of the true log-odds: about one assessment in ten is followed by sepsis.
    base_logit = -3.05

    def draw(self, rng: np.random.Generator, n: int, site: str) -> Cases:
        age = _ages(rng, n)
        service = choice(rng, n, SERVICE_LINES.get(site, SERVICE_LINES["SOUTH"]))
        cohort = {
            "age_band": age_band(age, AGE_BANDS),
            "sex": choice(rng, n, {"female": 0.5, "male": 0.5}),
            "race_ethnicity": choice(rng, n, RACE_ETHNICITY),
            "payer": _payers(rng, age),
            "service_line": service,
        }
        d = rng.standard_normal(n)
        age_z, cancer = (age - 65) / 15, (service == "Oncology").astype(float)
        surgery = service == "Surgery"
        logit = self.base_logit + 1.45 * d + 0.3 * age_z + 0.6 * cancer - 0.2 * surgery
        return Cases(self._inputs(rng, d, age, age_z, cancer, service), cohort, logit)

    def _inputs(
        self,
        rng: np.random.Generator,
        d: np.ndarray,
        age: np.ndarray,
        age_z: np.ndarray,
        cancer: np.ndarray,
        service: np.ndarray,
    ) -> dict[str, np.ndarray]:
        n = len(d)
        noise = rng.standard_normal((8, n))
        vitals = {
            "heart_rate": rounded(84 + 11 * d + 3 * cancer + 11 * noise[0], 35, 190, 0),
            "resp_rate": rounded(17.5 + 2.6 * d + 2.8 * noise[1], 8, 50, 0),
            "temperature": rounded(37.0 + 0.45 * d - 0.1 * age_z + 0.45 * noise[2], 34, 41.5, 1),
            "sbp": rounded(126 - 10 * d + 5 * age_z + 16 * noise[3], 60, 230, 0),
            "spo2": rounded(96.3 - 1.1 * d + 1.6 * noise[4], 70, 100, 0),
        }
        mentation = (rng.random(n) < sigmoid(-3.2 + 0.9 * d + 0.6 * age_z)).astype(float)
        labs = {
            "wbc": rounded(8.2 * np.exp(0.2 * d - 0.15 * cancer + 0.32 * noise[5]), 0.5, 60, 1),
            "creatinine": rounded(
                0.95 * np.exp(0.14 * d + 0.1 * age_z + 0.35 * noise[6]), 0.2, 15, 2
            ),
            "lactate": rounded(1.3 * np.exp(0.22 * d + 0.33 * noise[7]), 0.3, 20, 1),
        }
        features = {name: drop(rng, v, VITALS_MISSING) for name, v in vitals.items()}
        features["altered_mentation"] = drop(rng, mentation, MISSING["altered_mentation"])
        features.update({name: drop(rng, v, MISSING[name]) for name, v in labs.items()})
        features["age"] = age.astype(float)
        features["care_unit"] = _care_units(rng, service)
        return features
