from typing import Any

from django.apps import AppConfig


class IncidentsConfig(AppConfig):
    """Alerts, incidents, runbooks, routing, escalation and freeze."""

    name = "incidents"
    verbose_name = "Incidents"

    def ready(self) -> None:
        from governance.signals import checked
        from incidents.governance_alerts import on_checked
        from monitoring.signals import evaluated

        evaluated.connect(_raise_alerts, dispatch_uid="incidents.raise_alerts")
        checked.connect(on_checked, dispatch_uid="incidents.governance_alerts")

        from governance.audit.signals import chain_broken, chain_verified
        from incidents import audit_alerts

        chain_broken.connect(
            audit_alerts.on_chain_broken, dispatch_uid="incidents.audit_alerts.chain_broken"
        )
        chain_verified.connect(
            audit_alerts.on_chain_verified, dispatch_uid="incidents.audit_alerts.chain_verified"
        )


def _raise_alerts(sender: Any, *, version_ids: list[int], window_end: Any, **_: Any) -> None:
    from incidents.alerts import process_results
    from registry.models import ModelVersion

    for version in ModelVersion.objects.filter(pk__in=version_ids).select_related("model"):
        process_results(version=version, window_end=window_end)
