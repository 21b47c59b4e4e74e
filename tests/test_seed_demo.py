"""``manage.py seed_demo``: the demo data set, loaded through the services, idempotent."""

from __future__ import annotations

from datetime import timedelta
from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.utils import timezone

from accounts.roles import Role
from governance import synthetic
from governance.audit.models import AuditEvent
from governance.demo import USERS
from monitoring.models import Outcome, Override, PredictionEvent, ReviewCase
from monitoring.runner import RunSummary
from registry.cards import build_card
from registry.models import ClinicalModel, Deployment, ModelVersion, VersionStatus

pytestmark = pytest.mark.django_db

PASSWORD = "demo-pass-for-tests!"


@pytest.fixture(autouse=True)
def demo_password(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VIGIL_DEMO_PASSWORD", PASSWORD)


@pytest.fixture(autouse=True)
def light_traffic(monkeypatch: pytest.MonkeyPatch) -> None:
    """The synthetic hospital's tens of thousands of predictions, scaled down to about one a
    day per site: the same path, a fraction of the time."""
    monkeypatch.setattr(
        "governance.synthetic.VOLUME",
        {"sepsis-ews": 1.0, "readmit-30d": 0.5, "noshow-outreach": 0.5},
    )
    # Monitoring at these volumes would judge nothing: tests/test_demo_monitoring.py runs the
    # demo's monitoring at full volume.
    monkeypatch.setattr("governance.demo.seed_monitoring", lambda **_: RunSummary())


def seed() -> str:
    out = StringIO()
    call_command("seed_demo", stdout=out)
    return out.getvalue()


def counts() -> dict[str, int]:
    return {
        "models": ClinicalModel.objects.count(),
        "versions": ModelVersion.objects.count(),
        "deployments": Deployment.objects.count(),
        "users": get_user_model().objects.count(),
        "audit_events": AuditEvent.objects.count(),
        "predictions": PredictionEvent.objects.count(),
        "review_cases": ReviewCase.objects.count(),
        "decided": ReviewCase.objects.filter(status="decided").count(),
        "outcomes": Outcome.objects.count(),
        "overrides": Override.objects.count(),
    }


def test_it_creates_three_models_with_cards_at_least_90_percent_complete() -> None:
    seed()
    models = {m.slug: m for m in ClinicalModel.objects.all()}
    assert {slug: m.risk_tier for slug, m in models.items()} == {
        "sepsis-ews": "high",
        "readmit-30d": "moderate",
        "noshow-outreach": "low",
    }
    for model in models.values():
        card = build_card(model)
        assert card.completeness.percent >= 90, (model.slug, card.missing_fields)


def test_it_deploys_sepsis_1_0_0_then_switches_to_1_1_0() -> None:
    seed()
    sepsis = ClinicalModel.objects.get(slug="sepsis-ews")
    history = [
        (d.version.version, d.site.code, d.ended_at is None)
        for d in sepsis.deployments.order_by("started_at")
    ]
    assert history == [
        ("1.0.0", "NORTH", False),
        ("1.0.0", "SOUTH", False),
        ("1.1.0", "NORTH", True),
        ("1.1.0", "SOUTH", True),
        ("1.1.0", "EAST", True),
        ("1.1.0", "WEST", True),
    ]
    assert sepsis.versions.get(version="1.0.0").status == VersionStatus.RETIRED
    live = {
        m.slug: m.deployments.filter(ended_at__isnull=True).count()
        for m in ClinicalModel.objects.all()
    }
    assert live == {"sepsis-ews": 4, "readmit-30d": 2, "noshow-outreach": 1}
    # live for the whole synthetic period, so the gate judges every day with 1.1.0
    first = timezone.now() - timedelta(days=synthetic.DAYS)
    assert all(d.started_at < first for d in sepsis.deployments.filter(ended_at__isnull=True))


def test_it_creates_one_user_per_role_who_can_log_in() -> None:
    output = seed()
    User = get_user_model()
    roles = set()
    for spec in USERS:
        user = User.objects.get(username=spec.username)
        assert user.check_password(PASSWORD)
        assert list(user.groups.values_list("name", flat=True)) == [str(spec.role)]
        roles.add(spec.role)
    assert roles == set(Role)
    assert User.objects.get(username="director").get_full_name() == "Dr. Amara Okafor"
    assert "Demo logins" in output


def test_it_is_idempotent_and_prints_the_logins_every_time() -> None:
    seed()
    before = counts()
    output = seed()
    assert counts() == before
    assert "nothing changed" in output
    assert "created" not in output
    for spec in USERS:
        assert f"{spec.username} " in output and str(spec.role) in output
    assert PASSWORD in output


def test_everything_it_does_is_audited_and_the_chain_verifies() -> None:
    seed()
    actions = set(AuditEvent.objects.values_list("action", flat=True))
    assert {
        "user.create",
        "site.create",
        "datafeed.create",
        "model.register",
        "version.register",
        "version.transition",
        "deployment.start",
        "deployment.end",
        "service_account.create",
    } <= actions
    seed()
    out = StringIO()
    call_command("verify_audit_chain", stdout=out)
    assert "audit chain OK" in out.getvalue()


def test_it_sends_the_synthetic_hospital_through_the_gate_so_the_review_queue_is_live() -> None:
    seed()
    # four sepsis sites, two readmission sites, one no-show site
    live = [("sepsis-ews", s) for s in ("NORTH", "SOUTH", "EAST", "WEST")]
    live += [("readmit-30d", "NORTH"), ("readmit-30d", "SOUTH"), ("noshow-outreach", "EAST")]
    expected = {(slug, site): len(synthetic.traffic(slug, site)) for slug, site in live}
    stored = {
        (slug, site): PredictionEvent.objects.filter(model__slug=slug, site__code=site).count()
        for slug, site in live
    }
    assert stored == expected
    assert set(PredictionEvent.objects.values_list("action", flat=True)) <= {"act", "defer"}
    # the review queue: old cases mostly decided, the last day's still open
    assert ReviewCase.objects.filter(status="open").exists()
    assert ReviewCase.objects.filter(status="decided").exists()
    recent = timezone.now() - timedelta(days=1)
    assert not ReviewCase.objects.filter(status="decided", event__occurred_at__gt=recent).exists()
    decided = ReviewCase.objects.filter(status="decided").count()
    assert AuditEvent.objects.filter(action="review.decide").count() == decided


def test_outcomes_arrive_once_mature_and_overrides_only_on_acted_events() -> None:
    seed()
    # every sepsis prediction older than 60 hours has its outcome, once
    old = timezone.now() - timedelta(hours=60)
    sepsis = PredictionEvent.objects.filter(model__slug="sepsis-ews", occurred_at__lt=old)
    assert Outcome.objects.filter(event__in=sepsis).count() == sepsis.count() > 0
    # sepsis labels take 36-60 hours: nothing younger than 36 hours is labelled yet
    young = timezone.now() - timedelta(hours=36)
    assert not Outcome.objects.filter(
        event__model__slug="sepsis-ews", event__occurred_at__gt=young
    ).exists()
    assert PredictionEvent.objects.filter(model__slug="sepsis-ews", occurred_at__gt=young).exists()
    assert Override.objects.exists()
    assert not Override.objects.exclude(event__action="act").exists()


def test_the_renamed_feature_reaches_the_gate_as_a_problem_and_defers() -> None:
    seed()
    start = timezone.now() - timedelta(days=synthetic.DAYS - 80)
    renamed = PredictionEvent.objects.filter(
        model__slug="sepsis-ews", site__code="WEST", occurred_at__gte=start
    )
    assert renamed.exists()
    for event in renamed:
        codes = {p["code"] for p in event.problems}
        assert {"missing_required", "unexpected_feature"} <= codes
        assert "respiratory_rate" not in event.features  # never stored (minimum necessary)
        assert event.action == "defer"
