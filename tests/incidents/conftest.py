"""Incidents build on a monitored deployment (tests/monitoring/engine/conftest.py)."""

from tests.monitoring.conftest import gate_setup  # noqa: F401
from tests.monitoring.engine.conftest import days_ago, monitored  # noqa: F401
