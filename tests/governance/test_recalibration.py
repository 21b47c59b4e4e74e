"""The update ladder on stored events: the window it reads, the recommendation it stores, and
the releases it drafts (recalibration, threshold change, retrain)."""

from __future__ import annotations

import hashlib
import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

import numpy as np
import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.urls import include, path

import config.urls
from governance import recalibration as svc
from governance.api import recal as recal_api
from governance.audit.models import AuditEvent
from governance.models import Recommendation, ReleaseKind
from monitoring.models import Outcome, PredictionEvent
from monitoring.stats.recalibration import apply_mapping, expit
from registry import services as registry
from tests.factories import ClinicalModelFactory, SiteFactory

START, END = date(2025, 1, 1), date(2025, 3, 31)
FEATURES = [
    {"name": "x1", "dtype": "numeric"},
    {"name": "x2", "dtype": "numeric"},
    {"name": "unit", "dtype": "categorical", "categories": ["ward", "icu", "ed"]},
]


def deploy(model: Any, *, engineer: Any, director: Any, site: Any, **config: Any) -> Any:
    version = registry.version_register(
        actor=engineer,
        model=model,
        fields={
            "version": "1.0.0",
            "artifact_uri": "s3://m/1",
            "artifact_sha256": "d" * 64,
            "training_data_source": "EHR",
            "training_window_start": "2022-01-01",
            "training_window_end": "2022-12-31",
            "training_set_size": 1000,
            "label_definition": "event within 48h",
            "decision_thresholds": {"alert": 0.3},
        },
        features=FEATURES,
    )
    registry.version_transition(actor=engineer, version=version, to_status="candidate", reason="x")
    registry.version_transition(actor=director, version=version, to_status="approved", reason="x")
    return registry.deployment_start(
        actor=director, version=version, site=site, reason="go-live",
        at=datetime(2024, 1, 1, tzinfo=UTC), **config,
    )  # fmt: skip


def store(deployment: Any, user: Any, *, scenario: str, n: int, seed: int = 7, **kw: Any) -> None:
    """``n`` live events in the window, scored by the model (true logit -2 + x1 + 0.5·x2) and
    judged through the deployment's mapping, each with an outcome drawn from the scenario."""
    rng = np.random.default_rng(seed)
    x1, x2 = rng.normal(size=n), rng.normal(size=n)
    unit = rng.choice(["ward", "icu", "ed"], size=n)
    lp = -2 + x1 + 0.5 * x2
    truth = {
        "unchanged": lp,
        "rate_shift": lp + 0.8,
        "slope_change": 0.5 * lp,
        "changed_associations": -2 + x1 - 0.5 * x2,
    }[scenario]
    y = rng.random(n) < expit(truth)
    mapping = deployment.score_mapping
    raw = expit(lp)
    start = datetime(2025, 1, 1, tzinfo=UTC)
    events = []
    for i in range(n):
        judged = apply_mapping(raw[i], mapping["intercept"], mapping["slope"]) if mapping else None
        events.append(
            PredictionEvent(
                event_id=uuid.uuid4(), model=deployment.model, version=deployment.version,
                site=deployment.site, deployment=deployment, mode=kw.get("mode", "live"),
                occurred_at=start + timedelta(minutes=20 * i), case_key_hash=f"{i:064x}",
                features={"x1": float(x1[i]), "x2": float(x2[i]), "unit": str(unit[i])},
                score=float(judged if judged is not None else raw[i]),
                raw_score=float(raw[i]) if judged is not None else None,
                action="act", policy_number=0, body_hash=hashlib.sha256(b"x").hexdigest(),
                submitted_by=user,
            )
        )  # fmt: skip
    PredictionEvent.objects.bulk_create(events, batch_size=1000)
    Outcome.objects.bulk_create(
        [
            Outcome(event=e, label=float(y[i]), observed_at=e.occurred_at, submitted_by=user)
            for i, e in enumerate(events)
            if i % 10 != 9  # one in ten has no outcome yet
        ],
        batch_size=1000,
    )


@pytest.fixture
def setup(db: None, ml_engineer: Any, director: Any) -> Any:
    model = ClinicalModelFactory(slug="deterioration")
    site = SiteFactory(code="NORTH")
    return deploy(model, engineer=ml_engineer, director=director, site=site)


N = 4400  # 3,960 labelled


@pytest.mark.parametrize(
    ("scenario", "level"),
    [
        ("unchanged", "no_change"),
        ("rate_shift", "intercept"),
        ("slope_change", "logistic"),
        ("changed_associations", "refit"),
    ],
)
def test_it_recommends_the_known_answer(setup, ml_engineer, scenario, level):
    store(setup, ml_engineer, scenario=scenario, n=N)
    rec = svc.recommend(actor=ml_engineer, model=setup.model, start=START, end=END)
    assert rec.level == level
    assert (rec.n, rec.version, rec.site) == (3960, setup.version, None)
    assert (rec.window_start, rec.window_end) == (START, END)
    ladder = rec.statistics["ladder"]
    assert ladder["level"] == level and ladder["n"] == 3960
    assert set(ladder["fits"]) == {"M0", "M1", "M2", "M3"}
    assert all("p_value" in t and "df" in t for t in ladder["tests"])
    event = AuditEvent.objects.get(action="recommendation.create")
    assert event.payload["level"] == level and event.payload["n"] == 3960


def test_it_is_insufficient_below_the_policy_minimum(setup, ml_engineer, director):
    svc.update_policy_save(actor=director, model=setup.model, fields=policy_fields(ml_engineer))
    store(setup, ml_engineer, scenario="rate_shift", n=200)
    rec = svc.recommend(actor=ml_engineer, model=setup.model, start=START, end=END)
    assert rec.level == "insufficient" and rec.n == 180
    assert "the policy needs at least 500" in rec.statistics["ladder"]["reason"]


def test_it_reads_only_live_labelled_events_with_their_standing_outcome(setup, ml_engineer):
    store(setup, ml_engineer, scenario="unchanged", n=40)
    first = Outcome.objects.filter(event__occurred_at__lt=datetime(2025, 1, 1, 1, tzinfo=UTC))
    first = first.order_by("event__occurred_at").first()
    Outcome.objects.create(
        event=first.event, label=1 - first.label, observed_at=first.observed_at, corrects=first,
        submitted_by=ml_engineer,
    )  # fmt: skip
    window = svc.labelled_window(setup.model, setup.version, None, START, END)
    assert window.n == 36 and window.all_raw.size == 40
    assert window.y[0] == 1 - first.label
    assert svc.labelled_window(setup.model, setup.version, None, END, END).n == 0


def test_a_recalibration_becomes_a_release_with_a_composed_mapping(db, ml_engineer, director):
    model = ClinicalModelFactory(slug="composed")
    site = SiteFactory(code="SOUTH")
    deployed = {"method": "logistic", "intercept": 0.3, "slope": 0.9}
    dep = deploy(model, engineer=ml_engineer, director=director, site=site, score_mapping=deployed)
    store(dep, ml_engineer, scenario="rate_shift", n=N)
    rec = svc.recommend(actor=ml_engineer, model=model, start=START, end=END, site=site)
    assert rec.level in ("intercept", "logistic")
    proposal = rec.statistics["recalibration"]
    a2, b2 = proposal["fitted_on_window"]["intercept"], proposal["fitted_on_window"]["slope"]
    mapping = proposal["score_mapping"]
    assert mapping["intercept"] == pytest.approx(a2 + b2 * 0.3)
    assert mapping["slope"] == pytest.approx(b2 * 0.9)
    # The composed mapping on raw scores undoes the deployed one and the drift: the true
    # outcome logit is lp + 0.8, so the whole mapping is close to (0.8, 1).
    assert mapping["intercept"] == pytest.approx(0.8, abs=0.15)
    assert mapping["slope"] == pytest.approx(1.0, abs=0.1)
    evidence = proposal["evidence"]
    assert evidence["before"]["observed_expected"]["value"] > 1.2
    assert evidence["after"]["observed_expected"]["value"] == pytest.approx(1.0, abs=0.05)
    assert "split_sample" in evidence  # 3,960 labelled >= 2 × the default minimum

    release = svc.propose_recalibration(actor=ml_engineer, recommendation=rec, incident=42)
    assert release.kind == ReleaseKind.RECALIBRATION and release.status == "draft"
    assert release.score_mapping == mapping
    assert list(release.sites.all()) == [site]
    assert release.origin == {"incident": 42, "recommendation": rec.pk}
    assert release.evidence["recalibration"]["evidence"]["after"]
    rec.refresh_from_db()
    assert rec.release == release
    with pytest.raises(ValidationError, match="already led to"):
        svc.propose_recalibration(actor=ml_engineer, recommendation=rec)


def test_only_a_recalibration_level_can_be_proposed_as_one(setup, ml_engineer):
    store(setup, ml_engineer, scenario="changed_associations", n=N)
    rec = svc.recommend(actor=ml_engineer, model=setup.model, start=START, end=END)
    assert rec.level == "refit"
    assert "interim_logistic" in rec.statistics
    with pytest.raises(ValidationError, match="not a recalibration"):
        svc.propose_recalibration(actor=ml_engineer, recommendation=rec)
    release = svc.open_retrain_draft(actor=ml_engineer, recommendation=rec)
    assert release.kind == ReleaseKind.RETRAIN and release.version is None
    assert release.origin == {"recommendation": rec.pk}
    assert release.evidence["level"] == "refit"


def test_a_retrain_draft_needs_a_refit(setup, ml_engineer):
    store(setup, ml_engineer, scenario="unchanged", n=N)
    rec = svc.recommend(actor=ml_engineer, model=setup.model, start=START, end=END)
    with pytest.raises(ValidationError, match="does not call for a refit"):
        svc.open_retrain_draft(actor=ml_engineer, recommendation=rec)


def test_a_threshold_change_shows_its_action_rate(setup, ml_engineer):
    store(setup, ml_engineer, scenario="unchanged", n=400)
    release = svc.propose_threshold_change(
        actor=ml_engineer, model=setup.model, thresholds={"alert": 0.2}, start=START, end=END
    )
    assert release.kind == ReleaseKind.THRESHOLD and release.thresholds == {"alert": 0.2}
    evidence = release.evidence["threshold_change"]
    scores = np.array(PredictionEvent.objects.values_list("score", flat=True))
    assert evidence["live_events"] == 400
    assert evidence["action_rate"]["before"]["alert"] == pytest.approx((scores >= 0.3).mean())
    assert evidence["action_rate"]["after"]["alert"] == pytest.approx((scores >= 0.2).mean())
    after = evidence["labelled_cases"]["after"]["alert"]
    assert after["sensitivity"] >= evidence["labelled_cases"]["before"]["alert"]["sensitivity"]


@pytest.mark.parametrize(
    ("thresholds", "message"),
    [
        ({"alert": 1.5}, "numbers in"),
        ({"warn": 0.2}, "thresholds in force"),
        ({"alert": 0.3}, "in force already"),
        ({}, "at least one"),
    ],
)
def test_a_bad_threshold_change_is_refused(setup, ml_engineer, thresholds, message):
    with pytest.raises(ValidationError, match=message):
        svc.propose_threshold_change(
            actor=ml_engineer, model=setup.model, thresholds=thresholds, start=START, end=END
        )


@pytest.mark.parametrize("role", ["viewer", "reviewer", "compliance_officer", "data_engineer"])
def test_only_recommending_roles_may_recommend(setup, user_for, role):
    with pytest.raises(PermissionDenied):
        svc.recommend(actor=user_for(role), model=setup.model, start=START, end=END)
    assert not Recommendation.objects.exists()


def test_proposing_needs_a_release_role(setup, ml_engineer, user_for):
    store(setup, ml_engineer, scenario="rate_shift", n=N)
    rec = svc.recommend(actor=ml_engineer, model=setup.model, start=START, end=END)
    with pytest.raises(PermissionDenied):
        svc.propose_recalibration(actor=user_for("quality_safety"), recommendation=rec)


def test_it_refuses_a_model_that_is_not_live(db, ml_engineer):
    model = ClinicalModelFactory(slug="not-live")
    with pytest.raises(ValidationError, match="not live"):
        svc.recommend(actor=ml_engineer, model=model, start=START, end=END)


def policy_fields(owner: Any) -> dict[str, Any]:
    return {
        "triggers": {"sustained_drift": "calibration slope orange for 3 windows"},
        "retraining_owner": owner,
        "validation_requirements": "Temporal validation on the last 6 months.",
        "approval_gates": "Medical director and quality & safety sign.",
        "permitted_data": "Inpatient EHR at the deployed sites.",
        "leakage_controls": "Outcome window after the prediction time only.",
        "min_window_events": 500,
    }


# --- pages ----------------------------------------------------------------------------------

urlpatterns = [path("api/v1/", include(recal_api.urlpatterns)), *config.urls.urlpatterns]


@pytest.mark.urls(__name__)
def test_the_pages_run_the_ladder_and_draft_the_release(setup, ml_engineer, client_for):
    store(setup, ml_engineer, scenario="rate_shift", n=N)
    base = f"/governance/models/{setup.model.slug}/updates/"
    engineer = client_for("ml_engineer")
    response = engineer.post(base + "recommendations/new/", {"start": START, "end": END})
    assert response.status_code == 302
    rec = Recommendation.objects.get()
    assert response["Location"] == f"{base}recommendations/{rec.pk}/"
    page = client_for("viewer").get(response["Location"])
    assert page.status_code == 200
    for text in (b'id="tests"', b"In-sample", b"Split-sample check", b'id="action-rates"'):
        assert text in page.content
    assert b"recalibrate-form" not in page.content  # a viewer cannot propose
    assert b"recalibrate-form" in engineer.get(response["Location"]).content
    assert client_for("viewer").post(base + "recommendations/new/", {}).status_code == 403
    assert (
        client_for("viewer").post(f"{base}recommendations/{rec.pk}/recalibrate/").status_code == 403
    )
    done = engineer.post(f"{base}recommendations/{rec.pk}/recalibrate/", {"incident": ""})
    assert done.status_code == 302
    rec.refresh_from_db()
    assert rec.release is not None and rec.release.kind == ReleaseKind.RECALIBRATION
    assert done["Location"] == f"/governance/releases/{rec.release.pk}/"
    again = client_for("viewer").get(f"{base}recommendations/{rec.pk}/")
    assert rec.release.number.encode() in again.content
    assert client_for("viewer").get(base).status_code == 200


@pytest.mark.urls(__name__)
def test_an_insufficient_window_shows_why(setup, ml_engineer, client_for):
    store(setup, ml_engineer, scenario="unchanged", n=50)
    rec = svc.recommend(actor=ml_engineer, model=setup.model, start=START, end=END)
    page = client_for("viewer").get(
        f"/governance/models/deterioration/updates/recommendations/{rec.pk}/"
    )
    assert b"Why no answer" in page.content and b"45 labelled cases" in page.content


@pytest.mark.urls(__name__)
def test_the_threshold_page_drafts_a_release(setup, ml_engineer, client_for):
    store(setup, ml_engineer, scenario="unchanged", n=200)
    url = f"/governance/models/{setup.model.slug}/updates/thresholds/"
    assert client_for("viewer").get(url).status_code == 403
    page = client_for("clinical_informaticist").get(url)
    assert page.status_code == 200 and b"now 0.3" in page.content
    response = client_for("clinical_informaticist").post(
        url,
        {"start": START, "end": END, "threshold_alert": 0.25, "rationale": "fewer missed cases"},
    )
    assert response.status_code == 302
    release = setup.model.releases.get()
    assert release.thresholds == {"alert": 0.25}
    assert release.evidence["threshold_change"]["live_events"] == 200


@pytest.mark.urls(__name__)
def test_the_api_runs_and_lists_recommendations(setup, ml_engineer, api_for):
    store(setup, ml_engineer, scenario="slope_change", n=N)
    url = f"/api/v1/models/{setup.model.slug}/recommendations/"
    body = {"start": "2025-01-01", "end": "2025-03-31", "site": "NORTH"}
    assert api_for("viewer").post(url, body, format="json").status_code == 403
    made = api_for("ml_engineer").post(url, body, format="json")
    assert made.status_code == 201, made.content
    assert made.json()["level"] == "logistic" and made.json()["site"] == "NORTH"
    listed = api_for("viewer").get(url).json()
    assert [r["id"] for r in listed] == [made.json()["id"]]
    one = api_for("viewer").get(f"{url}{made.json()['id']}/").json()
    assert one["statistics"]["ladder"]["tests"][0]["against"] == "M0"
    bad = api_for("ml_engineer").post(
        url, {"start": "2025-03-01", "end": "2025-01-01"}, format="json"
    )
    assert bad.status_code == 400
