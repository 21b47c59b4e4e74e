"""Deployments on PostgreSQL: one live deployment per model and site, history never overwritten."""

from __future__ import annotations

import datetime as dt
import threading

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, connections, transaction
from django.utils import timezone

from governance.audit.selectors import verify_stored_chain
from registry import services
from registry.models import Deployment, DeploymentMode
from tests.factories import ClinicalModelFactory, ModelVersionFactory, SiteFactory


def _live(model: object, site: object) -> list[Deployment]:
    return list(
        Deployment.objects.active().filter(model=model, site=site, mode=DeploymentMode.LIVE)
    )


def test_it_switches_versions_and_keeps_the_history(db: None, director: object) -> None:
    model = ClinicalModelFactory()
    first, second = ModelVersionFactory(model=model), ModelVersionFactory(model=model)
    site = SiteFactory()
    launch = timezone.now() - dt.timedelta(days=30)
    switch = timezone.now() - dt.timedelta(days=1)

    old = services.deployment_start(
        actor=director, version=first, site=site, reason="launch", at=launch
    )
    new = services.deployment_start(
        actor=director, version=second, site=site, reason="retrain", at=switch
    )

    old.refresh_from_db()
    assert old.ended_at == switch and old.end_reason == f"superseded by {second.version}"
    assert _live(model, site) == [new]
    assert Deployment.objects.filter(model=model, site=site).count() == 2
    midway = switch - dt.timedelta(days=10)
    assert list(Deployment.objects.live_at(site=site, model=model, at=midway)) == [old]
    assert list(Deployment.objects.live_at(site=site, model=model, at=timezone.now())) == [new]
    assert old.history.count() == 2  # created, then ended: the row was never overwritten
    assert verify_stored_chain().ok


def test_it_refuses_a_second_live_row_in_the_database(db: None, director: object) -> None:
    model = ClinicalModelFactory()
    first, second = ModelVersionFactory(model=model), ModelVersionFactory(model=model)
    site = SiteFactory()
    services.deployment_start(actor=director, version=first, site=site, reason="launch")

    # Behind the services' back: the partial unique index itself refuses a second live row.
    with pytest.raises(IntegrityError), transaction.atomic():
        Deployment(
            model=model,
            version=second,
            site=site,
            mode=DeploymentMode.LIVE,
            started_by=director,
            reason="sneaked in",
        ).save()

    # A shadow deployment beside the live one is allowed: it never acts.
    services.deployment_start(
        actor=director, version=second, site=site, reason="shadow trial", mode=DeploymentMode.SHADOW
    )
    assert len(_live(model, site)) == 1


def test_two_deployments_started_at_once_supersede_one_another_cleanly(
    transactional_db: None, director: object
) -> None:
    model = ClinicalModelFactory()
    versions = [ModelVersionFactory(model=model) for _ in range(2)]
    site = SiteFactory()
    barrier = threading.Barrier(len(versions))
    outcomes: list[str] = []

    def deploy(version: object) -> None:
        try:
            barrier.wait(timeout=30)
            services.deployment_start(actor=director, version=version, site=site, reason="race")
            outcomes.append("started")
        except (IntegrityError, ValidationError):
            outcomes.append("refused")
        except BaseException as exc:  # reported by the test, not lost in the thread
            outcomes.append(f"error: {exc!r}")
        finally:
            connections.close_all()

    threads = [threading.Thread(target=deploy, args=(v,)) for v in versions]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    # The model row lock serialises them: both start, the second supersedes the first.
    assert outcomes == ["started", "started"], outcomes
    assert len(_live(model, site)) == 1
    from registry.models import Deployment

    rows = list(Deployment.objects.filter(model=model, site=site).order_by("started_at", "pk"))
    assert len(rows) == 2 and rows[0].ended_at is not None and rows[1].ended_at is None
    assert rows[0].end_reason == f"superseded by {rows[1].version.version}"
    assert verify_stored_chain().ok
