"""A monitored deployment: the gate's model live at NORTH and SOUTH, a generator of realistic
rows (features, score, outcome, cohort), a reference file from it, and helpers that send days
of traffic and outcomes through the real gate and outcome services."""

from __future__ import annotations

import csv
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from accounts.models import ServiceAccount
from monitoring.gate import PredictionIn, gate_predictions
from monitoring.outcomes import OutcomeIn, outcomes_record
from monitoring.reference import reference_upload
from registry import services as registry
from registry.models import Site
from tests.factories import SiteFactory
from tests.monitoring.conftest import Gate

NS = uuid.UUID("7d4a1c2e-1111-4b7a-9a51-0c0ffee00000")
COLUMNS = ["age", "heart_rate", "lactate", "care_unit", "on_dialysis", "score", "label",
           "age_band", "sex"]  # fmt: skip


def rows(
    n: int,
    *,
    seed: int,
    hr_shift: float = 0.0,
    lactate_missing: float = 0.05,
    event_rate_shift: float = 0.0,
) -> list[dict[str, Any]]:
    """``n`` synthetic patients: the score is a fitted-looking logistic function of the inputs
    and the outcome is drawn from the score (so calibration holds unless shifted)."""
    rng = np.random.default_rng(seed)
    age = rng.normal(62, 15, n).clip(18, 100).round()
    hr = (rng.normal(92, 16, n) + hr_shift).clip(30, 220).round()
    lactate = rng.lognormal(0.5, 0.5, n).clip(0.2, 25).round(2)
    unit = rng.choice(["ward", "icu", "ed"], n, p=[0.6, 0.15, 0.25])
    dialysis = rng.random(n) < 0.05
    logit = -3.3 + 0.025 * (age - 60) + 0.035 * (hr - 90) + 0.45 * lactate + 0.8 * (unit == "icu")
    score = 1 / (1 + np.exp(-logit))
    truth = 1 / (1 + np.exp(-(logit + event_rate_shift)))
    label = (rng.random(n) < truth).astype(int)
    out = []
    for i in range(n):
        band = "18-39" if age[i] < 40 else ("40-64" if age[i] < 65 else "65+")
        out.append(
            {
                "age": float(age[i]),
                "heart_rate": float(hr[i]),
                "lactate": None if rng.random() < lactate_missing else float(lactate[i]),
                "care_unit": str(unit[i]),
                "on_dialysis": bool(dialysis[i]),
                "score": round(float(score[i]), 6),
                "label": int(label[i]),
                "age_band": band,
                "sex": "F" if rng.random() < 0.5 else "M",
            }
        )
    return out


def write_csv(path: Path, data: list[dict[str, Any]], columns: list[str] = COLUMNS) -> Path:
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(columns)
        for row in data:
            writer.writerow(["" if row.get(c) is None else row.get(c) for c in columns])
    return path


@dataclass
class Monitored:
    gate: Gate
    south: Site
    account: ServiceAccount
    tmp: Path

    @property
    def version(self) -> Any:
        return self.gate.version

    def upload_reference(self, n: int = 3000, seed: int = 1) -> Any:
        path = write_csv(self.tmp / "reference.csv", rows(n, seed=seed))
        return reference_upload(
            actor=self.gate.engineer, version=self.version, path=path, file_name="reference.csv"
        )

    def send(
        self, data: list[dict[str, Any]], *, day: date, site: str = "NORTH", tag: str = ""
    ) -> list[Any]:
        """The rows as predictions spread over ``day`` at ``site``, then their outcomes."""
        start = datetime.combine(day, datetime.min.time(), tzinfo=UTC) + timedelta(minutes=5)
        span = min(86000.0, (datetime.now(UTC) - start).total_seconds() - 60)
        step = timedelta(seconds=max(span, 1) / max(len(data), 1))
        items = []
        for i, row in enumerate(data):
            features = {k: row[k] for k in ("age", "heart_rate", "lactate", "care_unit")}
            features["on_dialysis"] = row["on_dialysis"]
            features = {k: v for k, v in features.items() if v is not None}
            features.update(row.get("extra", {}))
            items.append(
                PredictionIn(
                    event_id=uuid.uuid5(NS, f"{site}/{day}/{tag}/{i}"),
                    model=self.version.model.slug,
                    site=site,
                    occurred_at=start + i * step,
                    case_key=f"case-{site}-{day}-{tag}-{i}",
                    features=features,
                    score=row["score"],
                    confidence=0.95,
                    cohort={"age_band": row["age_band"], "sex": row["sex"]},
                )
            )
        results = gate_predictions(account=self.account, items=items)
        assert all(r.answer is not None for r in results), [r.error for r in results if r.error]
        return items

    def label(self, items: list[PredictionIn], data: list[dict[str, Any]]) -> None:
        outcomes = [
            OutcomeIn(
                label=float(row["label"]),
                observed_at=item.occurred_at + timedelta(hours=1),
                event_id=item.event_id,
            )
            for item, row in zip(items, data, strict=True)
        ]
        results = outcomes_record(account=self.account, items=outcomes)
        assert all(r.error is None for r in results)


@pytest.fixture
def monitored(gate_setup: Gate, tmp_path: Path) -> Monitored:
    south = SiteFactory(code="SOUTH", name="South Community")
    registry.deployment_start(
        actor=gate_setup.director,
        version=gate_setup.version,
        site=south,
        reason="go-live",
        at=datetime(2020, 1, 1, tzinfo=UTC),
    )
    account = ServiceAccount.objects.get(name="sepsis-scorer")
    return Monitored(gate_setup, south, account, tmp_path)


@pytest.fixture
def days_ago() -> Callable[[int], date]:
    today = datetime.now(UTC).date()
    return lambda n: today - timedelta(days=n)
