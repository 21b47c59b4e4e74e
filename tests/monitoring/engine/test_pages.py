"""The monitoring pages on real results: traffic sent through the gate, profiled and evaluated
by the engine. SOUTH's heart rates run 25 bpm high and its lactate feed drops most values;
NORTH is the reference population."""

from __future__ import annotations

import json
import re
from urllib.parse import quote

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from governance.audit.models import AuditEvent
from monitoring.models import MetricResult, MonitorPolicy, ReferenceProfile
from monitoring.runner import run_now
from tests.monitoring.engine.conftest import rows, write_csv

pytestmark = pytest.mark.django_db

SLUG = "sepsis-ews"


def seed(monitored, days_ago, *, evaluate: bool = True, ends: tuple[int, ...] = (2, 1)) -> None:
    """A reference, six days of traffic at each site (labelled), evaluated for ``ends``."""
    monitored.upload_reference(n=1000)
    for back in range(1, 7):
        day = days_ago(back)
        north = rows(45, seed=100 + back)
        monitored.label(monitored.send(north, day=day, site="NORTH"), north)
        south = rows(45, seed=200 + back, hr_shift=25, lactate_missing=0.6)
        monitored.label(monitored.send(south, day=day, site="SOUTH"), south)
    if evaluate:
        for back in ends:
            run_now(actor=None, window_end=days_ago(back))


@pytest.fixture
def evaluated(monitored, days_ago):
    seed(monitored, days_ago)
    return monitored


def metric_url(metric: str, slice_key: str, window: int = 7) -> str:
    return f"/monitoring/{SLUG}/metric/{metric}/?slice={quote(slice_key, safe='')}&window={window}"


def cell(html: str, slice_key: str, layer: str) -> str:
    """The HTML of one grid cell."""
    row = re.search(rf'<tr data-slice="{re.escape(slice_key)}">(.*?)</tr>', html, re.S)
    assert row, f"no grid row for {slice_key}"
    found = re.search(rf'<td class="cell ([^"]*)" data-layer="{layer}".*?</td>', row[1], re.S)
    assert found, f"no {layer} cell in {slice_key}"
    return found[0]


# --- overview --------------------------------------------------------------------------------


def test_it_shows_every_deployed_model_with_its_worst_band_and_where(evaluated, client_for):
    response = client_for("viewer").get("/monitoring/")

    assert response.status_code == 200
    html = response.content.decode()
    row = re.search(r'<tr id="model-sepsis-ews">(.*?)</tr>', html, re.S)[1]
    assert '<span class="band band-red">red</span>' in row
    assert "Site SOUTH" in row
    assert f'href="/monitoring/{SLUG}/"' in row
    assert re.search(r'<td class="num">[1-9]\d*</td>', row)  # a count of red results


def test_a_model_without_results_says_so_on_the_overview(monitored, client_for):
    html = client_for("viewer").get("/monitoring/").content.decode()
    assert "No reference data uploaded yet." in html


# --- dashboard -------------------------------------------------------------------------------


def test_it_colours_the_grid_and_a_red_cell_links_to_its_metric_page(evaluated, client_for):
    response = client_for("medical_director").get(f"/monitoring/{SLUG}/")

    assert response.status_code == 200
    html = response.content.decode()
    south = cell(html, "site=SOUTH", "data_quality")
    assert "band-red" in south
    assert (
        f'href="/monitoring/{SLUG}/metric/missing_rate:lactate/?slice=site%3DSOUTH&amp;window=7"'
        in (south)
    )
    drift = cell(html, "site=SOUTH", "prediction_quality")
    assert "band-red" in drift and "site%3DSOUTH" in drift
    assert "band-red" not in cell(html, "site=NORTH", "data_quality")
    # The legend, the version, the window and its dates, the time of evaluation.
    assert 'class="legend"' in html and "n too small" in html
    assert "<strong>1.0.0</strong>" in html
    assert '<span aria-current="true">7 days</span>' in html
    latest = MetricResult.objects.filter(window_days=7).latest("window_end")
    assert f"{latest.window_start:%Y-%m-%d} to {latest.window_end:%Y-%m-%d}" in html
    assert "Evaluated" in html and 'id="evaluate-now"' in html


def test_the_window_toggle_shows_the_longer_window(evaluated, client_for):
    html = client_for("viewer").get(f"/monitoring/{SLUG}/?window=30").content.decode()
    assert '<span aria-current="true">30 days</span>' in html
    assert "window=30" in cell(html, "site=SOUTH", "data_quality")
    assert 'id="evaluate-now"' not in html  # a viewer may not run the monitors


def test_a_cell_whose_metrics_all_lack_data_is_grey_and_says_n_too_small(evaluated, client_for):
    html = client_for("viewer").get(f"/monitoring/{SLUG}/").content.decode()
    # No earlier period to compare workflow rates with, and no reviewer decisions yet.
    workflow = cell(html, "all", "workflow")
    assert "band-insufficient" in workflow and "n too small" in workflow


def test_without_reference_data_the_dashboard_says_to_upload_it(monitored, client_for):
    html = client_for("viewer").get(f"/monitoring/{SLUG}/").content.decode()
    assert 'id="empty-state"' in html
    assert f'href="/monitoring/{SLUG}/versions/1.0.0/reference/"' in html
    assert "an ML engineer does this" in html
    assert "manage.py evaluate_monitors --model sepsis-ews" in html


def test_with_reference_but_no_results_the_director_may_evaluate_now(
    monitored, days_ago, client_for
):
    seed(monitored, days_ago, evaluate=False)
    director = client_for("medical_director")
    html = director.get(f"/monitoring/{SLUG}/").content.decode()
    assert "no window has been evaluated yet" in html and 'id="evaluate-now"' in html

    response = director.post(f"/monitoring/{SLUG}/evaluate/", follow=True)

    assert response.redirect_chain[-1][0] == f"/monitoring/{SLUG}/"
    assert MetricResult.objects.filter(band="red", slice_key="site=SOUTH").exists()
    html = response.content.decode()
    assert f"Evaluated {SLUG} for windows ending" in html
    assert 'id="band-grid"' in html
    assert AuditEvent.objects.filter(action="monitoring.evaluated").exists()


def test_evaluate_now_is_refused_to_roles_that_may_not_run_monitors(monitored, client_for):
    assert client_for("viewer").post(f"/monitoring/{SLUG}/evaluate/").status_code == 403
    assert client_for("medical_director").get(f"/monitoring/{SLUG}/evaluate/").status_code == 405


# --- metric page ------------------------------------------------------------------------------


def test_the_metric_page_shows_trend_comparison_and_a_plain_reading(evaluated, client_for):
    response = client_for("quality_safety").get(metric_url("psi:heart_rate", "site=SOUTH"))

    assert response.status_code == 200
    html = response.content.decode()
    assert '<canvas id="trend-chart"' in html and '<canvas id="comparison-chart"' in html
    assert "/static/vendor/chartjs/chart.umd.min.js" in html
    assert "/static/vigil/monitoring.js" in html
    # The series as a table (two window ends), newest first.
    series = re.search(r'<table class="series" id="series-table">(.*?)</table>', html, re.S)[1]
    assert series.count("<tr>") == 3  # header + 2 window ends
    # Every slice compared at the latest window end, this one highlighted.
    table = re.search(r'id="comparison-table">(.*?)</table>', html, re.S)[1]
    for key in ("all", "site=NORTH", "site=SOUTH", "sex=F", "age_band=65+"):
        assert f'data-slice="{key}"' in table
    south = re.search(r'<tr class="this-slice" data-slice="site=SOUTH">(.*?)</tr>', table, re.S)
    assert south and "band-red" in south[1]
    # The plain-words reading.
    reading = re.search(r'<ul class="reading">(.*?)</ul>', html, re.S)[1]
    assert "confidently not green" in reading
    assert "Harmful direction: a rise" in reading
    assert "from n = 270 predictions" in reading
    assert "Siddiqi (2006)" in html  # where the thresholds come from
    # The chart's data: value, interval and each band's line above the neutral 0.
    chart = json.loads(
        re.search(
            r'<script id="metric-chart-data" type="application/json">(.*?)</script>', html, re.S
        )[1]  # fmt: skip
    )
    trend = chart["trend"]
    assert len(trend["labels"]) == 2 and trend["band"][-1] == "red"
    assert trend["thresholds"]["red"][0][-1] == pytest.approx(0.25)
    assert len(trend["thresholds"]["red"]) == 1  # "up": one side only
    assert {row["label"] for row in chart["comparison"]} >= {"Site SOUTH (South Community)"}


def test_a_two_sided_metric_draws_its_thresholds_on_both_sides(evaluated, client_for):
    html = client_for("viewer").get(metric_url("calibration_oe", "all")).content.decode()
    chart = json.loads(
        re.search(
            r'<script id="metric-chart-data" type="application/json">(.*?)</script>', html, re.S
        )[1]  # fmt: skip
    )
    lower, upper = chart["trend"]["thresholds"]["red"]
    assert lower[-1] == pytest.approx(0.7) and upper[-1] == pytest.approx(1.3)
    assert "a change either way" in html


def test_a_metric_without_results_is_still_a_page(monitored, client_for):
    response = client_for("viewer").get(f"/monitoring/{SLUG}/metric/auc/")
    assert response.status_code == 200
    assert 'id="no-results"' in response.content.decode()


@pytest.mark.parametrize(
    "url",
    [
        f"/monitoring/{SLUG}/metric/no_such_metric/",
        f"/monitoring/{SLUG}/metric/psi:no_such_feature/",
        f"/monitoring/{SLUG}/metric/psi/",  # a per-feature metric needs its feature
        "/monitoring/no-such-model/",
        "/monitoring/no-such-model/metric/auc/",
        "/monitoring/no-such-model/policy/",
        f"/monitoring/{SLUG}/versions/9.9.9/reference/",
    ],
)
def test_unknown_models_versions_and_metrics_are_404(monitored, client_for, url):
    assert client_for("viewer").get(url).status_code == 404


def test_anonymous_visitors_are_sent_to_log_in(monitored, client):
    for url in ("/monitoring/", f"/monitoring/{SLUG}/", f"/monitoring/{SLUG}/policy/"):
        response = client.get(url)
        assert response.status_code == 302 and "/accounts/login/" in response["Location"]


# --- reference data ---------------------------------------------------------------------------


def test_the_reference_page_lists_profiles_with_their_baselines(monitored, client_for):
    profile = monitored.upload_reference(n=600)
    html = client_for("viewer").get(f"/monitoring/{SLUG}/versions/1.0.0/reference/").content
    html = html.decode()
    assert profile.file_sha256 in html and "reference.csv" in html and "in force" in html
    auc = profile.baseline["all"]["auc"]["value"]
    assert f"{auc:.3f}" in html
    assert 'id="upload"' not in html  # only an ML engineer uploads


def test_an_upload_with_problems_lists_every_one_and_stores_nothing(monitored, client_for):
    data = rows(300, seed=3)
    data[4]["heart_rate"] = "fast"
    data[9]["care_unit"] = "theatre"
    data[13]["age_band"] = "90+"
    path = write_csv(monitored.tmp / "bad.csv", data)
    upload = SimpleUploadedFile("bad.csv", path.read_bytes(), content_type="text/csv")

    response = client_for("ml_engineer").post(
        f"/monitoring/{SLUG}/versions/1.0.0/reference/upload/", {"file": upload, "note": "x"}
    )

    assert response.status_code == 200
    html = response.content.decode()
    problems = re.search(r'<ul class="problems" id="problems">(.*?)</ul>', html, re.S)[1]
    assert problems.count("<li>") == 3
    assert "heart_rate: not a number: 1 row (row 5)" in problems
    assert "theatre" in problems and "90+" in problems
    assert "nothing was stored" in html
    assert not ReferenceProfile.objects.exists()


def test_a_clean_upload_is_stored_and_shown(monitored, client_for):
    path = write_csv(monitored.tmp / "ref.csv", rows(400, seed=8))
    upload = SimpleUploadedFile("ref.csv", path.read_bytes(), content_type="text/csv")
    response = client_for("ml_engineer").post(
        f"/monitoring/{SLUG}/versions/1.0.0/reference/upload/",
        {"file": upload, "note": "Q3 validation cohort"},
        follow=True,
    )
    assert response.redirect_chain[-1][0] == f"/monitoring/{SLUG}/versions/1.0.0/reference/"
    profile = ReferenceProfile.objects.get()
    assert profile.note == "Q3 validation cohort" and profile.row_count == 400
    assert "Reference profile #1" in response.content.decode()


def test_only_an_ml_engineer_may_upload(monitored, client_for):
    url = f"/monitoring/{SLUG}/versions/1.0.0/reference/upload/"
    assert client_for("medical_director").post(url, {}).status_code == 403
    assert client_for("ml_engineer").post(url, {}).status_code == 200  # the form's errors


# --- monitoring policy ------------------------------------------------------------------------


def test_the_policy_page_shows_the_defaults_per_layer_until_one_is_saved(monitored, client_for):
    html = client_for("viewer").get(f"/monitoring/{SLUG}/policy/").content.decode()
    assert 'id="defaults-note"' in html
    for layer in ("Data quality", "Prediction quality", "Workflow", "Outcome impact"):
        assert f"<h2>{layer}</h2>" in html
    psi = re.search(r'<tr id="metric-psi">(.*?)</tr>', html, re.S)[1]
    assert "0.1" in psi and "0.25" in psi and "Siddiqi" in psi and ">200<" in psi
    assert "Never saved" in html
    assert "Edit the policy" not in html


def _policy_post(form_html: str, **changes: str) -> dict[str, str]:
    """Every input of the edit form with its current value, then ``changes``."""
    data = dict(re.findall(r'<input type="number" name="([^"]+)" value="([^"]*)"', form_html))
    data.update(
        windows=re.search(r'name="windows" value="([^"]*)"', form_html)[1],
        launch_days=re.search(r'name="launch_days" value="([^"]*)"', form_html)[1],
    )
    data.update(changes)
    return data


def test_saving_the_policy_puts_it_in_force_and_the_history_grows(monitored, client_for):
    engineer = client_for("ml_engineer")
    url = f"/monitoring/{SLUG}/policy/edit/"
    form = engineer.get(url).content.decode()

    response = engineer.post(
        url, _policy_post(form, psi__red="0.3", auc__min_n="150", reason="Busy ED at SOUTH")
    )

    assert response.status_code == 302 and response["Location"] == f"/monitoring/{SLUG}/policy/"
    policy = MonitorPolicy.objects.get()
    assert policy.thresholds == {"psi": {"red": 0.3}} and policy.min_samples == {"auc": 150}
    assert policy.windows == [7, 30] and policy.launch_days == 90
    form = client_for("medical_director").get(url).content.decode()
    client_for("medical_director").post(
        url, _policy_post(form, windows="7", reason="Weekly review only")
    )
    assert MonitorPolicy.objects.get().windows == [7]
    assert MonitorPolicy.objects.get().thresholds == {"psi": {"red": 0.3}}  # kept
    html = engineer.get(f"/monitoring/{SLUG}/policy/").content.decode()
    history = re.search(r'<section class="card" id="history">(.*?)</section>', html, re.S)[1]
    assert history.count("<tr") == 3  # header + 2 saves
    assert "Weekly review only" in history and "Busy ED at SOUTH" in history
    assert "windows" in history  # what changed in the second save
    assert "overridden" in html


def test_invalid_policy_input_is_refused_with_messages_on_the_fields(monitored, client_for):
    engineer = client_for("ml_engineer")
    url = f"/monitoring/{SLUG}/policy/edit/"
    form = engineer.get(url).content.decode()

    response = engineer.post(
        url,
        _policy_post(form, windows="7, week", psi__yellow="0.4", auc__min_n="-1", reason=""),
    )

    assert response.status_code == 200
    html = response.content.decode()
    assert "Nothing was saved" in html
    assert "List whole numbers of days separated by commas" in html
    assert "Say why the policy changes" in html
    psi_row = re.search(r'<tr id="row-psi">(.*?)</tr>', html, re.S)[1]
    assert "Need yellow ≤ orange ≤ red." in psi_row
    auc_row = re.search(r'<tr id="row-auc">(.*?)</tr>', html, re.S)[1]
    assert "greater than or equal to 0" in auc_row
    # A window the service refuses comes back on its field too.
    response = engineer.post(url, _policy_post(form, windows="7, 400", reason="x"))
    assert "List one or more distinct window lengths in days (1–365)." in response.content.decode()
    assert not MonitorPolicy.objects.exists()


def test_only_policy_editors_may_open_the_edit_form(monitored, client_for):
    url = f"/monitoring/{SLUG}/policy/edit/"
    assert client_for("viewer").get(url).status_code == 403
    assert client_for("quality_safety").post(url, {}).status_code == 403
    assert client_for("medical_director").get(url).status_code == 200
