from django.apps import AppConfig


class GovernanceConfig(AppConfig):
    """RACI, releases and signatures, retraining policy, review meetings, exports. The audit
    trail itself is the separate bottom-layer app ``governance.audit``."""

    name = "governance"
    verbose_name = "Governance"
