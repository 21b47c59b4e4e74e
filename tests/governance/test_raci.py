"""The RACI matrix: the one validator, inheritance (model ← default ← built-in), saving with
history and audit, and the grid page and API with their permissions."""

from __future__ import annotations

import copy

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.urls import NoReverseMatch, Resolver404, include, path, resolve, reverse

from config import urls as project_urls
from governance import raci, raci_urls
from governance.api import raci as raci_api
from governance.audit.models import AuditEvent
from governance.models import RaciMatrix
from tests.factories import ClinicalModelFactory, UserFactory

# Until the project's URLconf includes the RACI routes, the tests mount them beside it.
urlpatterns = [
    path("governance/", include((raci_urls.urlpatterns, "governance"))),
    path("api/v1/", include(raci_api.urlpatterns)),
    *project_urls.urlpatterns,
]


@pytest.fixture(autouse=True)
def mounted(settings):
    try:
        reverse("governance:raci-default")
        resolve("/api/v1/raci/")
    except (NoReverseMatch, Resolver404):
        settings.ROOT_URLCONF = __name__


def row(a="role:medical_director", r=("role:ml_engineer",), c=(), i=()):
    return {"A": a, "R": list(r), "C": list(c), "I": list(i)}


# --- the validator ----------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("entries", "activity", "words"),
    [
        ({"model_card": {"R": ["role:ml_engineer"]}}, "model_card", "exactly one Accountable"),
        ({"model_card": row(a="")}, "model_card", "exactly one Accountable"),
        (
            {"model_card": row(a=["role:medical_director", "role:compliance_officer"])},
            "model_card",
            "exactly one Accountable, not 2",
        ),
        ({"periodic_review": row(r=())}, "periodic_review", "at least one Responsible"),
        ({"release.retrain": row(r=("role:surgeon",))}, "release.retrain", "Unknown role"),
        ({"release.rollback": row(a="role:nobody")}, "release.rollback", "Unknown role"),
        ({"model_card": row(c=("user:ghost",))}, "model_card", "No active person named 'ghost'"),
        ({"incidents.coffee": row()}, "incidents.coffee", "Unknown activity"),
        ({"model_card": ["role:ml_engineer"]}, "model_card", "A row maps A"),
        ({"model_card": row() | {"X": []}}, "model_card", "Unknown column X"),
        ({"model_card": row() | {"R": "role:ml_engineer"}}, "model_card", "must be a list"),
        ({"model_card": row(r=("ml_engineer",))}, "model_card", "is not a party"),
        ({"model_card": row(i=("role:ml_engineer",))}, "model_card", "Responsible already"),
        ({"model_card": row(r=("role:ml_engineer", "role:ml_engineer"))}, "model_card", "twice"),
    ],
)
def test_it_refuses_each_invalid_matrix_naming_the_row(entries, activity, words):
    errors = raci.matrix_errors(entries)
    assert set(errors) == {activity}
    assert words in errors[activity]
    assert activity in errors[activity]  # the message names its row


@pytest.mark.django_db
def test_it_refuses_an_inactive_person_and_a_service_account():
    UserFactory(username="gone", role="ml_engineer", is_active=False)
    errors = raci.matrix_errors({"model_card": row(r=("user:gone",))})
    assert "No active person named 'gone'" in errors["model_card"]
    assert "Model-card upkeep" in errors["model_card"]


@pytest.mark.django_db
def test_it_refuses_a_matrix_that_is_not_a_mapping():
    assert "entries" in raci.matrix_errors(["model_card"])


@pytest.mark.django_db
def test_it_accepts_people_roles_and_a_partial_matrix(user_for):
    user_for("ml_engineer")
    entries = {"model_card": row(r=("user:test-ml_engineer", "role:data_engineer"),
                                 c=("role:quality_safety",), i=("role:viewer",))}  # fmt: skip
    assert raci.matrix_errors(entries) == {}
    assert raci.matrix_errors({}) == {}


def test_the_builtin_default_is_valid_and_covers_every_activity(db):
    assert set(raci.BUILTIN) == set(raci.ACTIVITIES)
    assert raci.matrix_errors(raci.BUILTIN) == {}
    assert raci.BUILTIN["incidents.data_quality"]["R"] == ["role:data_engineer"]
    assert raci.BUILTIN["release.deferral_policy"]["R"] == ["role:clinical_informaticist"]
    assert raci.BUILTIN["periodic_review"]["A"] == "role:medical_director"
    assert "role:compliance_officer" in raci.BUILTIN["release.retrain"]["I"]


# --- inheritance ------------------------------------------------------------------------------


def test_a_model_inherits_row_by_row_from_the_default_then_the_builtin(director, user_for):
    model = ClinicalModelFactory()
    qs = row(a="role:compliance_officer", r=("role:quality_safety",))
    raci.raci_save(actor=director, model=None, entries={"periodic_review": qs}, reason="policy")
    mine = row(r=("user:test-medical_director",))
    raci.raci_save(actor=director, model=model, entries={"model_card": mine}, reason="owner")

    rows = raci.effective(model)
    assert rows["model_card"]["R"] == ["user:test-medical_director"]
    assert (rows["model_card"]["inherited"], rows["model_card"]["source"]) == (False, "model")
    assert rows["periodic_review"]["A"] == "role:compliance_officer"
    assert (rows["periodic_review"]["inherited"], rows["periodic_review"]["source"]) == (
        True,
        "default",
    )
    outcome = rows["incidents.outcome"]
    assert outcome["source"] == "builtin" and outcome["inherited"]
    assert raci.accountable(model, "periodic_review") == "role:compliance_officer"
    assert raci.responsible(model, "model_card") == ["user:test-medical_director"]
    # Another model sees the default, not this model's row.
    assert raci.responsible(ClinicalModelFactory(), "model_card") == ["role:ml_engineer"]
    # The default's own rows are not "inherited" on the default's page.
    default = raci.effective(None)
    assert default["periodic_review"]["inherited"] is False
    assert default["model_card"]["source"] == "builtin"


def test_users_of_a_party_are_its_active_people(user_for):
    engineer = user_for("ml_engineer")
    UserFactory(username="retired", role="ml_engineer", is_active=False)
    assert list(raci.users_of("role:ml_engineer")) == [engineer]
    assert list(raci.users_of("user:test-ml_engineer")) == [engineer]
    assert list(raci.users_of("user:retired")) == []
    assert list(raci.users_of("role:unknown")) == []


# --- saving -----------------------------------------------------------------------------------


def test_it_saves_with_history_and_an_audit_event_listing_the_changed_cells(director):
    model = ClinicalModelFactory()
    entries = {"incidents.workflow": row(r=("role:clinical_informaticist",), c=("role:reviewer",))}
    matrix = raci.raci_save(actor=director, model=model, entries=entries, reason="unit lead")
    changed = copy.deepcopy(entries)
    changed["incidents.workflow"]["A"] = "role:quality_safety"
    raci.raci_save(actor=director, model=model, entries=changed, reason="QS owns it")

    matrix.refresh_from_db()
    assert matrix.updated_by == director and matrix.entries == changed
    versions = list(matrix.history.order_by("history_date"))
    assert [v.history_change_reason for v in versions] == ["unit lead", "QS owns it"]
    assert all(v.history_user == director for v in versions)
    event = AuditEvent.objects.filter(action="raci.save").order_by("-seq").first()
    assert event.payload["changes"] == [
        {"activity": "incidents.workflow", "cell": "A", "before": "role:medical_director",
         "after": "role:quality_safety"}
    ]  # fmt: skip
    assert event.payload["model"] == model.slug and event.payload["reason"] == "QS owns it"
    history = raci.raci_history(model)
    assert history[0]["by"] == director.username and history[0]["reason"] == "QS owns it"
    assert history[0]["changes"][0]["after"] == "Quality & safety"


def test_it_refuses_a_save_without_a_reason_an_invalid_row_or_no_change(director):
    with pytest.raises(ValidationError) as exc:
        raci.raci_save(actor=director, model=None, entries={"model_card": row()}, reason=" ")
    assert "reason" in exc.value.message_dict
    with pytest.raises(ValidationError) as exc:
        raci.raci_save(actor=director, model=None, entries={"model_card": row(a="")}, reason="x")
    assert "Model-card upkeep" in exc.value.message_dict["model_card"][0]
    raci.raci_save(actor=director, model=None, entries={"model_card": row()}, reason="x")
    with pytest.raises(ValidationError, match="Nothing changed"):
        raci.raci_save(actor=director, model=None, entries={"model_card": row()}, reason="y")
    assert RaciMatrix.objects.count() == 1


@pytest.mark.parametrize("role", ["viewer", "ml_engineer", "incident_commander"])
def test_only_directors_and_compliance_may_save(user_for, role):
    with pytest.raises(PermissionDenied):
        raci.raci_save(actor=user_for(role), model=None, entries={"model_card": row()}, reason="x")
    raci.raci_save(actor=user_for("compliance_officer"), model=None,
                   entries={"model_card": row()}, reason="x")  # fmt: skip


# --- the grid page ----------------------------------------------------------------------------


def _post_for(form_rows: dict[str, dict], reason: str = "new on-call") -> dict:
    """A POST of the grid: every activity inherited except ``form_rows``."""
    data: dict = {"reason": reason}
    for activity in raci.ACTIVITIES:
        key = activity.replace(".", "__")
        given = form_rows.get(activity)
        if given is None:
            data[f"{key}-inherit"] = "on"
            continue
        data[f"{key}-A"] = given["A"]
        for letter in "RCI":
            data[f"{key}-{letter}"] = given[letter]
    return data


def test_the_page_shows_own_and_inherited_rows_and_saves(client_for, director):
    model = ClinicalModelFactory()
    url = reverse("governance:raci-model", args=[model.slug])
    page = client_for("medical_director").get(url)
    assert page.status_code == 200
    html = page.content.decode()
    assert 'id="raci-grid"' in html and 'data-source="builtin"' in html
    assert "Model-card upkeep" in html

    post = _post_for({"model_card": row(r=("user:test-medical_director",))})
    done = client_for("medical_director").post(url, post)
    assert done.status_code == 302
    assert raci.responsible(model, "model_card") == ["user:test-medical_director"]
    html = client_for("viewer").get(url).content.decode()
    assert 'data-source="model"' in html and "new on-call" in html  # the history


def test_the_page_shows_errors_per_cell_and_saves_nothing(client_for):
    model = ClinicalModelFactory()
    url = reverse("governance:raci-model", args=[model.slug])
    post = _post_for({"model_card": row(a="", r=()), "periodic_review": row(c=("role:nope",))})
    page = client_for("compliance_officer").post(url, post | {"reason": ""})
    assert page.status_code == 200
    html = page.content.decode()
    assert "Nothing was saved" in html
    assert "Name exactly one Accountable." in html and "Name at least one Responsible." in html
    assert "Unknown role &#x27;nope&#x27;." in html  # the validator's words, not the widget's
    assert "This field is required." in html  # the reason
    assert not RaciMatrix.objects.filter(model=model).exists()


def test_the_default_page_is_read_only_for_a_viewer_and_refuses_their_post(client_for):
    url = reverse("governance:raci-default")
    page = client_for("viewer").get(url)
    assert page.status_code == 200 and b'id="raci-form"' not in page.content
    assert b"Medical director" in page.content
    refused = client_for("viewer").post(url, _post_for({"model_card": row()}))
    assert refused.status_code == 403
    assert not RaciMatrix.objects.exists()


# --- the API ----------------------------------------------------------------------------------


def test_the_api_reads_the_default_and_a_models_effective_matrix(api_for, director):
    model = ClinicalModelFactory()
    raci.raci_save(actor=director, model=model, entries={"model_card": row()}, reason="x")
    default = api_for("viewer").get("/api/v1/raci/").json()
    assert default["model"] is None and default["updated_at"] is None
    assert default["matrix"]["incidents.data_quality"]["R"] == ["role:data_engineer"]
    mine = api_for("viewer").get(f"/api/v1/raci/{model.slug}/").json()
    assert mine["matrix"]["model_card"]["source"] == "model"
    assert mine["matrix"]["periodic_review"]["inherited"] is True
    assert mine["updated_by"] == director.username
    assert api_for("viewer").get("/api/v1/raci/no-such-model/").status_code == 404


def test_the_api_puts_a_matrix_and_refuses_invalid_rows_by_name(api_for):
    model = ClinicalModelFactory()
    client = api_for("medical_director")
    url = f"/api/v1/raci/{model.slug}/"
    bad = client.put(url, {"entries": {"release.retrain": row(a="")}, "reason": "x"}, format="json")
    assert bad.status_code == 400
    assert "Release: retrain" in bad.json()["release.retrain"][0]
    ok = client.put(
        url,
        {"entries": {"release.retrain": row(r=("role:data_engineer",))}, "reason": "feeds"},
        format="json",
    )
    assert ok.status_code == 200, ok.json()
    assert ok.json()["matrix"]["release.retrain"]["R"] == ["role:data_engineer"]
    put_default = client.put("/api/v1/raci/", {"entries": {"model_card": row()}, "reason": "d"},
                             format="json")  # fmt: skip
    assert put_default.status_code == 200
    assert RaciMatrix.objects.filter(model__isnull=True).exists()


def test_the_api_refuses_a_viewer_put(api_for):
    body = {"entries": {"model_card": row()}, "reason": "x"}
    assert api_for("viewer").put("/api/v1/raci/", body, format="json").status_code == 403
    assert not RaciMatrix.objects.exists()
