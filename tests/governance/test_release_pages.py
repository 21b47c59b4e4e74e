"""Release pages: the inbox, the signature ceremony (every component on the first signing of a
session), voided signatures shown struck through, and the rollback button."""

from __future__ import annotations

import pytest
from django.test import Client

from governance import deploy, releases, signing
from governance.models import Release
from registry.models import Deployment
from tests.factories import PASSWORD

pytestmark = pytest.mark.django_db


def draft(gate, user_for):
    return releases.release_create(
        actor=user_for("ml_engineer"), model=gate.version.model, kind="recalibration",
        title="Recalibrate NORTH", rationale="O/E 1.4", sites=[gate.site],
        score_mapping={"method": "logistic", "intercept": -0.5, "slope": 0.8},
    )  # fmt: skip


def test_the_author_submits_on_the_page_with_every_component_first(gate_setup, client_for,
                                                                   user_for):  # fmt: skip
    release = draft(gate_setup, user_for)
    engineer = client_for("ml_engineer")
    page = engineer.get(f"/governance/releases/{release.pk}/")
    assert b'id="sign-username"' in page.content  # first signing of the session
    url = f"/governance/releases/{release.pk}/submit/"
    refused = engineer.post(url, {"password": PASSWORD}, follow=True)
    assert b"every component" in refused.content
    engineer.post(url, {"username": "test-ml_engineer", "password": PASSWORD})
    release.refresh_from_db()
    assert release.status == "submitted"


def test_a_director_signs_then_only_the_password_is_asked(gate_setup, client_for, user_for):
    first, second = draft(gate_setup, user_for), draft(gate_setup, user_for)
    for r in (first, second):
        releases.release_submit(actor=r.author, release=r, password=PASSWORD)
    director = client_for("medical_director")
    inbox = director.get("/governance/")
    assert f"{first.number} Recalibrate NORTH".encode() in inbox.content
    director.post(f"/governance/releases/{first.pk}/sign/",
                  {"username": "test-medical_director", "password": PASSWORD})  # fmt: skip
    first.refresh_from_db()
    assert first.status == "approved"
    page = director.get(f"/governance/releases/{second.pk}/")
    assert b'id="sign-username"' not in page.content and b'id="sign-password"' in page.content
    director.post(f"/governance/releases/{second.pk}/sign/", {"password": PASSWORD})
    second.refresh_from_db()
    assert second.status == "approved"


def test_after_an_idle_logout_every_component_is_asked_again(gate_setup, user_for, settings):
    release = draft(gate_setup, user_for)
    releases.release_submit(actor=release.author, release=release, password=PASSWORD)
    director = Client()
    director.login(username="test-medical_director", password=PASSWORD)
    session = director.session
    session[signing.SESSION_KEY] = True
    session["vigil_last_activity"] = 0  # idle since 1970
    session.save()
    director.get("/governance/")  # the idle timeout logs out
    director.login(username="test-medical_director", password=PASSWORD)
    page = director.get(f"/governance/releases/{release.pk}/")
    assert b'id="sign-username"' in page.content


def test_a_wrong_password_is_a_visible_refusal_and_nothing_is_signed(gate_setup, client_for,
                                                                    user_for):  # fmt: skip
    release = draft(gate_setup, user_for)
    releases.release_submit(actor=release.author, release=release, password=PASSWORD)
    response = client_for("medical_director").post(
        f"/governance/releases/{release.pk}/sign/",
        {"username": "test-medical_director", "password": "nope"}, follow=True,
    )  # fmt: skip
    assert b"does not match" in response.content and b"attempt(s) left" in response.content
    assert not release.signatures.filter(meaning="approval").exists()


def test_voided_signatures_are_shown_struck_through_with_the_reason(gate_setup, client_for,
                                                                    user_for):  # fmt: skip
    release = draft(gate_setup, user_for)
    releases.release_submit(actor=release.author, release=release, password=PASSWORD)
    signing.release_sign(actor=user_for("medical_director"), release=release, password=PASSWORD)
    releases.release_update(actor=release.author, release=release,
                            changes={"rationale": "O/E 1.5 on the longer window"},
                            reason="longer window")  # fmt: skip
    page = client_for("viewer").get(f"/governance/releases/{release.pk}/").content.decode()
    assert page.count('class="sig-void"') == 2
    assert "content changed: longer window" in page
    assert 'data-status="draft"' in page  # back to the author, to submit (and sign) again


def test_rollback_from_the_deployments_page(gate_setup, client_for, user_for):
    release = draft(gate_setup, user_for)
    releases.release_submit(actor=release.author, release=release, password=PASSWORD)
    signing.release_sign(actor=user_for("medical_director"), release=release, password=PASSWORD)
    deploy.release_deploy(actor=user_for("medical_director"), release=release)
    slug = gate_setup.version.model.slug
    page = client_for("ml_engineer").get(f"/governance/models/{slug}/deployments/")
    assert b"no signed release" in page.content  # the go-live deployment predates releases
    assert b'id="propose-rollback"' in page.content
    client_for("ml_engineer").post(
        f"/governance/models/{slug}/rollback/",
        {"sites": ["NORTH"], "rationale": "worse after recalibration", "incident": "4"},
    )
    rollback = Release.objects.get(kind="rollback")
    assert rollback.origin == {"incident": 4} and rollback.status == "submitted"
    director = client_for("medical_director")
    director.post(f"/governance/releases/{rollback.pk}/sign/",
                  {"username": "test-medical_director", "password": PASSWORD})  # fmt: skip
    rollback.refresh_from_db()
    assert rollback.status == "deployed"
    live = Deployment.objects.get(site=gate_setup.site, ended_at__isnull=True)
    assert live.score_mapping == {}
    shown = director.get(f"/governance/releases/{rollback.pk}/").content
    assert b'id="deploy-time"' in shown


def test_a_bad_release_form_keeps_what_was_typed_and_names_the_problem(gate_setup, client_for):
    response = client_for("ml_engineer").post("/governance/releases/new/", {
        "model": gate_setup.version.model.slug, "kind": "recalibration", "title": "Recal",
        "rationale": "why", "sites": ["NORTH"], "mapping_method": "logistic",
        "intercept": "0.1", "slope": "-2",
    })  # fmt: skip
    assert response.status_code == 400
    assert b"reverse or flatten risk" in response.content and b'value="Recal"' in response.content
