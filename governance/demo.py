"""The demo data set: one user per role, sites, feeds, and three registered models.

``seed_demo()`` loads it through the registry and accounts services, so every record it
creates carries history and an audit event, exactly as if people had entered it. It is
idempotent: each step looks for its record first and does nothing if it is there, so a second
run creates nothing and appends no audit event. Existing records are never overwritten (an
operator may have edited the demo since).

The content is fictional but written to read like real model cards: the hospitals, people,
e-mail domains and report numbers are made up; the cited literature is real.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db import transaction

from accounts.models import ServiceAccount
from accounts.roles import Role
from accounts.services import service_account_create
from governance.audit.services import record
from governance.demo_monitoring import seed_monitoring
from governance.demo_predictions import seed_predictions
from registry import services as registry
from registry.models import (
    ClinicalModel,
    DataFeed,
    Deployment,
    ModelVersion,
    Site,
    VersionStatus,
)

DEMO_PASSWORD_ENV = "VIGIL_DEMO_PASSWORD"
DEFAULT_DEMO_PASSWORD = "vigil-demo-2026!"
MAIL = "northvalley-health.example"


def demo_password() -> str:
    return os.environ.get(DEMO_PASSWORD_ENV) or DEFAULT_DEMO_PASSWORD


def _utc(year: int, month: int, day: int, hour: int = 9) -> dt.datetime:
    return dt.datetime(year, month, day, hour, tzinfo=dt.UTC)


# --- People -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class DemoUser:
    username: str
    role: Role
    first_name: str  # with the title, so the portal shows "Dr. Amara Okafor"
    last_name: str
    job: str

    @property
    def full_name(self) -> str:
        return f"{self.first_name} {self.last_name}"

    @property
    def email(self) -> str:
        return f"{self.username}@{MAIL}"


USERS: tuple[DemoUser, ...] = (
    DemoUser(
        "director",
        Role.MEDICAL_DIRECTOR,
        "Dr. Amara",
        "Okafor",
        "Chief Medical Information Officer",
    ),
    DemoUser(
        "compliance",
        Role.COMPLIANCE_OFFICER,
        "Daniel",
        "Whitfield",
        "Privacy and compliance officer",
    ),
    DemoUser(
        "commander", Role.INCIDENT_COMMANDER, "Rosa", "Delgado", "Clinical AI incident commander"
    ),
    DemoUser("mlengineer", Role.ML_ENGINEER, "Priya", "Raman", "Senior ML engineer"),
    DemoUser("dataengineer", Role.DATA_ENGINEER, "Tomás", "Herrera", "Clinical data engineer"),
    DemoUser(
        "informaticist",
        Role.CLINICAL_INFORMATICIST,
        "Dr. Hannah",
        "Lindqvist",
        "Nursing and clinical informaticist",
    ),
    DemoUser("quality", Role.QUALITY_SAFETY, "Grace", "Mensah", "Patient safety lead (RN)"),
    DemoUser("reviewer", Role.REVIEWER, "Dr. Samuel", "Adeyemi", "Hospitalist, case reviewer"),
    DemoUser("viewer", Role.VIEWER, "Lena", "Fischer", "Clinical operations analyst"),
)

# --- Sites and feeds --------------------------------------------------------------------------

SITES: tuple[tuple[str, str], ...] = (
    ("NORTH", "North General Hospital"),
    ("SOUTH", "South Community Hospital"),
    ("EAST", "Eastside Medical Center"),
    ("WEST", "West Valley Medical Center"),
)

FEEDS: tuple[dict[str, Any], ...] = (
    {
        "slug": "ehr-vitals",
        "name": "EHR flowsheet vitals",
        "source_system": DataFeed.SourceSystem.EHR_VITALS,
        "expected_cadence_minutes": 15,
        "description": "Nursing flowsheet rows (HR, RR, temperature, BP, SpO2, mentation) "
        "streamed as HL7 v2 ORU messages from the inpatient EHR at the four "
        "hospitals. Silence beyond 15 minutes on an open ward is a stale feed.",
    },
    {
        "slug": "lab-results",
        "name": "Laboratory results (LIS)",
        "source_system": DataFeed.SourceSystem.LABS,
        "expected_cadence_minutes": 60,
        "description": "Resulted chemistry and haematology from the laboratory information "
        "system (HL7 v2 ORU, LOINC-coded). Includes WBC, lactate, creatinine, "
        "haemoglobin and sodium.",
    },
    {
        "slug": "adt-orders",
        "name": "ADT events and orders",
        "source_system": DataFeed.SourceSystem.EHR_ORDERS,
        "expected_cadence_minutes": 15,
        "description": "Admissions, transfers and discharges (HL7 v2 A01–A08) with the care "
        "unit, service line and discharge disposition; medication orders.",
    },
    {
        "slug": "scheduling",
        "name": "Ambulatory scheduling",
        "source_system": DataFeed.SourceSystem.SCHEDULING,
        "expected_cadence_minutes": 60,
        "description": "Appointment bookings, changes, confirmations and check-ins (HL7 v2 SIU) "
        "for the Eastside clinics, with the patient-portal activity flag.",
    },
    {
        "slug": "claims",
        "name": "Payer claims and eligibility",
        "source_system": DataFeed.SourceSystem.CLAIMS,
        "expected_cadence_minutes": 1440,
        "description": "Nightly batch of adjudicated claims (X12 837/835) used for prior "
        "utilisation: emergency visits and admissions outside the health system.",
    },
)

# --- Models -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class DemoVersion:
    fields: Mapping[str, Any]
    features: tuple[Mapping[str, Any], ...]  # "feed" is a feed slug here
    cohorts: tuple[Mapping[str, Any], ...]
    status: str = VersionStatus.APPROVED  # the status reached before any deployment
    deployments: tuple[tuple[str, dt.datetime], ...] = ()  # (site code, started at)
    retire_reason: str = ""  # retired once it is live nowhere


@dataclass(frozen=True)
class DemoModel:
    fields: Mapping[str, Any]
    clinical_owner: str
    technical_owner: str
    versions: tuple[DemoVersion, ...] = field(default=())


def _metric(value: float, low: float, high: float, n: int) -> dict[str, float | int]:
    return {"value": value, "ci_low": low, "ci_high": high, "n": n}


def _subgroups(metric: str, rows: Mapping[str, tuple[float, float, float, int]]) -> dict[str, Any]:
    return {name: {metric: _metric(*row)} for name, row in rows.items()}


def _num(
    name: str,
    unit: str,
    low: float,
    high: float,
    feed: str,
    description: str,
    *,
    optional: bool = False,
) -> dict[str, Any]:
    return {
        "name": name,
        "dtype": "numeric",
        "unit": unit,
        "min_value": low,
        "max_value": high,
        "required": not optional,
        "missing_allowed": optional,
        "feed": feed,
        "description": description,
    }


def _cat(name: str, categories: list[str], feed: str, description: str) -> dict[str, Any]:
    return {
        "name": name,
        "dtype": "categorical",
        "categories": categories,
        "required": True,
        "feed": feed,
        "description": description,
    }


def _bool(name: str, feed: str, description: str, *, optional: bool = False) -> dict[str, Any]:
    return {
        "name": name,
        "dtype": "boolean",
        "required": not optional,
        "missing_allowed": optional,
        "feed": feed,
        "description": description,
    }


AGE_BANDS = ["18-44", "45-64", "65-79", "80+"]
SEX = ["female", "male"]
RACE_ETHNICITY = ["Asian", "Black", "Hispanic", "White", "Other or unknown"]
PAYERS = ["Medicare", "Medicaid", "Commercial", "Self-pay or uninsured"]


def _cohorts(
    *extra: Mapping[str, Any], ages: list[str] = AGE_BANDS
) -> tuple[Mapping[str, Any], ...]:
    return (
        {"name": "age_band", "values": ages, "description": "Age at the time of prediction."},
        {
            "name": "sex",
            "values": SEX,
            "description": "Administrative sex recorded at registration.",
        },
        {
            "name": "race_ethnicity",
            "values": RACE_ETHNICITY,
            "description": "Self-reported; used for monitoring only, never as a model input.",
        },
        {"name": "payer", "values": PAYERS, "description": "Primary payer at the encounter."},
        *extra,
    )


# Sepsis early warning -------------------------------------------------------------------------

SEPSIS_FEATURES_V1 = (
    _num("heart_rate", "beats/min", 20, 250, "ehr-vitals", "Most recent heart rate."),
    _num("resp_rate", "breaths/min", 4, 60, "ehr-vitals", "Most recent respiratory rate."),
    _num("temperature", "°C", 30, 43, "ehr-vitals", "Most recent core or oral temperature."),
    _num("sbp", "mmHg", 40, 260, "ehr-vitals", "Most recent systolic blood pressure."),
    _num("spo2", "%", 50, 100, "ehr-vitals", "Most recent peripheral oxygen saturation."),
    _bool(
        "altered_mentation",
        "ehr-vitals",
        "New confusion or GCS below 15 on the last nursing assessment.",
        optional=True,
    ),
    _num("wbc", "10^9/L", 0, 100, "lab-results", "White cell count, last 24 h.", optional=True),
    _num(
        "creatinine", "mg/dL", 0.1, 20, "lab-results", "Serum creatinine, last 48 h.", optional=True
    ),
    _num("age", "years", 18, 110, "adt-orders", "Age at the time of prediction."),
)
SEPSIS_FEATURES_V11 = (
    *SEPSIS_FEATURES_V1,
    _num("lactate", "mmol/L", 0, 30, "lab-results", "Serum lactate, last 24 h.", optional=True),
    _cat(
        "care_unit",
        ["medical_ward", "surgical_ward", "step_down", "oncology_ward"],
        "adt-orders",
        "The patient's current care unit (ICU is out of scope).",
    ),
)
SEPSIS_COHORTS = _cohorts(
    {
        "name": "service_line",
        "values": ["Medicine", "Surgery", "Oncology", "Cardiology"],
        "description": "Admitting service line.",
    },
)
SEPSIS_DEMOGRAPHICS = {
    "age_band": {"18-44": 0.17, "45-64": 0.30, "65-79": 0.33, "80+": 0.20},
    "sex": {"female": 0.50, "male": 0.50},
    "race_ethnicity": {
        "Asian": 0.07,
        "Black": 0.20,
        "Hispanic": 0.14,
        "White": 0.55,
        "Other or unknown": 0.04,
    },
    "payer": {
        "Medicare": 0.49,
        "Medicaid": 0.19,
        "Commercial": 0.29,
        "Self-pay or uninsured": 0.03,
    },
}
SEPSIS_COMMON: dict[str, Any] = {
    "training_data_source": "Inpatient EHR extract from the North Valley Health data warehouse "
    "(NORTH and SOUTH): flowsheet vitals, resulted labs, ADT events and "
    "orders, joined per encounter and sampled every hour of the stay.",
    "inclusion_criteria": "Adult (18+) inpatient encounters on medical, surgical, step-down and "
    "oncology wards with at least one full set of vital signs.",
    "exclusion_criteria": "ICU stays; obstetric and paediatric encounters; patients on comfort "
    "care; hours after a sepsis event or antibiotic start; encounters "
    "with sepsis present on admission.",
    "label_definition": "Sepsis onset within the next 12 hours, by the CDC Adult Sepsis Event "
    "definition: blood culture drawn plus at least 4 qualifying antimicrobial "
    "days, with at least one new organ dysfunction (vasopressor, mechanical "
    "ventilation, lactate ≥ 2 mmol/L, creatinine doubling, bilirubin doubling "
    "or platelet fall ≥ 50%) within ±2 days of the culture.",
    "demographics_summary": SEPSIS_DEMOGRAPHICS,
    "sensitive_variables": "Age is an input. Sex, race, ethnicity, language, payer and social "
    "determinants are not inputs; they are used only to report and "
    "monitor performance per subgroup.",
}

SEPSIS_V1 = DemoVersion(
    fields={
        **SEPSIS_COMMON,
        "version": "1.0.0",
        "artifact_uri": "s3://nvh-models/sepsis-ews/1.0.0/model.onnx",
        "artifact_sha256": "3f6c0a9e1b7d42c5a8e9f0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c0d1",
        "training_window_start": dt.date(2019, 1, 1),
        "training_window_end": dt.date(2022, 12, 31),
        "training_set_size": 61240,
        "code_ref": "git@git.nvh.example:clinical-ai/sepsis-ews.git@v1.0.0",
        "parameters": {
            "algorithm": "LightGBM",
            "n_estimators": 350,
            "max_depth": 6,
            "learning_rate": 0.05,
            "calibration": "none",
            "prediction_horizon_hours": 12,
        },
        "decision_thresholds": {"alert": 0.12},
        "validation_results": {
            "overall": {
                "auroc": _metric(0.818, 0.803, 0.833, 12610),
                "auprc": _metric(0.274, 0.249, 0.301, 12610),
                "calibration_slope": _metric(0.88, 0.81, 0.95, 12610),
                "oe_ratio": _metric(1.14, 1.06, 1.22, 12610),
                "brier": _metric(0.052, 0.049, 0.055, 12610),
            },
            "subgroups": _subgroups(
                "auroc",
                {
                    "age_band=18-44": (0.842, 0.806, 0.878, 2150),
                    "age_band=80+": (0.781, 0.750, 0.812, 2600),
                    "sex=female": (0.822, 0.801, 0.843, 6290),
                    "sex=male": (0.814, 0.793, 0.835, 6320),
                    "race_ethnicity=Black": (0.799, 0.768, 0.830, 2480),
                    "race_ethnicity=White": (0.824, 0.806, 0.842, 7030),
                },
            ),
            "process": "Temporal validation by the clinical AI team, reviewed by the sepsis "
            "committee; confidence intervals from 2,000 encounter-level bootstrap "
            "resamples.",
            "dataset": "12,610 adult ward encounters (742 sepsis events) at NORTH and SOUTH, "
            "January–June 2023, never used for training or tuning.",
            "test_type": "Internal, temporal hold-out at both development sites.",
        },
    },
    features=SEPSIS_FEATURES_V1,
    cohorts=SEPSIS_COHORTS,
    deployments=(("NORTH", _utc(2023, 10, 2)), ("SOUTH", _utc(2023, 11, 6))),
    retire_reason="Superseded by 1.1.0 at every site: 1.0.0 over-predicted risk (O:E 1.14) "
    "and is retired.",
)

SEPSIS_V11 = DemoVersion(
    fields={
        **SEPSIS_COMMON,
        "version": "1.1.0",
        "artifact_uri": "s3://nvh-models/sepsis-ews/1.1.0/model.onnx",
        "artifact_sha256": "9b2e47d1c0a3f5e8d6b4a2c1e0f9d8c7b6a5f4e3d2c1b0a9f8e7d6c5b4a3f2e1",
        "training_window_start": dt.date(2020, 7, 1),
        "training_window_end": dt.date(2024, 6, 30),
        "training_set_size": 74815,
        "code_ref": "git@git.nvh.example:clinical-ai/sepsis-ews.git@v1.1.0",
        "parameters": {
            "algorithm": "LightGBM",
            "n_estimators": 400,
            "max_depth": 6,
            "learning_rate": 0.05,
            "calibration": "isotonic (2024 Q2 data)",
            "prediction_horizon_hours": 12,
        },
        "decision_thresholds": {"alert": 0.12, "urgent_review": 0.30},
        "validation_results": {
            "overall": {
                "auroc": _metric(0.842, 0.831, 0.853, 18240),
                "auprc": _metric(0.312, 0.289, 0.336, 18240),
                "sensitivity_at_alert": _metric(0.71, 0.68, 0.74, 1113),
                "ppv_at_alert": _metric(0.19, 0.18, 0.21, 4150),
                "calibration_slope": _metric(0.97, 0.91, 1.03, 18240),
                "calibration_intercept": _metric(-0.02, -0.08, 0.04, 18240),
                "oe_ratio": _metric(1.03, 0.97, 1.09, 18240),
                "brier": _metric(0.048, 0.046, 0.050, 18240),
            },
            "subgroups": _subgroups(
                "auroc",
                {
                    "age_band=18-44": (0.861, 0.829, 0.893, 3120),
                    "age_band=45-64": (0.848, 0.829, 0.867, 5480),
                    "age_band=65-79": (0.836, 0.818, 0.854, 6010),
                    "age_band=80+": (0.809, 0.784, 0.834, 3630),
                    "sex=female": (0.845, 0.829, 0.861, 9110),
                    "sex=male": (0.839, 0.823, 0.855, 9130),
                    "race_ethnicity=Asian": (0.851, 0.806, 0.896, 1280),
                    "race_ethnicity=Black": (0.826, 0.800, 0.852, 3650),
                    "race_ethnicity=Hispanic": (0.838, 0.806, 0.870, 2560),
                    "race_ethnicity=White": (0.846, 0.831, 0.861, 10020),
                    "race_ethnicity=Other or unknown": (0.830, 0.770, 0.890, 730),
                    "payer=Medicare": (0.829, 0.813, 0.845, 8920),
                    "payer=Medicaid": (0.836, 0.809, 0.863, 3410),
                    "payer=Commercial": (0.857, 0.836, 0.878, 5320),
                    "payer=Self-pay or uninsured": (0.820, 0.750, 0.890, 590),
                    "service_line=Medicine": (0.845, 0.830, 0.860, 9800),
                    "service_line=Surgery": (0.828, 0.801, 0.855, 3900),
                    "service_line=Oncology": (0.812, 0.779, 0.845, 2400),
                    "service_line=Cardiology": (0.851, 0.819, 0.883, 2140),
                },
            ),
            "process": "Temporal validation by the clinical AI team (Priya Raman) with an "
            "independent re-analysis by the quality and safety office; protocol "
            "pre-registered with the sepsis committee. Metrics per encounter at the "
            "first alert or the last prediction; 95% intervals from 2,000 "
            "encounter-level bootstrap resamples. Report NVH-CAI-VR-2025-03.",
            "dataset": "18,240 adult ward encounters (1,113 sepsis events, 6.1%) at NORTH and "
            "SOUTH, July–December 2024, after the training window and never used for "
            "training, tuning or calibration.",
            "test_type": "Internal, temporal hold-out at both development sites; silent "
            "(shadow) run at NORTH for 8 weeks before go-live. No external "
            "validation outside North Valley Health yet.",
        },
    },
    features=SEPSIS_FEATURES_V11,
    cohorts=SEPSIS_COHORTS,
    deployments=(
        ("NORTH", _utc(2025, 4, 7)),
        ("SOUTH", _utc(2025, 5, 5)),
        ("EAST", _utc(2025, 9, 8)),
        ("WEST", _utc(2025, 10, 6)),
    ),
)

SEPSIS = DemoModel(
    clinical_owner="director",
    technical_owner="mlengineer",
    fields={
        "slug": "sepsis-ews",
        "name": "Inpatient sepsis early warning",
        "summary": "Estimates, every hour, each adult ward patient's risk of developing sepsis "
        "in the next 12 hours from routinely charted vital signs, laboratory results "
        "and the care unit. When the risk crosses the alert threshold the charge "
        "nurse and the covering clinician are asked to perform a bedside sepsis "
        "screen; the model does not diagnose sepsis or order treatment.",
        "keywords": "sepsis, early warning, deterioration, inpatient, nursing",
        "intended_use": "Prompts an earlier bedside sepsis screen on adult medical, surgical, "
        "step-down and oncology wards. Runs hourly on the latest charted data; a "
        "score at or above the alert threshold places a Best Practice Advisory "
        "in the charge nurse's worklist and pages the covering clinician. The "
        "screen and any treatment follow the hospital sepsis pathway.",
        "intended_users": "Ward charge nurses and bedside nurses; covering hospitalists and "
        "surgical residents; the rapid response team.",
        "decision_role": "informs",
        "how_to_use": "Treat an alert as a prompt to look, not as a diagnosis: assess the "
        "patient within 30 minutes, complete the sepsis screen, and document the "
        "outcome (sepsis suspected / not suspected / already treated) in the "
        "advisory. A score below the threshold never rules sepsis out: escalate "
        "on clinical concern as usual. The advisory shows the three inputs that "
        "contributed most to the score.",
        "intended_population": "Adults (18 years and over) admitted to general medical, "
        "surgical, step-down and oncology wards at the four North Valley Health "
        "hospitals (NORTH, SOUTH, EAST, WEST).",
        "intended_setting": "Adult inpatient wards of acute-care hospitals, with vital signs "
        "charted at least every 4 hours.",
        "exclusions": "Intensive care units, emergency department, obstetric and paediatric "
        "patients, patients on comfort care or with a documented decision to "
        "limit treatment, patients already on sepsis treatment. Not for use as a "
        "diagnostic test, for billing or coding, or for research without IRB "
        "approval.",
        "known_limitations": "Relies on charting: late or missing vital signs delay the score "
        "(missing required vitals defer the case to a human). About four "
        "in five alerts are not followed by sepsis (PPV 0.19 at the alert "
        "threshold); alert fatigue is monitored through override rates. "
        "Discrimination is lower in patients aged 80 and over and on "
        "oncology wards, where chronic abnormalities mimic deterioration.",
        "known_biases": "The label depends on blood cultures being drawn, so under-tested "
        "groups may be under-represented among positives. Temperature measured "
        "by temporal-artery thermometers reads lower in some patients; SpO2 "
        "over-reads in patients with darker skin (occult hypoxaemia), which may "
        "delay alerts for Black patients. Subgroup AUROC for Black patients is "
        "0.826 against 0.846 for White patients, within overlapping intervals.",
        "risk_tier": "high",
        "status": "active",
        "contact": f"sepsis-ews@{MAIL}",
        "developer": "North Valley Health Clinical AI team (in-house)",
        "funding_source": "North Valley Health operating budget for quality improvement; no "
        "external or commercial funding.",
        "regulatory_status": "Not FDA cleared. Operated as non-device clinical decision "
        "support under the 21st Century Cures Act criteria (the basis of "
        "each alert is shown to the clinician), reviewed by the legal and "
        "compliance office.",
        "ehr_compatibility": "Scores delivered to the inpatient EHR through an HL7 FHIR R4 "
        "RiskAssessment resource and a Best Practice Advisory.",
        "output_type": "prediction",
        "output_description": "Probability (0–1) of sepsis onset within 12 hours, refreshed "
        "hourly, with the top three contributing inputs.",
        "model_type": "Gradient-boosted decision trees (LightGBM) with isotonic calibration.",
        "foundation_models": "None: trained from scratch on structured EHR data; no foundation "
        "or large language model is used.",
        "fairness_approach": "Performance is reported and monitored per age band, sex, "
        "race/ethnicity, payer and service line, each with a confidence "
        "interval. A subgroup whose AUROC interval falls wholly below the "
        "overall interval, or whose calibration slope leaves 0.8–1.2, "
        "blocks release until reviewed by the quality and safety office.",
        "bias_mitigation": "Race, ethnicity, language and payer are excluded as inputs. Training "
        "data from both hospitals; the alert threshold was chosen to keep "
        "sensitivity within 5 points across race/ethnicity groups in "
        "validation. SpO2 is read together with respiratory rate and mentation, "
        "never as the only sign of deterioration.",
        "monitoring_process": "Vigil monitors every deployment daily: data quality and feed "
        "staleness per site, feature and score drift, calibration (slope, "
        "O:E) and AUROC over rolling 30-day windows, deferral and override "
        "rates, and outcome rates per cohort. Monthly review by the sepsis "
        "committee; quarterly report to the AI governance committee.",
        "update_process": "Recalibration when calibration drifts while AUROC holds; retraining "
        "when AUROC falls below 0.80 for two consecutive months or the EHR "
        "charting changes. Red alerts are acknowledged within 1 hour; a "
        "confirmed safety problem freezes the deployment (all cases deferred "
        "to clinicians) within 4 hours, and rollback to the previous version "
        "is one signed release away.",
        "change_control_plan": "Planned modifications: periodic recalibration and threshold "
        "adjustment within ±0.03. Protocol: data extract refreshed from "
        "the warehouse, retraining with the frozen feature spec, temporal "
        "validation on the latest 6 months, subgroup review, signed "
        "release (medical director and quality lead). Impact assessment "
        "of expected alert volume per ward before each change; any new "
        "input or population is a new model review.",
        "required_expertise": "Registered nurses and physicians trained in the hospital sepsis "
        "pathway; a 20-minute e-learning module on the advisory is "
        "required before access.",
        "missing_input_handling": "Missing vital signs (heart rate, respiratory rate, "
        "temperature, SBP, SpO2, age, care unit) defer the case: no "
        "score is shown and the case goes to the review queue. "
        "Missing labs are allowed and handled natively by the trees; "
        "values outside the allowed range are rejected at the gate.",
        "publications": "Singer M, et al. The Third International Consensus Definitions for "
        "Sepsis and Septic Shock (Sepsis-3). JAMA. 2016;315(8):801-810.\n"
        "Wong A, et al. External Validation of a Widely Implemented Proprietary "
        "Sepsis Prediction Model in Hospitalized Patients. JAMA Intern Med. "
        "2021;181(8):1065-1070.\n"
        "North Valley Health internal validation report NVH-CAI-VR-2025-03 "
        "(sepsis-ews 1.1.0), February 2025.",
        "clinical_trials": "None registered. A stepped-wedge evaluation of time to antibiotics "
        "across NORTH and SOUTH wards is planned (protocol in preparation).",
        "patient_disclosure": "Patients are told in the admission information leaflet that "
        "computer tools help staff spot deterioration; no individual "
        "consent is sought, as for other clinical decision support "
        "(approved by the ethics committee).",
        "stakeholders_consulted": "Sepsis committee, ward nursing leads, hospitalists, rapid "
        "response team, patient and family advisory council, health "
        "equity office.",
    },
    versions=(SEPSIS_V1, SEPSIS_V11),
)

# 30-day readmission ---------------------------------------------------------------------------

READMIT_FEATURES = (
    _num("age", "years", 18, 110, "adt-orders", "Age at discharge."),
    _num("length_of_stay_days", "days", 0, 365, "adt-orders", "Length of the index stay."),
    _bool("emergent_admission", "adt-orders", "Admitted through the emergency department."),
    _num(
        "charlson_index",
        "points",
        0,
        37,
        "adt-orders",
        "Charlson comorbidity index from coded diagnoses.",
    ),
    _num("ed_visits_6mo", "visits", 0, 60, "claims", "Emergency visits in the prior 6 months."),
    _num("admissions_12mo", "admissions", 0, 50, "claims", "Admissions in the prior 12 months."),
    _num(
        "active_medications",
        "medications",
        0,
        80,
        "adt-orders",
        "Active medications on the discharge medication list.",
    ),
    _cat(
        "discharge_disposition",
        ["home", "home_health", "skilled_nursing", "rehab", "other"],
        "adt-orders",
        "Planned discharge destination.",
    ),
    _num(
        "hemoglobin",
        "g/dL",
        3,
        20,
        "lab-results",
        "Last haemoglobin before discharge.",
        optional=True,
    ),
    _num(
        "sodium", "mmol/L", 100, 170, "lab-results", "Last sodium before discharge.", optional=True
    ),
)
READMIT_COHORTS = _cohorts(
    {
        "name": "service_line",
        "values": ["Medicine", "Surgery", "Cardiology", "Oncology"],
        "description": "Discharging service line.",
    },
)
READMIT_COMMON: dict[str, Any] = {
    "training_data_source": "Data warehouse extract of adult discharges at NORTH and SOUTH "
    "(ADT, coded diagnoses, medication lists, labs) linked to the "
    "regional payer claims feed for prior utilisation.",
    "training_window_start": dt.date(2021, 1, 1),
    "training_window_end": dt.date(2023, 12, 31),
    "training_set_size": 96420,
    "inclusion_criteria": "Adult (18+) inpatient discharges alive to home, home health, "
    "skilled nursing or rehabilitation.",
    "exclusion_criteria": "Deaths in hospital, transfers to another acute hospital, discharges "
    "against medical advice, obstetric and psychiatric admissions, hospice "
    "discharges.",
    "label_definition": "Unplanned readmission to any acute hospital within 30 days of "
    "discharge (CMS planned-readmission algorithm v4.0 excludes planned "
    "returns), from the health system's records and payer claims.",
    "demographics_summary": {
        "age_band": {"18-44": 0.19, "45-64": 0.31, "65-79": 0.32, "80+": 0.18},
        "sex": {"female": 0.52, "male": 0.48},
        "race_ethnicity": {
            "Asian": 0.06,
            "Black": 0.21,
            "Hispanic": 0.15,
            "White": 0.53,
            "Other or unknown": 0.05,
        },
        "payer": {
            "Medicare": 0.46,
            "Medicaid": 0.22,
            "Commercial": 0.28,
            "Self-pay or uninsured": 0.04,
        },
    },
    "sensitive_variables": "Age is an input. Payer, race, ethnicity, sex, language and "
    "neighbourhood deprivation are deliberately not inputs; they are "
    "used only for subgroup monitoring.",
    "parameters": {
        "algorithm": "logistic regression",
        "penalty": "l2",
        "C": 0.5,
        "spline_knots": {"age": 4, "length_of_stay_days": 3},
    },
}
READMIT_VALIDATION = {
    "overall": {
        "auroc": _metric(0.74, 0.73, 0.75, 41200),
        "auprc": _metric(0.33, 0.31, 0.35, 41200),
        "calibration_slope": _metric(1.02, 0.96, 1.08, 41200),
        "oe_ratio": _metric(0.98, 0.95, 1.01, 41200),
        "brier": _metric(0.101, 0.099, 0.103, 41200),
    },
    "subgroups": _subgroups(
        "auroc",
        {
            "age_band=18-44": (0.77, 0.75, 0.79, 7830),
            "age_band=45-64": (0.75, 0.73, 0.77, 12770),
            "age_band=65-79": (0.73, 0.71, 0.75, 13180),
            "age_band=80+": (0.70, 0.68, 0.72, 7420),
            "sex=female": (0.74, 0.73, 0.75, 21420),
            "sex=male": (0.74, 0.72, 0.76, 19780),
            "race_ethnicity=Black": (0.73, 0.71, 0.75, 8650),
            "race_ethnicity=Hispanic": (0.74, 0.71, 0.77, 6180),
            "race_ethnicity=White": (0.75, 0.74, 0.76, 21840),
            "payer=Medicaid": (0.72, 0.70, 0.74, 9060),
            "payer=Medicare": (0.73, 0.72, 0.74, 18950),
            "payer=Commercial": (0.77, 0.75, 0.79, 11540),
        },
    ),
    "process": "Temporal validation by the clinical AI team; calibration reviewed by the "
    "transitions-of-care committee. Intervals from 1,000 bootstrap resamples by "
    "patient. Report NVH-CAI-VR-2024-07.",
    "dataset": "41,200 discharges (6,430 readmissions, 15.6%) at NORTH and SOUTH, January–June "
    "2024, not used for training.",
    "test_type": "Internal, temporal hold-out at both sites.",
}
READMIT = DemoModel(
    clinical_owner="informaticist",
    technical_owner="mlengineer",
    fields={
        "slug": "readmit-30d",
        "name": "30-day readmission risk",
        "summary": "Estimates at discharge the probability that an adult inpatient is "
        "readmitted unplanned within 30 days. Transitional-care nurses use the ranked "
        "list each morning to decide who gets a follow-up call within 48 hours and a "
        "clinic visit within 7 days.",
        "keywords": "readmission, transitions of care, discharge planning, population health",
        "intended_use": "Computed once when the discharge order is signed; the score and risk "
        "band appear on the transitional-care worklist, which nurses work in "
        "order of risk.",
        "intended_users": "Transitional-care nurses, case managers and discharge planners.",
        "decision_role": "informs",
        "how_to_use": "High band (≥ 0.25): follow-up call within 48 hours and a clinic "
        "appointment within 7 days. Moderate band (0.15–0.25): call within 72 "
        "hours. The band adds to, never replaces, clinical judgement; case "
        "managers may escalate any patient.",
        "intended_population": "Adults (18+) discharged alive from NORTH or SOUTH to home, home "
        "health, skilled nursing or rehabilitation.",
        "intended_setting": "Hospital discharge and transitional-care programme.",
        "exclusions": "Paediatric, obstetric, psychiatric and hospice discharges; transfers to "
        "other acute hospitals. Must not be used to deny admission, to select "
        "patients for financial reasons, or by payers.",
        "known_limitations": "Readmissions outside the region are seen only through claims, "
        "which arrive up to 90 days late. Social factors (housing, "
        "caregiver support) are not captured. Discrimination is moderate "
        "(AUROC 0.74), typical of readmission models.",
        "known_biases": "Prior utilisation inputs reflect access to care: patients with poor "
        "access have fewer recorded visits and may be under-ranked. AUROC is "
        "lower for Medicaid (0.72) than commercially insured patients (0.77).",
        "risk_tier": "moderate",
        "status": "active",
        "contact": f"readmit-30d@{MAIL}",
        "developer": "North Valley Health Clinical AI team (in-house), adapted from the LACE "
        "index.",
        "funding_source": "North Valley Health population health programme.",
        "regulatory_status": "Not a medical device: operational risk stratification for care "
        "management; reviewed by the compliance office.",
        "ehr_compatibility": "Score written to the discharge summary and the care-management "
        "worklist through HL7 FHIR R4 RiskAssessment.",
        "output_type": "prediction",
        "output_description": "Probability (0–1) of unplanned readmission within 30 days, with "
        "a high / moderate / low band.",
        "model_type": "Penalised logistic regression with restricted cubic splines.",
        "foundation_models": "None.",
        "fairness_approach": "AUROC and calibration are reported per age band, sex, "
        "race/ethnicity and payer; the worklist's share of high-band "
        "patients per group is compared with the group's observed "
        "readmission rate every quarter.",
        "bias_mitigation": "Payer and race are excluded as inputs; a claims-based access-to-care "
        "audit checks that low-utilisation patients are not systematically "
        "under-ranked.",
        "monitoring_process": "Vigil monitors weekly windows (outcomes mature after 30 days, "
        "claims after 90): data quality, drift, calibration and AUROC per "
        "site and cohort; quarterly review by the transitions-of-care "
        "committee.",
        "update_process": "Annual recalibration on the latest 12 months; retraining when AUROC "
        "falls below 0.70. Problems are triaged within 2 business days.",
        "change_control_plan": "Planned modifications: annual recalibration of the intercept and "
        "slope. Protocol: refresh extract, refit on the latest 3 years, "
        "temporal validation, subgroup review, signed release. Impact "
        "assessment: projected worklist volume per nurse.",
        "required_expertise": "Registered nurses or case managers trained in transitional care.",
        "missing_input_handling": "Missing labs are imputed with the median of the training "
        "data and flagged on the worklist; missing ADT inputs defer "
        "the case to manual review.",
        "publications": "van Walraven C, et al. Derivation and validation of an index to "
        "predict early death or unplanned readmission after discharge from "
        "hospital to the community. CMAJ. 2010;182(6):551-557.\n"
        "Kansagara D, et al. Risk prediction models for hospital readmission: a "
        "systematic review. JAMA. 2011;306(15):1688-1698.\n"
        "North Valley Health internal validation report NVH-CAI-VR-2024-07.",
        "clinical_trials": "Not applicable: operational tool; effect on readmissions is tracked "
        "as a quality measure.",
        "patient_disclosure": "Described in the hospital's notice of privacy practices; no "
        "individual consent.",
        "stakeholders_consulted": "Transitions-of-care committee, case management, primary care "
        "network, patient and family advisory council.",
    },
    versions=(
        DemoVersion(
            fields={
                **READMIT_COMMON,
                "version": "2.0.0",
                "artifact_uri": "s3://nvh-models/readmit-30d/2.0.0/model.joblib",
                "artifact_sha256": "c4e1d2b3a4f5e6d7c8b9a0f1e2d3c4b5"
                "a6f7e8d9c0b1a2f3e4d5c6b7a8f9e0d1",
                "code_ref": "git@git.nvh.example:clinical-ai/readmit-30d.git@v2.0.0",
                "decision_thresholds": {"high_risk": 0.25, "moderate_risk": 0.15},
                "validation_results": READMIT_VALIDATION,
            },
            features=READMIT_FEATURES,
            cohorts=READMIT_COHORTS,
            deployments=(("NORTH", _utc(2024, 11, 4)), ("SOUTH", _utc(2024, 12, 2))),
        ),
        DemoVersion(
            fields={
                **READMIT_COMMON,
                "version": "2.1.0",
                "artifact_uri": "s3://nvh-models/readmit-30d/2.1.0/model.joblib",
                "artifact_sha256": "d5f2e3c4b5a6f7e8d9c0b1a2f3e4d5c6"
                "b7a8f9e0d1c2b3a4f5e6d7c8b9a0f1e2",
                "code_ref": "git@git.nvh.example:clinical-ai/readmit-30d.git@v2.1.0",
                "training_window_start": dt.date(2022, 1, 1),
                "training_window_end": dt.date(2024, 12, 31),
                "training_set_size": 98110,
                "decision_thresholds": {"high_risk": 0.25, "moderate_risk": 0.15},
                "validation_results": {
                    **READMIT_VALIDATION,
                    "dataset": "20,480 discharges at NORTH and SOUTH, January–March 2025.",
                },
            },
            features=READMIT_FEATURES,
            cohorts=READMIT_COHORTS,
            status=VersionStatus.CANDIDATE,
        ),
    ),
)

# No-show outreach -----------------------------------------------------------------------------

NOSHOW = DemoModel(
    clinical_owner="informaticist",
    technical_owner="mlengineer",
    fields={
        "slug": "noshow-outreach",
        "name": "Clinic no-show outreach prioritiser",
        "summary": "Ranks next week's outpatient appointments at the Eastside clinics by the "
        "chance the patient misses them, so outreach staff call the patients most "
        "likely to need a reminder, transport help or a switch to telehealth.",
        "keywords": "no-show, missed appointment, outreach, ambulatory, access",
        "intended_use": "Runs nightly over appointments 2–10 days ahead; the outreach "
        "coordinators' call list is ordered by score. Outreach offers help "
        "(reminder, transport voucher, interpreter, telehealth, rebooking).",
        "intended_users": "Clinic outreach coordinators and schedulers.",
        "decision_role": "informs",
        "how_to_use": "Work the call list from the top each morning; record the outcome of "
        "each call. Scores are never shown to patients and never used to change "
        "how the appointment is booked.",
        "intended_population": "Patients of any age with a scheduled in-person outpatient "
        "appointment at the Eastside Medical Center clinics.",
        "intended_setting": "Ambulatory clinics: primary care, cardiology, endocrinology, "
        "paediatrics.",
        "exclusions": "Must not be used for overbooking or double-booking, to deny or delay "
        "appointments, or to discharge patients from a practice. Not for "
        "same-day, urgent or procedural appointments, or inpatient settings.",
        "known_limitations": "Past attendance drives the score, so new patients get an "
        "uninformative score. Weather and transit disruptions are not "
        "modelled.",
        "known_biases": "No-show history reflects barriers (transport, work hours, cost) that "
        "fall unevenly by race and income; used for overbooking, such scores "
        "have been shown to give Black patients longer waits (Samorani et al., "
        "2022). Here the score only triggers supportive outreach, and "
        "overbooking is out of scope.",
        "risk_tier": "low",
        "status": "active",
        "contact": f"noshow-outreach@{MAIL}",
        "developer": "North Valley Health Clinical AI team with the ambulatory operations office.",
        "funding_source": "Ambulatory operations budget.",
        "regulatory_status": "Not a medical device (administrative scheduling support).",
        "ehr_compatibility": "Reads the scheduling feed (HL7 v2 SIU); writes the call list to "
        "the outreach work queue.",
        "output_type": "prediction",
        "output_description": "Probability (0–1) that the patient misses the appointment "
        "without cancelling.",
        "model_type": "Gradient-boosted decision trees (XGBoost).",
        "foundation_models": "None.",
        "fairness_approach": "Calibration and AUROC per age band, sex, race/ethnicity and payer; "
        "the share of each group reached by outreach is compared with its "
        "no-show rate monthly.",
        "bias_mitigation": "Race, ethnicity, payer, address and travel distance are excluded as "
        "inputs; the score is only used to offer help, which cannot "
        "disadvantage the patient.",
        "monitoring_process": "Vigil monitors nightly batches: feed staleness, drift, "
        "calibration and outcome rates per cohort over 30-day windows; "
        "monthly review by ambulatory operations.",
        "update_process": "Retrained yearly, or when clinic templates change; problems "
        "corrected within 5 business days (the outreach list can fall back "
        "to appointment order).",
        "change_control_plan": "Planned modifications: yearly retraining with the same inputs. "
        "Protocol: refresh 3 years of scheduling data, temporal "
        "validation, subgroup review, signed release by the clinical "
        "owner. Impact assessment: call volume per coordinator.",
        "required_expertise": "Outreach coordinators trained in the call script and available "
        "support services.",
        "missing_input_handling": "Missing confirmation status is allowed; appointments with "
        "missing scheduling inputs are placed at the bottom of the "
        "list and flagged.",
        "publications": "Samorani M, et al. Overbooked and Overlooked: Machine Learning and "
        "Racial Bias in Medical Appointment Scheduling. Manufacturing & Service "
        "Operations Management. 2022;24(6):2825-2842.\n"
        "North Valley Health QI report QI-2025-014 (outreach pilot).",
        "clinical_trials": "Not applicable. A randomised outreach pilot (QI-2025-014, "
        "February–April 2025) compared score-ordered with date-ordered call "
        "lists.",
        "patient_disclosure": "Not required: administrative use; outreach calls identify the "
        "clinic, not the model.",
        "stakeholders_consulted": "Ambulatory operations, clinic managers, outreach "
        "coordinators, health equity office, patient advisory "
        "council.",
    },
    versions=(
        DemoVersion(
            fields={
                "version": "1.3.0",
                "artifact_uri": "s3://nvh-models/noshow-outreach/1.3.0/model.json",
                "artifact_sha256": "e6a3f4d5c6b7a8f9e0d1c2b3a4f5e6d7"
                "c8b9a0f1e2d3c4b5a6f7e8d9c0b1a2f3",
                "training_data_source": "Scheduling system extract for the Eastside clinics "
                "(appointments, confirmations, check-ins) with patient "
                "age and portal activity.",
                "training_window_start": dt.date(2022, 1, 1),
                "training_window_end": dt.date(2024, 12, 31),
                "training_set_size": 212400,
                "inclusion_criteria": "In-person outpatient appointments booked at least 2 days "
                "ahead at the Eastside clinics.",
                "exclusion_criteria": "Same-day, urgent and procedural appointments; "
                "appointments cancelled by the clinic.",
                "label_definition": "No-show: the patient neither checked in nor cancelled "
                "before the appointment start time.",
                "code_ref": "git@git.nvh.example:clinical-ai/noshow-outreach.git@v1.3.0",
                "demographics_summary": {
                    "age_band": {"0-17": 0.18, "18-44": 0.30, "45-64": 0.29, "65+": 0.23},
                    "sex": {"female": 0.56, "male": 0.44},
                    "payer": {
                        "Medicare": 0.24,
                        "Medicaid": 0.31,
                        "Commercial": 0.39,
                        "Self-pay or uninsured": 0.06,
                    },
                },
                "sensitive_variables": "Age is an input. Race, ethnicity, payer, address and "
                "distance are not inputs.",
                "parameters": {
                    "algorithm": "XGBoost",
                    "n_estimators": 300,
                    "max_depth": 5,
                    "learning_rate": 0.08,
                },
                "decision_thresholds": {"outreach": 0.20},
                "validation_results": {
                    "overall": {
                        "auroc": _metric(0.78, 0.77, 0.79, 38650),
                        "calibration_slope": _metric(0.95, 0.91, 0.99, 38650),
                        "oe_ratio": _metric(1.01, 0.98, 1.04, 38650),
                        "brier": _metric(0.108, 0.106, 0.110, 38650),
                    },
                    "subgroups": _subgroups(
                        "auroc",
                        {
                            "age_band=0-17": (0.76, 0.74, 0.78, 6960),
                            "age_band=65+": (0.79, 0.77, 0.81, 8890),
                            "race_ethnicity=Black": (0.77, 0.75, 0.79, 9120),
                            "race_ethnicity=White": (0.78, 0.77, 0.79, 18210),
                            "payer=Medicaid": (0.76, 0.75, 0.77, 11980),
                            "payer=Commercial": (0.79, 0.78, 0.80, 15070),
                        },
                    ),
                    "process": "Temporal validation by the clinical AI team; reviewed by "
                    "ambulatory operations. Intervals from 1,000 bootstrap resamples "
                    "by patient.",
                    "dataset": "38,650 appointments (5,020 no-shows, 13.0%) at Eastside, "
                    "January–March 2025.",
                    "test_type": "Internal, temporal hold-out; prospective randomised pilot "
                    "(QI-2025-014).",
                },
            },
            features=(
                _num(
                    "lead_time_days",
                    "days",
                    0,
                    365,
                    "scheduling",
                    "Days between booking and appointment.",
                ),
                _num(
                    "prior_noshow_rate_12mo",
                    "fraction",
                    0,
                    1,
                    "scheduling",
                    "Share of the patient's appointments missed in the prior 12 months.",
                ),
                _num(
                    "prior_visits_12mo",
                    "visits",
                    0,
                    200,
                    "scheduling",
                    "Appointments in the prior 12 months.",
                ),
                _cat(
                    "appointment_type",
                    ["new_patient", "follow_up", "annual_exam"],
                    "scheduling",
                    "Visit type.",
                ),
                _cat(
                    "clinic",
                    ["primary_care", "cardiology", "endocrinology", "paediatrics"],
                    "scheduling",
                    "Clinic of the appointment.",
                ),
                _num("hour_of_day", "hour", 0, 23, "scheduling", "Local start hour."),
                _bool(
                    "portal_active",
                    "scheduling",
                    "Patient logged into the portal in the last 90 days.",
                ),
                _bool(
                    "reminder_confirmed",
                    "scheduling",
                    "Patient confirmed the automated reminder.",
                    optional=True,
                ),
                _num("age", "years", 0, 110, "adt-orders", "Age on the appointment date."),
            ),
            cohorts=_cohorts(
                {
                    "name": "clinic",
                    "values": ["primary_care", "cardiology", "endocrinology", "paediatrics"],
                    "description": "Clinic of the appointment.",
                },
                ages=["0-17", "18-44", "45-64", "65+"],
            ),
            deployments=(("EAST", _utc(2025, 8, 4)),),
        ),
    ),
)

MODELS: tuple[DemoModel, ...] = (SEPSIS, READMIT, NOSHOW)

# --- Loading ----------------------------------------------------------------------------------


@dataclass
class SeedLog:
    """What a run did; ``created`` counts the records it made (0 on a repeat run)."""

    write: Callable[[str], None]
    created: int = 0
    tokens: dict[str, str] = field(default_factory=dict)

    def made(self, message: str) -> None:
        self.created += 1
        self.write(f"  created  {message}")

    def kept(self, message: str) -> None:
        self.write(f"  exists   {message}")


def _seed_user(spec: DemoUser, password: str, log: SeedLog) -> Any:
    User = get_user_model()
    group = Group.objects.get(name=str(spec.role))
    user = User.objects.filter(username=spec.username).first()
    if user is None:
        user = User.objects.create_user(
            username=spec.username,
            email=spec.email,
            password=password,
            first_name=spec.first_name,
            last_name=spec.last_name,
        )
        user.groups.add(group)
        record(
            actor=None,
            action="user.create",
            target=user,
            summary=f"Demo user {spec.username} created with role {spec.role}",
            payload={"username": spec.username, "role": str(spec.role)},
        )
        log.made(f"user {spec.username} ({spec.role})")
        return user
    if not user.groups.filter(pk=group.pk).exists():
        user.groups.add(group)
        record(
            actor=None,
            action="user.role_grant",
            target=user,
            summary=f"Demo user {spec.username} given role {spec.role}",
            payload={"username": spec.username, "role": str(spec.role)},
        )
        log.made(f"role {spec.role} for {spec.username}")
    if not user.check_password(password):
        user.set_password(password)
        user.save(update_fields=["password"])
        record(
            actor=None,
            action="user.password_reset",
            target=user,
            summary=f"Demo password reset for {spec.username}",
            payload={"username": spec.username},
        )
        log.made(f"new demo password for {spec.username}")
    else:
        log.kept(f"user {spec.username}")
    return user


def _seed_sites(actor: Any, log: SeedLog) -> dict[str, Site]:
    for code, name in SITES:
        if Site.objects.filter(code=code).exists():
            log.kept(f"site {code}")
        else:
            registry.site_create(actor=actor, code=code, name=name)
            log.made(f"site {code} {name}")
    return {site.code: site for site in Site.objects.filter(code__in=[c for c, _ in SITES])}


def _seed_feeds(actor: Any, log: SeedLog) -> dict[str, DataFeed]:
    for spec in FEEDS:
        if DataFeed.objects.filter(slug=spec["slug"]).exists():
            log.kept(f"feed {spec['slug']}")
        else:
            registry.datafeed_create(actor=actor, fields={**spec, "owner": actor})
            log.made(f"feed {spec['slug']}")
    return {
        feed.slug: feed for feed in DataFeed.objects.filter(slug__in=[f["slug"] for f in FEEDS])
    }


def _seed_version(
    model: ClinicalModel,
    spec: DemoVersion,
    feeds: Mapping[str, DataFeed],
    actor: Any,
    director: Any,
    log: SeedLog,
) -> ModelVersion:
    label = f"{model.slug} {spec.fields['version']}"
    version = model.versions.filter(version=spec.fields["version"]).first()
    if version is not None:
        log.kept(f"version {label} ({version.status})")
        return version
    features = [{**f, "feed": feeds[f["feed"]]} for f in spec.features]
    version = registry.version_register(
        actor=actor, model=model, fields=spec.fields, features=features, cohorts=list(spec.cohorts)
    )
    log.made(f"version {label} with {len(features)} inputs")
    path = [VersionStatus.CANDIDATE, VersionStatus.APPROVED]
    for status in path[: path.index(spec.status) + 1]:
        proposing = status == VersionStatus.CANDIDATE
        reviewer = actor if proposing else director
        reason = (
            "Validation report attached; proposed for review"
            if proposing
            else "Approved by the AI governance committee (demo data)"
        )
        version = registry.version_transition(
            actor=reviewer, version=version, to_status=status, reason=reason
        )
        log.made(f"transition {label} → {status}")
    return version


def _seed_deployments(
    version: ModelVersion,
    spec: DemoVersion,
    sites: Mapping[str, Site],
    users: Mapping[str, Any],
    password: str,
    log: SeedLog,
) -> None:
    """Each go-live is a signed release (authored, signed by the roles the model's tier needs)
    deployed at its sites on its historical date, so the governance checks find the demo's
    live deployments properly signed."""
    from governance import deploy, releases, signing

    by_start: dict[dt.datetime, list[str]] = {}
    for code, started in spec.deployments:
        if Deployment.objects.filter(version=version, site=sites[code]).exists():
            log.kept(f"deployment {version} at {code}")
            continue
        by_start.setdefault(started, []).append(code)
    model = version.model
    low = model.risk_tier == "low"
    author = users["informaticist" if low else "mlengineer"]
    first = not model.versions.exclude(pk=version.pk).filter(deployments__isnull=False).exists()
    for started, codes in sorted(by_start.items()):
        release = releases.release_create(
            actor=author, model=model, kind="new_model" if first else "retrain",
            title=f"Go-live of {version.version} at {', '.join(codes)}",
            rationale=f"Validated by the AI governance committee (demo data); {version.version} "
            f"goes live at {', '.join(codes)}.",
            version=version, sites=[sites[c] for c in codes],
        )  # fmt: skip
        releases.release_submit(actor=author, release=release, password=password)
        signers = {"medical_director": "director", "quality_safety": "quality",
                   "compliance_officer": "compliance", "ml_engineer": "mlengineer"}  # fmt: skip
        for role, _ in releases.required_signers(release):
            signing.release_sign(actor=users[signers[role]], release=release, password=password)
        deploy.release_deploy(actor=users["director"], release=release, at=started)
        log.made(f"release {release.number}: {version} live at {', '.join(codes)} from "
                 f"{started.date().isoformat()}")  # fmt: skip
        first = False


def _retire_if_superseded(
    version: ModelVersion, spec: DemoVersion, actor: Any, log: SeedLog
) -> None:
    version.refresh_from_db()
    if not spec.retire_reason or version.status == VersionStatus.RETIRED:
        return
    if version.deployments.filter(ended_at__isnull=True).exists():
        return
    registry.version_transition(
        actor=actor, version=version, to_status=VersionStatus.RETIRED, reason=spec.retire_reason
    )
    log.made(f"transition {version} → retired")


def _seed_model(
    spec: DemoModel,
    users: Mapping[str, Any],
    sites: Mapping[str, Site],
    feeds: Mapping[str, DataFeed],
    password: str,
    log: SeedLog,
) -> ClinicalModel:
    engineer = users[spec.technical_owner]
    model = ClinicalModel.objects.filter(slug=spec.fields["slug"]).first()
    if model is None:
        model = registry.model_register(
            actor=engineer,
            fields={
                **spec.fields,
                "clinical_owner": users[spec.clinical_owner],
                "technical_owner": engineer,
            },
        )
        log.made(f"model {model.slug} ({model.get_risk_tier_display()} risk)")
    else:
        log.kept(f"model {model.slug}")
    versions = [
        (_seed_version(model, v, feeds, engineer, users["director"], log), v) for v in spec.versions
    ]
    for version, version_spec in versions:
        _seed_deployments(version, version_spec, sites, users, password, log)
    for version, version_spec in versions:
        _retire_if_superseded(version, version_spec, engineer, log)
    return model


def _seed_service_account(model: ClinicalModel, log: SeedLog) -> None:
    if ServiceAccount.objects.filter(name=model.slug).exists():
        log.kept(f"service account {model.slug}")
        return
    issued = service_account_create(actor=None, name=model.slug, model_slugs=[model.slug])
    log.tokens[model.slug] = issued.token
    log.made(f"service account {model.slug} (user svc-{model.slug})")


#: The deferral policy of each live demo version: when the gate hands a case to a human.
POLICIES: dict[tuple[str, str], dict[str, Any]] = {
    ("sepsis-ews", "1.1.0"): {
        "min_confidence": 0.6,
        "threshold_margin": 0.004,
        "population_exclusions": [],
        "safety_rules": [
            {
                "code": "hypotension",
                "text": "Systolic pressure below 80 mmHg needs a clinician now",
                "condition": {"feature": "sbp", "op": "lt", "value": 80},
            },
        ],
        "reason": "Sepsis committee: defer low-confidence and borderline scores (demo data)",
    },
    ("readmit-30d", "2.0.0"): {
        "min_confidence": 0.6,
        "threshold_margin": 0.004,
        "population_exclusions": [],
        "safety_rules": [],
        "reason": "Transitions-of-care committee policy (demo data)",
    },
    ("noshow-outreach", "1.3.0"): {
        "min_confidence": 0.58,
        "threshold_margin": None,
        "population_exclusions": [
            {
                "code": "paediatric",
                "text": "Patients under 18 are out of scope",
                "condition": {"feature": "age", "op": "lt", "value": 18},
            },
        ],
        "safety_rules": [],
        "reason": "Access-centre policy: children are contacted by the paediatric team (demo data)",
    },
}


def _seed_policies(users: Mapping[str, Any], log: SeedLog) -> None:
    from monitoring.models import DeferralPolicy
    from monitoring.policies import policy_create

    for (slug, number), spec in POLICIES.items():
        version = ModelVersion.objects.filter(model__slug=slug, version=number).first()
        if version is None:
            continue
        if DeferralPolicy.objects.filter(version=version).exists():
            log.kept(f"deferral policy of {version}")
            continue
        policy_create(actor=users["informaticist"], version=version, **spec)
        log.made(f"deferral policy v1 of {version}")


#: Who works where: reviewers see the deferred cases of their sites only.
ASSIGNMENTS = (
    ("reviewer", "NORTH"),
    ("reviewer", "SOUTH"),
    ("reviewer", "EAST"),
    ("reviewer", "WEST"),
    ("informaticist", "NORTH"),
    ("informaticist", "SOUTH"),
    ("informaticist", "EAST"),
    ("informaticist", "WEST"),
)


def _seed_assignments(log: SeedLog) -> None:
    from registry.assignments import site_assignment_set
    from registry.models import SiteAssignment

    for username, code in ASSIGNMENTS:
        label = f"{username} at {code}"
        if SiteAssignment.objects.filter(user__username=username, site__code=code).exists():
            log.kept(f"assignment {label}")
            continue
        site_assignment_set(
            actor=None, username=username, site_code=code, assigned=True, via="seed_demo"
        )
        log.made(f"assignment {label}")


@transaction.atomic
def seed_demo(*, password: str, write: Callable[[str], None]) -> SeedLog:
    """Load the demo data set, all or nothing. Returns what it did."""
    log = SeedLog(write=write)
    write("Users")
    users = {spec.username: _seed_user(spec, password, log) for spec in USERS}
    write("Sites and data feeds")
    sites = _seed_sites(users["mlengineer"], log)
    feeds = _seed_feeds(users["dataengineer"], log)
    for spec in MODELS:
        write(f"Model {spec.fields['slug']}")
        model = _seed_model(spec, users, sites, feeds, password, log)
        _seed_service_account(model, log)
    write("Site assignments")
    _seed_assignments(log)
    write("Deferral policies")
    _seed_policies(users, log)
    write("Synthetic hospital traffic through the gate (governance.synthetic)")
    sent = seed_predictions(write=write)
    log.created += sent.created
    write(
        f"  {sent.stored} predictions stored ({sent.defer} deferred to review), "
        f"{sent.rejected} refused; {sent.outcomes} outcomes, {sent.overrides} overrides, "
        f"{sent.reviews} review decisions"
    )
    write("Governance: update policies, review schedules")
    _seed_governance(users, log)
    write("Monitoring: reference profiles, daily profiles, windows (governance.demo_monitoring)")
    summary = seed_monitoring(actor=users["mlengineer"], write=lambda _: None)
    log.created += summary.built_days
    write(
        f"  {summary.built_days} daily profiles built, {summary.evaluations} evaluations: "
        + ", ".join(f"{n} {band}" for band, n in sorted(summary.bands.items()))
    )
    write("Governance checks")
    from governance import checks

    found = checks.run()
    write(f"  {len(found)} finding(s): " + (", ".join(f.summary for f in found) or "none"))
    return log


#: Each model's written recalibration and retraining policy (demo data).
UPDATE_POLICIES: dict[str, dict[str, Any]] = {
    "sepsis-ews": {
        "triggers": {
            "sustained_drift": "Calibration O/E outside 0.8–1.25 at any site for 2 windows",
            "outcome_degradation": "AUC interval below 0.75 overall or in any age band",
            "guideline_change": "A new Surviving Sepsis Campaign bundle or local sepsis pathway",
            "new_data_source": "A new lab analyser or vitals device at any site",
        },
        "retraining_owner": "mlengineer",
        "validation_requirements": "Temporal validation on the latest 6 months at every site; "
        "AUC and calibration slope per age band and sex with 95% intervals; no subgroup worse "
        "than the live version by more than 0.02 AUC.",
        "approval_gates": "Sepsis committee review, then the release's signatures (medical "
        "director, quality and safety).",
        "permitted_data": "Adult inpatient encounters from the EHR data warehouse, de-identified; "
        "no free-text notes.",
        "leakage_controls": "Features only as of the prediction time; outcome labels from 48 h "
        "after it; patients split by patient, not encounter; no post-antibiotic vitals.",
        "min_window_events": 100,
    },
    "readmit-30d": {
        "triggers": {
            "sustained_drift": "Score PSI > 0.2 for 2 windows",
            "workflow_change": "Changes to discharge planning",
        },  # fmt: skip
        "retraining_owner": "mlengineer",
        "validation_requirements": "Temporal validation, calibration by payer and site.",
        "approval_gates": "Transitions-of-care committee, then the medical director's signature.",
        "permitted_data": "Discharges and claims from the warehouse.",
        "leakage_controls": "No data after discharge; patient-level split.",
        "min_window_events": 100,
    },
}


def _seed_governance(users: Mapping[str, Any], log: SeedLog) -> None:
    from governance.models import UpdatePolicy
    from governance.recalibration import update_policy_save
    from governance.reviews import prepare_due_meetings

    for slug, fields in UPDATE_POLICIES.items():
        model = ClinicalModel.objects.filter(slug=slug).first()
        if model is None:
            continue
        if UpdatePolicy.objects.filter(model=model).exists():
            log.kept(f"update policy of {slug}")
            continue
        update_policy_save(actor=users["director"], model=model, fields=fields)
        log.made(f"update policy of {slug}")
    from django.utils import timezone

    prepare_due_meetings(timezone.localdate())


def login_table(password: str) -> list[str]:
    """The demo logins, one line per role, as a fixed-width table."""
    rows = [("Username", "Password", "Role", "Name", "Job")]
    rows += [(u.username, password, str(u.role), u.full_name, u.job) for u in USERS]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = [
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in rows
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return lines
