"""The Celery app. Without CELERY_BROKER_URL tasks run eagerly in-process (see settings)."""

from __future__ import annotations

import os

from celery import Celery
from celery.schedules import crontab

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("vigil")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
# Task modules not named tasks.py, which autodiscovery does not find.
app.conf.imports = ["governance.retention_tasks"]

app.conf.beat_schedule = {
    # The audit chain is verified every hour; a break raises a governance alert.
    "verify-audit-chain": {
        "task": "governance.audit.tasks.verify_audit_chain",
        "schedule": crontab(minute=7),
    },
    # Monitoring: today's (and any stale) daily profiles, then every window's evaluation.
    "monitor": {
        "task": "monitoring.tasks.monitor",
        "schedule": crontab(minute=20),
    },
    # Incidents: unacknowledged incidents escalate, the outbox is delivered, suppressions lift.
    "escalate-incidents": {"task": "incidents.tasks.escalate", "schedule": 60.0},
    "deliver-notifications": {"task": "incidents.deliver_notifications", "schedule": 60.0},
    "lift-suppressions": {"task": "incidents.tasks.lift_suppressions", "schedule": 300.0},
    # Governance: what is live must be signed, reviewed and documented; review packs.
    "governance-checks": {
        "task": "governance.tasks.governance_checks",
        "schedule": crontab(minute=35),
    },
    # Retention: prediction events past their period (and under no legal hold) are purged.
    "purge-expired": {
        "task": "governance.retention_tasks.purge_expired",
        "schedule": crontab(hour=3, minute=15),
    },
    "prepare-reviews": {
        "task": "governance.tasks.prepare_reviews",
        "schedule": crontab(hour=5, minute=40),
    },
}
