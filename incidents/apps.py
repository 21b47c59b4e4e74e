from django.apps import AppConfig


class IncidentsConfig(AppConfig):
    """Alerts, incidents, runbooks, routing, escalation and freeze (filled by later issues)."""

    name = "incidents"
    verbose_name = "Incidents"
