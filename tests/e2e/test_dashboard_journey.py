"""The monitoring dashboard in Chromium: the medical director opens the overview, goes to the
sepsis model's dashboard, clicks a red cell and lands on its metric page with the chart and the
slice comparison.

The demo's traffic has the SOUTH lactate feed going silent (``governance.synthetic``); here the
version's reference data set is uploaded and the monitors are evaluated through the same
services, in a ``manage.py shell`` against the server's database (unless that was done
already), so the dashboard has real results to colour.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import DEMO_USERS, Server, _manage, _server_env, log_in

MODEL = "sepsis-ews"
DIRECTOR = next(name for name, role in DEMO_USERS.items() if role == "medical_director")
ENGINEER = next(name for name, role in DEMO_USERS.items() if role == "ml_engineer")

SEED = f"""
import tempfile
from pathlib import Path

from django.contrib.auth import get_user_model
from django.utils import timezone

from governance import synthetic
from monitoring.models import MetricResult, ReferenceProfile
from monitoring.reference import reference_upload
from monitoring.runner import run_now
from registry.models import Deployment, ModelVersion

engineer = get_user_model().objects.get(username={ENGINEER!r})
live = ModelVersion.objects.filter(
    pk__in=Deployment.objects.active().filter(model__slug={MODEL!r}).values("version_id")
)
for version in live:
    if ReferenceProfile.objects.filter(version=version).exists():
        continue
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "reference.csv"
        synthetic.write_reference_csv({MODEL!r}, version.version, path)
        reference_upload(actor=engineer, version=version, path=path, file_name="reference.csv")
if not MetricResult.objects.filter(model__slug={MODEL!r}).exists():
    run_now(actor=None, window_end=timezone.now().date(), model_slug={MODEL!r})
print("red results:", MetricResult.objects.filter(model__slug={MODEL!r}, band="red").count())
"""


@pytest.fixture
def evaluated(vigil_server: Server) -> None:
    done = _manage(_server_env(vigil_server.var_dir), "shell", "-c", SEED)
    assert done.returncode == 0, f"seeding the monitors failed:\n{done.stdout}\n{done.stderr}"
    assert "red results: 0" not in done.stdout, done.stdout


def test_the_director_follows_a_red_cell_to_its_metric_page(
    page: Any, vigil_server: Server, evaluated: None
) -> None:
    log_in(page, DIRECTOR)
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Monitoring").click()
    expect(page).to_have_url(f"{vigil_server.url}/monitoring/")
    sepsis = page.locator(f"tr#model-{MODEL}")
    expect(sepsis.locator(".band")).to_have_text("red")

    sepsis.get_by_role("link").first.click()
    expect(page).to_have_url(f"{vigil_server.url}/monitoring/{MODEL}/")
    grid = page.locator("#band-grid")
    expect(grid).to_be_visible()
    expect(page.locator(".legend")).to_contain_text("n too small")
    # The lactate feed went silent at SOUTH: its data-quality cell is red.
    south = grid.locator('tr[data-slice="site=SOUTH"] td[data-layer="data_quality"]')
    expect(south).to_have_attribute("data-band", "red")

    south.get_by_role("link").click()
    metric_page = rf"/monitoring/{MODEL}/metric/[^/]+/\?slice=site%3DSOUTH&window=7$"
    expect(page).to_have_url(re.compile(re.escape(vigil_server.url) + metric_page))
    expect(page.locator("#reading .band")).to_have_text("red")
    trend = page.locator("canvas#trend-chart")
    expect(trend).to_be_visible()
    # Chart.js (deferred) has drawn both charts from the page's JSON.
    page.wait_for_function(
        "() => window.Chart && ['trend-chart', 'comparison-chart'].every("
        "id => window.Chart.getChart(document.getElementById(id)))"
    )
    comparison = page.locator("#comparison-table")
    expect(comparison).to_be_visible()
    expect(comparison.locator('tr[data-slice="all"]')).to_have_count(1)
    south_row = comparison.locator('tr.this-slice[data-slice="site=SOUTH"]')
    expect(south_row.locator(".band")).to_have_text("red")
    expect(page.locator("canvas#comparison-chart")).to_be_visible()
