"""Releases: the enforced order, separation of duties, Part 11 signatures, voiding, deploying
through the gate, rollback, and the governance checks."""

from __future__ import annotations

import pytest
from django.core.exceptions import PermissionDenied, ValidationError

from governance import checks, deploy, releases, signing
from governance.audit.models import AuditEvent
from governance.models import Release, SigningAttempt
from incidents.models import Alert, AlertStatus, Incident
from monitoring.models import DeferralPolicy, PredictionEvent
from registry import services as registry
from registry.models import Deployment
from tests.factories import PASSWORD

pytestmark = pytest.mark.django_db


def recalibration(gate, user_for, **overrides):
    fields = {
        "actor": user_for("ml_engineer"),
        "model": gate.version.model,
        "kind": "recalibration",
        "title": "Recalibrate after the lactate assay change",
        "rationale": "O/E 1.4 at NORTH for 30 days; ranking unchanged.",
        "sites": [gate.site],
        "score_mapping": {"method": "logistic", "intercept": -0.5, "slope": 0.8},
    }
    fields.update(overrides)
    return releases.release_create(**fields)


def submitted(gate, user_for, **overrides):
    release = recalibration(gate, user_for, **overrides)
    return releases.release_submit(actor=release.author, release=release, password=PASSWORD)


def approve(release, user_for):
    signing.release_sign(actor=user_for("medical_director"), release=release, password=PASSWORD)
    release.refresh_from_db()
    return release


def test_a_draft_names_the_live_version_and_submission_signs_authorship(gate_setup, user_for):
    release = recalibration(gate_setup, user_for)
    assert release.status == "draft" and release.version == gate_setup.version
    releases.release_submit(actor=release.author, release=release, password=PASSWORD)
    release.refresh_from_db()
    assert release.status == "submitted"
    (authorship,) = release.signatures.all()
    assert authorship.meaning == "authorship" and authorship.role == "author"
    assert authorship.printed_name == release.author.get_full_name()
    assert authorship.content_sha256 == release.content_sha256 == releases.content_hash(release)


def test_submission_refuses_incomplete_content_and_only_the_author_submits(gate_setup, user_for):
    release = recalibration(gate_setup, user_for, score_mapping=None)
    with pytest.raises(ValidationError) as exc:
        releases.release_submit(actor=release.author, release=release, password=PASSWORD)
    assert "score_mapping" in exc.value.message_dict
    other = recalibration(gate_setup, user_for)
    with pytest.raises(PermissionDenied):
        releases.release_submit(
            actor=user_for("medical_director"), release=other, password=PASSWORD
        )


@pytest.mark.parametrize(
    ("mapping", "message"),
    [
        ({"method": "logistic", "intercept": 0.1, "slope": -1}, "reverse"),
        ({"method": "intercept", "intercept": 0.1, "slope": 0.7}, "slope at 1"),
        ({"method": "spline", "intercept": 0, "slope": 1}, "method"),
        ({"method": "logistic", "intercept": "x", "slope": 1}, "finite"),
    ],
)
def test_a_bad_mapping_is_refused_with_its_reason(gate_setup, user_for, mapping, message):
    with pytest.raises(ValidationError) as exc:
        recalibration(gate_setup, user_for, score_mapping=mapping)
    assert message in " ".join(exc.value.message_dict["score_mapping"])


def test_the_enforced_order(gate_setup, user_for, director):
    release = recalibration(gate_setup, user_for)
    with pytest.raises(ValidationError):  # a draft cannot be signed
        signing.release_sign(actor=director, release=release, password=PASSWORD)
    with pytest.raises(ValidationError):  # nor deployed
        deploy.release_deploy(actor=director, release=release)
    releases.release_submit(actor=release.author, release=release, password=PASSWORD)
    with pytest.raises(ValidationError):  # submitted is not approved
        deploy.release_deploy(actor=director, release=release)
    approve(release, user_for)
    assert release.status == "approved" and release.review_started_at <= release.approved_at
    deploy.release_deploy(actor=director, release=release)
    release.refresh_from_db()
    assert release.status == "deployed"
    with pytest.raises(ValidationError):  # deployed is final
        releases.release_withdraw(actor=release.author, release=release, reason="oops")
    with pytest.raises(ValidationError):
        releases.release_update(
            actor=release.author, release=release, changes={"title": "x"}, reason="late"
        )


def test_reject_and_withdraw_need_a_reason_and_close_the_release(gate_setup, user_for, director):
    release = submitted(gate_setup, user_for)
    with pytest.raises(ValidationError):
        releases.release_reject(actor=director, release=release, reason=" ")
    releases.release_reject(actor=director, release=release, reason="Window too short.")
    release.refresh_from_db()
    assert release.status == "rejected" and release.closed_reason == "Window too short."
    other = submitted(gate_setup, user_for)
    releases.release_withdraw(actor=other.author, release=other, reason="Superseded by R-9")
    other.refresh_from_db()
    assert other.status == "withdrawn"


def test_the_author_cannot_sign_their_own_release(gate_setup, user_for, director):
    release = releases.release_create(
        actor=director, model=gate_setup.version.model, kind="threshold", title="Raise alert",
        rationale="Too many alerts", sites=[gate_setup.site], thresholds={"alert": 0.7},
    )  # fmt: skip
    releases.release_submit(actor=director, release=release, password=PASSWORD)
    with pytest.raises(PermissionDenied, match="separation of duties"):
        signing.release_sign(actor=director, release=release, password=PASSWORD)


def test_required_signatures_follow_the_risk_tier(gate_setup, user_for):
    model = gate_setup.version.model
    model.risk_tier = "critical"
    model.save()
    release = submitted(gate_setup, user_for)
    approve(release, user_for)
    assert release.status == "in_review"  # the director alone is not enough for critical
    from tests.factories import UserFactory

    other_engineer = UserFactory(username="ml-2", role="ml_engineer")
    with pytest.raises(PermissionDenied, match="none of the signatures"):
        signing.release_sign(actor=other_engineer, release=release, password=PASSWORD)
    signing.release_sign(actor=user_for("quality_safety"), release=release, password=PASSWORD)
    release.refresh_from_db()
    assert release.status == "in_review"
    signing.release_sign(actor=user_for("compliance_officer"), release=release, password=PASSWORD)
    release.refresh_from_db()
    assert release.status == "approved"
    meanings = sorted(s.meaning for s in releases.valid_signatures(release))
    assert meanings == ["approval", "authorship", "responsibility", "review"]


def test_a_low_tier_release_needs_an_ml_engineer_who_is_not_the_author(gate_setup, user_for):
    model = gate_setup.version.model
    model.risk_tier = "low"
    model.save()
    release = submitted(gate_setup, user_for)
    with pytest.raises(PermissionDenied):  # the author is the ml_engineer test user
        signing.release_sign(actor=release.author, release=release, password=PASSWORD)
    from tests.factories import UserFactory

    lead = UserFactory(username="ml-lead", role="ml_engineer")
    signing.release_sign(actor=lead, release=release, password=PASSWORD)
    release.refresh_from_db()
    assert release.status == "approved"


def test_a_signature_needs_the_password_and_a_failure_is_recorded(gate_setup, user_for, director):
    release = submitted(gate_setup, user_for)
    with pytest.raises(ValidationError, match="does not match"):
        signing.release_sign(actor=director, release=release, password="wrong")
    assert SigningAttempt.objects.filter(user=director, outcome="failed").count() == 1
    assert AuditEvent.objects.filter(action="signature.failed").count() == 1
    with pytest.raises(ValidationError, match="user name"):
        signing.release_sign(
            actor=director, release=release, password=PASSWORD, username="someone-else"
        )
    with pytest.raises(ValidationError, match="every component"):
        signing.release_sign(
            actor=director, release=release, password=PASSWORD, require_username=True
        )
    release.refresh_from_db()
    assert release.signatures.filter(meaning="approval").count() == 0


def test_repeated_failures_lock_signing_and_alert_compliance(gate_setup, user_for, director):
    release = submitted(gate_setup, user_for)
    for _ in range(signing.MAX_FAILURES):
        with pytest.raises(ValidationError):
            signing.release_sign(actor=director, release=release, password="wrong")
    assert signing.is_locked(director)
    with pytest.raises(PermissionDenied, match="locked"):  # even with the right password
        signing.release_sign(actor=director, release=release, password=PASSWORD)
    alert = Alert.objects.get(layer="governance", metric__startswith="signing_locked:")
    assert alert.routed_role == "compliance_officer" and alert.status == "open"
    with pytest.raises(PermissionDenied):
        signing.signing_unlock(actor=user_for("ml_engineer"), user=director, reason="checked")
    signing.signing_unlock(actor=user_for("compliance_officer"), user=director, reason="ID seen")
    alert.refresh_from_db()
    assert alert.status == AlertStatus.RESOLVED
    signing.release_sign(actor=director, release=release, password=PASSWORD)
    release.refresh_from_db()
    assert release.status == "approved"


def test_changing_the_content_voids_every_signature_visibly(gate_setup, user_for, director):
    release = approve(submitted(gate_setup, user_for), user_for)
    assert release.status == "approved"
    releases.release_update(
        actor=release.author, release=release,
        changes={"score_mapping": {"method": "logistic", "intercept": -0.4, "slope": 0.8}},
        reason="refit on the full window",
    )  # fmt: skip
    release.refresh_from_db()
    assert release.status == "draft" and release.approved_at is None
    assert releases.valid_signatures(release) == []  # the author's authorship too
    voided = list(release.signatures.all())
    assert all(s.voided_at and "refit on the full window" in s.void_reason for s in voided)
    with pytest.raises(ValidationError):
        deploy.release_deploy(actor=director, release=release)
    # Signed again from the start, it deploys; the old void signatures are no live finding.
    releases.release_submit(actor=release.author, release=release, password=PASSWORD)
    deploy.release_deploy(actor=director, release=approve(release, user_for))
    assert not [f for f in checks.run() if f.kind == "voided_signature"]


def test_only_the_author_changes_a_release(gate_setup, user_for, director):
    release = submitted(gate_setup, user_for)
    with pytest.raises(PermissionDenied, match="author"):
        releases.release_update(
            actor=director, release=release, changes={"thresholds": {"alert": 0.9}}, reason="x"
        )
    with pytest.raises(PermissionDenied, match="author"):
        releases.evidence_file_add(actor=director, release=release, kind="other", name="x",
                                   data=b"x")  # fmt: skip


def test_only_a_needed_signer_may_reject(gate_setup, user_for):
    from tests.factories import UserFactory

    release = submitted(gate_setup, user_for)  # moderate tier: the medical director signs
    with pytest.raises(PermissionDenied, match="needs"):
        releases.release_reject(actor=UserFactory(username="ml-3", role="ml_engineer"),
                                release=release, reason="no")  # fmt: skip


def test_evidence_files_are_stored_with_their_sha256(gate_setup, user_for):
    import hashlib

    release = recalibration(gate_setup, user_for)
    data = b"%PDF-1.4 validation report"
    stored = releases.evidence_file_add(
        actor=release.author, release=release, kind="validation_report", name="report.pdf",
        data=data,
    )  # fmt: skip
    assert stored.sha256 == hashlib.sha256(data).hexdigest() and stored.size == len(data)
    with pytest.raises(ValidationError):
        releases.evidence_file_add(
            actor=release.author, release=release, kind="validation_report", name="x", data=b""
        )


def test_deploying_a_recalibration_makes_the_gate_apply_it(gate_setup, user_for, director):
    from monitoring.stats.recalibration import apply_mapping

    release = approve(submitted(gate_setup, user_for), user_for)
    deploy.release_deploy(actor=director, release=release)
    release.refresh_from_db()
    live = Deployment.objects.get(site=gate_setup.site, ended_at__isnull=True)
    assert list(release.deployments.all()) == [live]
    assert live.score_mapping == {"method": "logistic", "intercept": -0.5, "slope": 0.8}
    assert live.deferral_policy_number is None  # the version had no deferral policy yet
    assert release.deploy_seconds is not None and release.deploy_seconds < 60
    response = gate_setup.post(score=0.7)
    assert response.status_code == 201, response.content
    event = PredictionEvent.objects.get(event_id=response.json()["event_id"])
    assert event.raw_score == 0.7
    assert event.score == pytest.approx(apply_mapping(0.7, -0.5, 0.8))
    assert event.deployment_id == live.pk


def test_a_threshold_change_keeps_the_live_recalibration(gate_setup, user_for, director):
    first = approve(submitted(gate_setup, user_for), user_for)
    deploy.release_deploy(actor=director, release=first)
    change = releases.release_create(
        actor=user_for("ml_engineer"), model=gate_setup.version.model, kind="threshold",
        title="Alert at 0.7", rationale="Alert fatigue", sites=[gate_setup.site],
        thresholds={"alert": 0.7},
    )  # fmt: skip
    releases.release_submit(actor=change.author, release=change, password=PASSWORD)
    deploy.release_deploy(actor=director, release=approve(change, user_for))
    live = Deployment.objects.get(site=gate_setup.site, ended_at__isnull=True)
    assert live.thresholds == {"alert": 0.7}
    assert live.score_mapping["intercept"] == -0.5


def test_rollback_restores_the_exact_previous_configuration(gate_setup, user_for, director):
    version = gate_setup.version
    DeferralPolicy.objects.create(version=version, number=1, threshold_margin=0.05, reason="v1")
    base = approve(submitted(gate_setup, user_for, score_mapping={
        "method": "intercept", "intercept": 0.3, "slope": 1}), user_for)  # fmt: skip
    deploy.release_deploy(actor=director, release=base)
    before = Deployment.objects.get(site=gate_setup.site, ended_at__isnull=True)
    DeferralPolicy.objects.create(version=version, number=2, threshold_margin=0.2, reason="v2")
    change = releases.release_create(
        actor=user_for("ml_engineer"), model=version.model, kind="deferral_policy",
        title="Wider margin", rationale="Too many near-threshold acts", sites=[gate_setup.site],
        deferral_policy_number=2, thresholds={"alert": 0.5},
    )  # fmt: skip
    releases.release_submit(actor=change.author, release=change, password=PASSWORD)
    deploy.release_deploy(actor=director, release=approve(change, user_for))
    after = Deployment.objects.get(site=gate_setup.site, ended_at__isnull=True)
    assert (after.deferral_policy_number, after.thresholds) == (2, {"alert": 0.5})

    rollback = releases.rollback_propose(
        actor=user_for("ml_engineer"), model=version.model, sites=[gate_setup.site],
        rationale="Deferrals doubled overnight", origin={"incident": 7},
    )  # fmt: skip
    assert rollback.status == "submitted" and rollback.restores == {"NORTH": before.pk}
    signing.release_sign(actor=director, release=rollback, password=PASSWORD)  # one signature
    rollback.refresh_from_db()
    assert rollback.status == "deployed" and rollback.deploy_seconds is not None
    restored = Deployment.objects.get(site=gate_setup.site, ended_at__isnull=True)
    assert restored.pk not in (before.pk, after.pk)  # a new row: history is never rewritten
    assert (restored.version_id, restored.score_mapping, restored.thresholds,
            restored.deferral_policy_number) == (
        before.version_id, before.score_mapping, before.thresholds, before.deferral_policy_number
    )  # fmt: skip
    response = gate_setup.post(score=0.547)  # mapped to 0.62: within v1 0.05 of 0.6: defer
    assert response.json()["policy_version"] == 1
    assert response.json()["action"] == "defer"


def test_nothing_to_roll_back_to_is_refused(gate_setup, user_for):
    Deployment.objects.all()  # only the go-live deployment exists
    with pytest.raises(ValidationError, match="Nothing to roll back to"):
        releases.rollback_propose(
            actor=user_for("ml_engineer"), model=gate_setup.version.model,
            sites=[gate_setup.site], rationale="x",
        )  # fmt: skip


def test_checks_find_a_deployment_made_behind_the_workflows_back(gate_setup, user_for, director):
    findings = checks.run()
    unsigned = [f for f in findings if f.kind == "unsigned_deployment"]
    assert [f.details["deployment"] for f in unsigned] == [gate_setup.deployment.pk]
    alert = Alert.objects.get(metric=f"unsigned_deployment:deployment:{gate_setup.deployment.pk}")
    assert alert.layer == "governance" and alert.incident is not None
    assert alert.incident.slice_key == "governance"
    # Through a signed release the finding goes away and its alert resolves.
    release = approve(submitted(gate_setup, user_for), user_for)
    deploy.release_deploy(actor=director, release=release)
    assert not [f for f in checks.run() if f.kind == "unsigned_deployment"]
    alert.refresh_from_db()
    assert alert.status == AlertStatus.RESOLVED
    # A second run the same day adds nothing: deduplicated by fingerprint.
    assert Incident.objects.filter(slice_key="governance").count() == 1


def test_checks_find_a_release_edited_outside_vigil(gate_setup, user_for, director):
    release = approve(submitted(gate_setup, user_for), user_for)
    deploy.release_deploy(actor=director, release=release)
    from django.db import connection

    with connection.cursor() as cursor:  # an edit straight in the database, around Vigil
        cursor.execute(
            f"UPDATE {Release._meta.db_table} SET rationale = %s WHERE id = %s",
            ["edited in the database", release.pk],
        )
    found = [f for f in checks.run() if f.kind == "voided_signature"]
    assert len(found) == 1 and found[0].band == "red"
    assert found[0].details["content_altered"] is True
    release.refresh_from_db()
    assert releases.valid_signatures(release) == []


def test_checks_find_a_voided_signature_on_a_live_release(gate_setup, user_for, director):
    release = approve(submitted(gate_setup, user_for), user_for)
    deploy.release_deploy(actor=director, release=release)
    signature = release.signatures.get(meaning="approval")
    signing.signature_void(
        actor=user_for("compliance_officer"), signature=signature, reason="account compromised"
    )
    found = [f for f in checks.run() if f.kind == "voided_signature"]
    assert found and "1 signature(s) voided" in found[0].summary


def test_a_retrain_release_approves_and_deploys_its_new_version(gate_setup, user_for, director):
    engineer = user_for("ml_engineer")
    new = registry.version_register(
        actor=engineer, model=gate_setup.version.model,
        fields={"version": "2.0.0", "artifact_uri": "s3://m/2", "artifact_sha256": "e" * 64,
                "training_data_source": "EHR", "training_window_start": "2023-01-01",
                "training_window_end": "2023-12-31", "training_set_size": 5000,
                "label_definition": "sepsis within 48h"},
        features=[{"name": "age", "dtype": "numeric", "min_value": 0, "max_value": 120}],
    )  # fmt: skip
    release = releases.release_create(
        actor=engineer, model=new.model, kind="retrain", title="Retrain on 2023",
        rationale="AUC fell to 0.68", version=new, sites=[gate_setup.site],
    )  # fmt: skip
    releases.release_submit(actor=engineer, release=release, password=PASSWORD)
    deploy.release_deploy(actor=director, release=approve(release, user_for))
    new.refresh_from_db()
    assert new.status == "deployed"
    assert Deployment.objects.get(site=gate_setup.site, ended_at__isnull=True).version == new


def test_a_viewer_can_do_nothing(gate_setup, user_for):
    viewer = user_for("viewer")
    with pytest.raises(PermissionDenied):
        recalibration(gate_setup, user_for, actor=viewer)
    release = submitted(gate_setup, user_for)
    with pytest.raises(PermissionDenied):
        signing.release_sign(actor=viewer, release=release, password=PASSWORD)
    with pytest.raises(PermissionDenied):
        deploy.release_deploy(actor=viewer, release=release)


def test_deploying_writes_the_audit_trail(gate_setup, user_for, director):
    release = approve(submitted(gate_setup, user_for), user_for)
    deploy.release_deploy(actor=director, release=release)
    actions = list(
        AuditEvent.objects.filter(action__startswith="release.").values_list("action", flat=True)
    )
    for expected in ("release.create", "release.submitted", "release.in_review",
                     "release.approved", "release.deployed"):  # fmt: skip
        assert expected in actions
    assert AuditEvent.objects.filter(action="signature.sign").count() == 2


def test_a_release_deployed_at_a_frozen_site_stays_frozen(gate_setup, user_for, director):
    from registry.services import deployment_set_frozen

    deployment_set_frozen(actor=director, deployment=gate_setup.deployment, frozen=True,
                          reason="INC-3 red calibration")  # fmt: skip
    release = approve(submitted(gate_setup, user_for), user_for)
    deploy.release_deploy(actor=director, release=release)
    live = Deployment.objects.get(site=gate_setup.site, ended_at__isnull=True)
    assert live.frozen and "INC-3 red calibration" in live.frozen_reason
    answer = gate_setup.post(score=0.7).json()
    assert answer["action"] == "defer"
    assert answer["reasons"][0]["code"] == "frozen_deployment"
    assert answer["score"] == pytest.approx(0.5443, abs=1e-3)  # the mapping applies regardless
