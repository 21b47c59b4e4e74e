"""Governance builds on a model live at a site through the gate (tests/monitoring/conftest.py)."""

from tests.monitoring.conftest import gate_setup  # noqa: F401
