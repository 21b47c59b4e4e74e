from django.apps import AppConfig


class MonitoringConfig(AppConfig):
    """The gate, review queue, profiles, windows and metric results (filled by later issues)."""

    name = "monitoring"
    verbose_name = "Monitoring"
