"""Every page and every API endpoint × every role: allowed or denied, as declared here.

The table below is the access policy. A URL pattern that is not in it fails the suite, so a
new page or endpoint cannot ship without someone deciding (and testing) who may use it.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, reverse
from django.utils import timezone
from rest_framework.test import APIClient

from accounts.services import service_account_create
from monitoring.gate import PredictionIn, gate_predictions
from monitoring.policies import policy_create
from registry import services
from registry.assignments import site_assignment_set
from registry.models import SiteAssignment
from tests.conftest import ROLES
from tests.factories import (
    ClinicalModelFactory,
    FeatureSpecFactory,
    ModelVersionFactory,
    SiteFactory,
)

EVERYONE = frozenset(ROLES)
NOBODY: frozenset[str] = frozenset()
AUDITORS = frozenset({"compliance_officer", "medical_director"})
ML = frozenset({"ml_engineer"})
FEEDS = frozenset({"ml_engineer", "data_engineer"})
DIRECTOR = frozenset({"medical_director"})
FREEZERS = frozenset({"medical_director", "incident_commander"})
COMPLIANCE = frozenset({"compliance_officer"})
CASE_READERS = frozenset({"reviewer", "clinical_informaticist", "medical_director"})
DECIDERS = frozenset({"reviewer", "medical_director"})
SERVICE = frozenset({"service"})
POLICY_EDITORS = frozenset({"ml_engineer", "clinical_informaticist"})
MONITOR_EDITORS = frozenset({"ml_engineer", "medical_director"})
INCIDENT_WORKERS = frozenset(
    {"incident_commander", "medical_director", "ml_engineer", "data_engineer",
     "clinical_informaticist", "quality_safety", "compliance_officer"}
)  # fmt: skip
CLOSERS = frozenset({"incident_commander", "medical_director"})
PROPOSERS = frozenset({"ml_engineer", "clinical_informaticist", "medical_director"})
SIGNERS = frozenset({"medical_director", "compliance_officer", "ml_engineer", "quality_safety"})
DEPLOYERS = frozenset({"ml_engineer", "medical_director"})
RACI_EDITORS = AUDITORS
LINEAGE_READERS = AUDITORS | frozenset({"reviewer", "clinical_informaticist"})
REVIEW_RUNNERS = frozenset({"medical_director", "compliance_officer", "quality_safety"})

# name → {method: roles allowed}; "service" is a model service's token.
MATRIX: dict[str, dict[str, frozenset[str]]] = {
    # Pages
    "registry:inventory": {"GET": EVERYONE},
    "registry:live": {"GET": EVERYONE},
    "registry:sites": {"GET": EVERYONE},
    "registry:site_create": {"POST": ML},
    "registry:feeds": {"GET": EVERYONE},
    "registry:feed_create": {"POST": FEEDS},
    "registry:model_register": {"GET": ML, "POST": ML},
    "registry:model_detail": {"GET": EVERYONE},
    "registry:model_edit": {"GET": ML, "POST": ML},
    "registry:history": {"GET": EVERYONE},
    "registry:version_register": {"GET": ML, "POST": ML},
    "registry:version_detail": {"GET": EVERYONE},
    "registry:version_transition": {"POST": ML | DIRECTOR},
    "registry:deployment_freeze": {"POST": FREEZERS},
    "cards:card": {"GET": EVERYONE},
    "cards:export": {"GET": EVERYONE},
    "audit:trail": {"GET": AUDITORS},
    "audit:verify": {"POST": COMPLIANCE},
    "audit:export": {"GET": COMPLIANCE, "POST": COMPLIANCE},
    "review:queue": {"GET": CASE_READERS},
    "review:case": {"GET": CASE_READERS},
    "review:decide": {"POST": DECIDERS},
    "monitor:overview": {"GET": EVERYONE},
    "monitor:dashboard": {"GET": EVERYONE},
    "monitor:evaluate": {"POST": MONITOR_EDITORS},
    "monitor:metric": {"GET": EVERYONE},
    "monitor:reference": {"GET": EVERYONE},
    "monitor:reference_upload": {"POST": ML},
    "monitor:policy": {"GET": EVERYONE},
    "monitor:policy_edit": {"GET": MONITOR_EDITORS, "POST": MONITOR_EDITORS},
    "incidents:queue": {"GET": EVERYONE},
    "incidents:alerts": {"GET": EVERYONE},
    "incidents:alert_suppress": {"POST": INCIDENT_WORKERS},
    "incidents:detail": {"GET": EVERYONE},
    "incidents:acknowledge": {"POST": INCIDENT_WORKERS},
    "incidents:investigate": {"POST": INCIDENT_WORKERS},
    "incidents:mitigate": {"POST": INCIDENT_WORKERS},
    "incidents:resolve": {"POST": CLOSERS},
    "incidents:close": {"POST": CLOSERS},
    "incidents:cancel": {"POST": INCIDENT_WORKERS},
    "incidents:merge": {"POST": INCIDENT_WORKERS},
    "incidents:step": {"POST": INCIDENT_WORKERS},
    "incidents:impact": {"POST": INCIDENT_WORKERS},
    "incidents:review": {"POST": CLOSERS},
    "incidents:freeze": {"POST": FREEZERS},
    "incidents:unfreeze": {"POST": DIRECTOR},
    "incidents:assign": {"POST": INCIDENT_WORKERS},
    "incidents:runbooks": {"GET": EVERYONE},
    "incidents:runbook": {"GET": EVERYONE},
    "incidents:runbook_edit": {"GET": CLOSERS, "POST": CLOSERS},
    "incidents:runbook_new": {"GET": CLOSERS, "POST": CLOSERS},
    "incidents:drill": {"GET": CLOSERS, "POST": CLOSERS},
    "incidents:stats": {"GET": EVERYONE},
    "access:review": {"GET": COMPLIANCE},
    "governance:retention-holds": {"GET": AUDITORS, "POST": COMPLIANCE},
    "governance:retention-hold-release": {"POST": COMPLIANCE},
    "governance:packet-model": {"GET": AUDITORS},
    "governance:packet-download": {"POST": COMPLIANCE},
    "governance:lineage-search": {"GET": LINEAGE_READERS},
    "governance:lineage-detail": {"GET": LINEAGE_READERS},
    "access:grant_reviewed": {"POST": COMPLIANCE},
    "governance:inbox": {"GET": EVERYONE},
    "governance:release-list": {"GET": EVERYONE},
    "governance:release-new": {"GET": PROPOSERS, "POST": PROPOSERS},
    "governance:release-detail": {"GET": EVERYONE},
    "governance:release-edit": {"GET": PROPOSERS, "POST": PROPOSERS},
    "governance:release-submit": {"POST": PROPOSERS},
    "governance:release-sign": {"POST": SIGNERS},
    "governance:release-reject": {"POST": SIGNERS},
    "governance:release-withdraw": {"POST": PROPOSERS},
    "governance:release-deploy": {"POST": DEPLOYERS},
    "governance:release-evidence": {"POST": PROPOSERS},
    "governance:release-file": {"GET": EVERYONE},
    "governance:signature-void": {"POST": COMPLIANCE},
    "governance:signing-unlock": {"POST": COMPLIANCE},
    "governance:deployments": {"GET": EVERYONE},
    "governance:rollback": {"POST": PROPOSERS},
    "governance:raci-default": {"GET": EVERYONE, "POST": RACI_EDITORS},
    "governance:raci-model": {"GET": EVERYONE, "POST": RACI_EDITORS},
    "governance:update-policy": {"GET": EVERYONE},
    "governance:update-policy-edit": {"GET": MONITOR_EDITORS, "POST": MONITOR_EDITORS},
    "governance:recommendation-new": {"POST": MONITOR_EDITORS},
    "governance:recommendation-detail": {"GET": EVERYONE},
    "governance:recommendation-recalibrate": {"POST": PROPOSERS},
    "governance:recommendation-retrain": {"POST": PROPOSERS},
    "governance:threshold-change": {"GET": PROPOSERS, "POST": PROPOSERS},
    "governance:review-list": {"GET": EVERYONE},
    "governance:review-meeting": {"GET": EVERYONE},
    "governance:review-pack": {"POST": REVIEW_RUNNERS},
    "governance:review-minutes": {"POST": REVIEW_RUNNERS},
    "governance:review-model": {"GET": EVERYONE},
    "governance:review-schedule": {"POST": REVIEW_RUNNERS},
    "governance:review-plan": {"POST": REVIEW_RUNNERS},
    "governance:review-action-close": {"POST": REVIEW_RUNNERS},
    # API
    "api-schema": {"GET": EVERYONE},
    "api-docs": {"GET": EVERYONE},
    "registry-api:model-list": {"GET": EVERYONE, "POST": ML},
    "registry-api:model-detail": {"GET": EVERYONE, "PATCH": ML},
    "registry-api:model-version-list": {"GET": EVERYONE, "POST": ML},
    "registry-api:model-version-detail": {"GET": EVERYONE},
    "registry-api:model-version-transition": {"POST": ML | DIRECTOR},
    "registry-api:site-list": {"GET": EVERYONE, "POST": ML},
    "registry-api:site-detail": {"GET": EVERYONE},
    "registry-api:feed-list": {"GET": EVERYONE, "POST": FEEDS},
    "registry-api:feed-detail": {"GET": EVERYONE},
    "registry-api:deployment-list": {"GET": EVERYONE, "POST": DIRECTOR},
    "registry-api:deployment-detail": {"GET": EVERYONE},
    "registry-api:deployment-live": {"GET": EVERYONE},
    "registry-api:deployment-end": {"POST": DIRECTOR},
    "registry-api:deployment-freeze": {"POST": FREEZERS},
    "registry-api:deployment-unfreeze": {"POST": FREEZERS},
    "policies:detail": {"GET": EVERYONE},
    "policies:edit": {"GET": POLICY_EDITORS, "POST": POLICY_EDITORS},
    "monitoring-api:deferral-policy-list": {"GET": EVERYONE, "POST": POLICY_EDITORS},
    "monitoring-api:deferral-policy-detail": {"GET": EVERYONE},
    "monitoring-api:outcome": {"POST": SERVICE},
    "monitoring-api:outcome-bulk": {"POST": SERVICE},
    "monitoring-api:override": {"POST": SERVICE},
    "monitoring-api:prediction": {"POST": SERVICE},
    "monitoring-api:prediction-bulk": {"POST": SERVICE},
    "monitor-api:metric-results": {"GET": EVERYONE},
    "monitor-api:reference-profiles": {"GET": EVERYONE, "POST": ML},
    "monitor-api:monitor-policy": {"GET": EVERYONE, "PUT": MONITOR_EDITORS},
    "incidents-api:alert-list": {"GET": EVERYONE},
    "incidents-api:alert-suppress": {"POST": INCIDENT_WORKERS},
    "incidents-api:incident-list": {"GET": EVERYONE},
    "incidents-api:incident-detail": {"GET": EVERYONE},
    "incidents-api:incident-acknowledge": {"POST": INCIDENT_WORKERS},
    "incidents-api:incident-investigate": {"POST": INCIDENT_WORKERS},
    "incidents-api:incident-mitigate": {"POST": INCIDENT_WORKERS},
    "incidents-api:incident-resolve": {"POST": CLOSERS},
    "incidents-api:incident-close": {"POST": CLOSERS},
    "incidents-api:incident-cancel": {"POST": INCIDENT_WORKERS},
    "incidents-api:incident-merge": {"POST": INCIDENT_WORKERS},
    "incidents-api:incident-step": {"POST": INCIDENT_WORKERS},
    "incidents-api:incident-impact": {"POST": INCIDENT_WORKERS},
    "incidents-api:incident-review": {"POST": CLOSERS},
    "incidents-api:incident-assign": {"POST": INCIDENT_WORKERS},
    "incidents-api:incident-freeze": {"POST": FREEZERS},
    "incidents-api:incident-unfreeze": {"POST": DIRECTOR},
    "incidents-api:incident-stats": {"GET": EVERYONE},
    "incidents-api:drill-list": {"POST": CLOSERS},
    "incidents-api:runbook-list": {"GET": EVERYONE},
    "incidents-api:runbook-detail": {"GET": EVERYONE, "PUT": CLOSERS},
    "governance-api:release-list": {"GET": EVERYONE, "POST": PROPOSERS},
    # Only the author changes a release; the sample's author is the medical director.
    "governance-api:release-detail": {"GET": EVERYONE, "PATCH": DIRECTOR},
    "governance-api:release-submit": {"POST": PROPOSERS},
    "governance-api:release-sign": {"POST": SIGNERS},
    "governance-api:release-reject": {"POST": SIGNERS},
    "governance-api:release-withdraw": {"POST": PROPOSERS},
    "governance-api:release-deploy": {"POST": DEPLOYERS},
    "governance-api:release-evidence": {"POST": PROPOSERS},
    "governance-api:release-rollback": {"POST": PROPOSERS},
    "governance-api:raci-default": {"GET": EVERYONE, "PUT": RACI_EDITORS},
    "governance-api:raci-model": {"GET": EVERYONE, "PUT": RACI_EDITORS},
    "governance-api:update-policy-api": {"GET": EVERYONE, "PUT": MONITOR_EDITORS},
    "governance-api:recommendation-list-api": {"GET": EVERYONE, "POST": MONITOR_EDITORS},
    "governance-api:recommendation-detail-api": {"GET": EVERYONE},
    "governance-api:decision-lineage": {"GET": LINEAGE_READERS},
    "governance-api:review-meeting-list": {"GET": EVERYONE},
    "governance-api:review-meeting-detail": {"GET": EVERYONE},
    "governance-api:review-action-list": {"GET": EVERYONE},
    "governance-api:review-action-detail": {"GET": EVERYONE},
    "audit-api:audit-event-list": {"GET": AUDITORS},
    "audit-api:audit-event-detail": {"GET": AUDITORS},
    "audit-api:audit-event-verify": {"GET": COMPLIANCE},
}
# Patterns that are not access-controlled by design, with the reason.
PUBLIC = {
    "accounts:login": "the login page itself",
    "accounts:logout": "logging out needs no role (POST only)",
    "home": "redirects to the inventory, which checks roles",
}


def walk(
    resolver: URLResolver, prefix: str = "", namespace: str = ""
) -> Iterator[tuple[str, URLPattern]]:
    for entry in resolver.url_patterns:
        if isinstance(entry, URLResolver):
            ns = namespace
            if entry.namespace:
                ns = f"{namespace}{entry.namespace}:"
            yield from walk(entry, prefix + str(entry.pattern), ns)
        elif entry.name:
            yield f"{namespace}{entry.name}", entry


def all_patterns() -> dict[str, URLPattern]:
    found: dict[str, URLPattern] = {}
    for name, pattern in walk(get_resolver()):
        if "format" in pattern.pattern.regex.groupindex:
            continue  # DRF's ".json" suffix twins of patterns listed already
        found.setdefault(name, pattern)
    return found


def test_every_url_pattern_has_a_declared_policy():
    undeclared = sorted(set(all_patterns()) - set(MATRIX) - set(PUBLIC))
    assert undeclared == [], f"declare who may use these in MATRIX: {undeclared}"
    stale = sorted(set(MATRIX) - set(all_patterns()))
    assert stale == [], f"MATRIX names patterns that no longer exist: {stale}"


@pytest.fixture
def sample(db, director, compliance) -> dict[str, object]:
    version = ModelVersionFactory(model=ClinicalModelFactory(slug="matrix-model"), version="1.0.0")
    FeatureSpecFactory(version=version, name="heart_rate")
    site = SiteFactory(code="NORTH")
    deployment = services.deployment_start(
        actor=director, version=version, site=site, reason="test"
    )
    feed = services.datafeed_create(
        actor=None,
        fields={
            "slug": "vitals",
            "name": "Vitals",
            "source_system": "ehr_vitals",
            "expected_cadence_minutes": 15,
            "owner": director,
        },
    )
    from governance.audit.models import AuditEvent

    policy_create(
        actor=None,
        version=version,
        min_confidence=0.5,
        threshold_margin=None,
        population_exclusions=[],
        safety_rules=[],
        reason="matrix",
    )
    issued = service_account_create(actor=None, name="matrix-svc", model_slugs=["matrix-model"])
    (deferred,) = gate_predictions(
        account=issued.account,
        items=[
            PredictionIn(
                event_id=uuid.uuid4(),
                model="matrix-model",
                site="NORTH",
                occurred_at=timezone.now(),
                case_key="matrix-case",
                features={},
                score=0.5,
            )
        ],
    )
    alert = _sample_incident(version, site)
    from incidents.models import Runbook

    runbook = Runbook.objects.order_by("pk").first()
    governance = _sample_governance(version, site, director, compliance)
    return {
        **governance,
        "number": 1,
        "step": 0,
        "alert_suppress:pk": alert.pk,
        "alert-suppress:pk": alert.pk,
        "case:pk": deferred.answer.review_case_id,
        "event_id": deferred.answer.event_id,
        "decide:pk": deferred.answer.review_case_id,
        "service": issued,
        "slug": "matrix-model",
        "version": "1.0.0",
        "code": "NORTH",
        "pk": deployment.pk,
        "model_slug": "matrix-model",
        "fmt": "json",
        "seq": AuditEvent.objects.order_by("-seq").first().seq,
        "feed-detail:slug": feed.slug,
        "metric": "auc",
        "runbook:pk": runbook.pk,
        "runbook_edit:pk": runbook.pk,
        "runbook-detail:pk": runbook.pk,
    }


def _sample_governance(version, site, director, compliance):
    """A submitted release with an evidence file and its authorship signature, and a held
    review meeting with one action item."""
    from datetime import timedelta

    from governance import releases, reviews
    from tests.factories import PASSWORD

    release = releases.release_create(
        actor=director, model=version.model, kind="threshold", title="matrix",
        rationale="matrix", sites=[site], thresholds={"alert": 0.5},
    )  # fmt: skip
    stored = releases.evidence_file_add(
        actor=director, release=release, kind="other", name="matrix.txt", data=b"matrix"
    )
    releases.release_submit(actor=director, release=release, password=PASSWORD)
    meeting = reviews.review_meeting_plan(
        actor=None, model=version.model, scheduled_for=timezone.localdate()
    )
    reviews.review_minutes_record(
        actor=None, meeting=meeting, attendees="matrix", minutes="matrix", decisions=["go"],
        actions=[{"text": "matrix", "owner": director.username,
                  "due": timezone.localdate() + timedelta(days=7)}],
    )  # fmt: skip
    action = meeting.actions.get()
    from accounts.models import BreakGlassGrant

    grant = BreakGlassGrant.objects.create(
        user=director, case_id=1, reason="x" * 20, expires_at=timezone.now()
    )
    from governance.retention import hold_place

    hold = hold_place(actor=compliance, model=version.model, site=None, reason="matrix hold")
    keys = {"retention-hold-release:pk": hold.pk, "grant_reviewed:pk": grant.pk,
            "file_pk": stored.pk, "signature_pk": release.signatures.get().pk,
            "user_pk": director.pk}  # fmt: skip
    for name in ("release-detail", "release-edit", "release-submit", "release-sign",
                 "release-reject", "release-withdraw", "release-deploy", "release-evidence",
                 "release-file", "signature-void"):  # fmt: skip
        keys[f"{name}:pk"] = release.pk
    from governance.models import Recommendation
    from governance.recalibration import update_policy_save

    update_policy_save(
        actor=None, model=version.model,
        fields={"triggers": {"sustained_drift": "PSI > 0.2 for 2 windows"},
                "retraining_owner": director.username, "validation_requirements": "matrix",
                "approval_gates": "matrix", "permitted_data": "matrix",
                "leakage_controls": "matrix"},
    )  # fmt: skip

    rec = Recommendation.objects.create(
        model=version.model, version=version, window_start=timezone.localdate(),
        window_end=timezone.localdate(), n=0, events=0, level="insufficient",
    )  # fmt: skip
    for name in ("recommendation-detail", "recommendation-recalibrate",
                 "recommendation-retrain", "recommendation-detail-api"):  # fmt: skip
        keys[f"{name}:pk"] = rec.pk
    for name in ("review-meeting", "review-pack", "review-minutes", "review-meeting-detail"):
        keys[f"{name}:pk"] = meeting.pk
    for name in ("review-action-close", "review-action-detail"):
        keys[f"{name}:pk"] = action.pk
    return keys


def _sample_incident(version, site):
    """INC-1 with one red alert, as ``attach_to_incidents`` would leave it."""
    from datetime import timedelta

    from incidents.models import Alert, Incident

    incident = Incident.objects.create(
        number=1, model=version.model, site=site, slice_key="site=NORTH", title="matrix",
        severity="SEV2", band="red", layer="data_quality", routed_role="data_engineer",
        ack_deadline=timezone.now() + timedelta(hours=1),
    )  # fmt: skip
    return Alert.objects.create(
        model=version.model, version=version, site=site, slice_key="site=NORTH",
        metric="missing_rate:heart_rate", layer="data_quality", fingerprint="f" * 64,
        band="red", worst_band="red", reason="confident", payload={"summary": "matrix"},
        routed_role="data_engineer", incident=incident,
    )  # fmt: skip


def url_for(name: str, pattern: URLPattern, sample: dict[str, object]) -> str:
    short = name.split(":")[-1]
    kwargs = {
        key: sample.get(f"{short}:{key}", sample.get(key))
        for key in pattern.pattern.regex.groupindex
    }
    return reverse(name, kwargs=kwargs)


def is_denied(response, api: bool) -> bool:
    # 404 counts as denied: records outside a user's scope are not revealed to exist, and for
    # an allowed role the sample records exist, so a 404 there is a failure.
    if response.status_code in (401, 403, 404):
        return True
    return not api and response.status_code == 302 and "/accounts/login/" in response["Location"]


CASES = [(name, method) for name, methods in sorted(MATRIX.items()) for method in methods]


@pytest.mark.parametrize(("name", "method"), CASES)
def test_roles_get_exactly_what_the_matrix_says(name, method, sample, user_for):
    pattern = all_patterns()[name]
    url = url_for(name, pattern, sample)
    api = url.startswith("/api/")
    allowed = MATRIX[name][method]
    for role in [*ROLES, "anonymous", "service"]:
        client = APIClient() if api else Client()
        if role == "service" and api:
            client.credentials(HTTP_AUTHORIZATION=f"Bearer {sample['service'].token}")
        elif role == "service":
            client.force_login(sample["service"].account.user)
        elif role != "anonymous":
            user = user_for(role)
            if not SiteAssignment.objects.filter(user=user).exists():
                site_assignment_set(
                    actor=None, username=user.username, site_code="NORTH", assigned=True
                )
            client.force_login(user)
        extra = {"format": "json"} if api and method != "GET" else {}
        response = getattr(client, method.lower())(url, {}, **extra)
        denied = is_denied(response, api)
        expected_denied = role not in allowed
        assert denied == expected_denied, (
            f"{method} {url} as {role}: status {response.status_code}, "
            f"expected {'denied' if expected_denied else 'allowed'}"
        )
