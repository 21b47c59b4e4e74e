"""Roles are Django groups. This module is the one place that says what each role may do.

The groups are created by a data migration and re-synchronised after every ``migrate`` (so a
permission added by a later model reaches its roles without hand edits). A permission is the
usual ``app_label.codename``.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any


class Role(StrEnum):
    MEDICAL_DIRECTOR = "medical_director"
    COMPLIANCE_OFFICER = "compliance_officer"
    INCIDENT_COMMANDER = "incident_commander"
    ML_ENGINEER = "ml_engineer"
    DATA_ENGINEER = "data_engineer"
    CLINICAL_INFORMATICIST = "clinical_informaticist"
    QUALITY_SAFETY = "quality_safety"
    REVIEWER = "reviewer"
    VIEWER = "viewer"


#: Model services. Not a person's role: the group holds no page permission at all.
SERVICE_GROUP = "service_account"

HUMAN_ROLES: tuple[Role, ...] = tuple(Role)

VIEW_REGISTRY = frozenset(
    f"registry.view_{name}"
    for name in (
        "clinicalmodel",
        "modelversion",
        "featurespec",
        "cohortcolumn",
        "datafeed",
        "site",
        "deployment",
    )
)
VIEW_AUDIT = frozenset({"audit.view_auditevent"})
EXPORT_AUDIT = frozenset({"audit.export_auditevent", "audit.verify_auditevent"})
EDIT_MODELS = frozenset(
    f"registry.{verb}_{name}"
    for verb in ("add", "change")
    for name in ("clinicalmodel", "modelversion", "featurespec", "cohortcolumn", "site")
)
EDIT_FEEDS = frozenset({"registry.add_datafeed", "registry.change_datafeed"})
DEPLOY = frozenset({"registry.add_deployment", "registry.change_deployment"})
FREEZE = frozenset({"registry.freeze_deployment"})
APPROVE = frozenset({"registry.approve_modelversion"})
VIEW_ACCESS = frozenset({"accounts.view_serviceaccount"})
REVIEW_ACCESS = frozenset({"accounts.review_access"})
VIEW_HOLDS = frozenset({"governance.view_legalhold"})
MANAGE_HOLDS = frozenset({"governance.manage_legal_hold"})
# The gate: what a model service may do, and nothing else.
GATE = frozenset(
    {"monitoring.add_predictionevent", "monitoring.add_outcome", "monitoring.add_override"}
)
VIEW_POLICIES = frozenset({"monitoring.view_deferralpolicy"})
EDIT_POLICIES = frozenset({"monitoring.add_deferralpolicy"})
# Case pages show a patient's clinical inputs: minimum necessary, by role and by site.
VIEW_CASES = frozenset({"monitoring.view_reviewcase"})
DECIDE_CASES = frozenset({"monitoring.decide_reviewcase"})
ALL_SITES = frozenset({"monitoring.review_all_sites"})

# Monitoring: results and dashboards are aggregates (no patient data); everyone may read them.
VIEW_MONITORING = frozenset(
    {"monitoring.view_metricresult", "monitoring.view_referenceprofile",
     "monitoring.view_monitorpolicy"}
)
UPLOAD_REFERENCE = frozenset({"monitoring.add_referenceprofile"})
EDIT_MONITOR_POLICY = frozenset({"monitoring.change_monitorpolicy"})
RUN_MONITORS = frozenset({"monitoring.run_evaluation"})

# Incidents: everyone sees alerts and incidents (aggregates); the layer owners and the
# commanders work them; commanders and the medical director resolve and close.
VIEW_INCIDENTS = frozenset(
    {"incidents.view_alert", "incidents.view_incident", "incidents.view_runbook"}
)
WORK_INCIDENTS = frozenset({"incidents.work_incident", "incidents.suppress_alert"})
CLOSE_INCIDENTS = frozenset({"incidents.close_incident"})
EDIT_RUNBOOKS = frozenset({"incidents.change_runbook"})

# Governance: everyone may read releases, the RACI, policies and reviews (no patient data).
VIEW_GOVERNANCE = frozenset(
    f"governance.view_{name}"
    for name in (
        "release",
        "racimatrix",
        "updatepolicy",
        "recommendation",
        "reviewschedule",
        "reviewmeeting",
        "actionitem",
    )
)
PROPOSE_RELEASES = frozenset({"governance.add_release", "governance.change_release"})
SIGN_RELEASES = frozenset({"governance.sign_release"})
DEPLOY_RELEASES = frozenset({"governance.deploy_release"})
EDIT_RACI = frozenset({"governance.change_racimatrix"})
UNLOCK_SIGNING = frozenset({"governance.unlock_signing"})
EDIT_UPDATE_POLICY = frozenset({"governance.change_updatepolicy"})
RECOMMEND = frozenset({"governance.add_recommendation"})
RUN_REVIEWS = frozenset(
    {
        "governance.change_reviewschedule",
        "governance.add_reviewmeeting",
        "governance.change_reviewmeeting",
        "governance.change_actionitem",
    }
)

VIEW_ALL = VIEW_REGISTRY | VIEW_POLICIES | VIEW_MONITORING | VIEW_INCIDENTS | VIEW_GOVERNANCE

ROLE_PERMISSIONS: dict[str, frozenset[str]] = {
    Role.MEDICAL_DIRECTOR: VIEW_ALL | VIEW_AUDIT | DEPLOY | FREEZE | APPROVE | VIEW_CASES
    | DECIDE_CASES | ALL_SITES | EDIT_MONITOR_POLICY | RUN_MONITORS | WORK_INCIDENTS
    | CLOSE_INCIDENTS | EDIT_RUNBOOKS | PROPOSE_RELEASES | SIGN_RELEASES | DEPLOY_RELEASES
    | EDIT_RACI | EDIT_UPDATE_POLICY | RECOMMEND | RUN_REVIEWS | VIEW_HOLDS,
    Role.COMPLIANCE_OFFICER: VIEW_ALL | VIEW_AUDIT | EXPORT_AUDIT | VIEW_ACCESS | WORK_INCIDENTS
    | SIGN_RELEASES | EDIT_RACI | RUN_REVIEWS | UNLOCK_SIGNING | REVIEW_ACCESS | VIEW_HOLDS
    | MANAGE_HOLDS,
    Role.INCIDENT_COMMANDER: VIEW_ALL | FREEZE | WORK_INCIDENTS | CLOSE_INCIDENTS | EDIT_RUNBOOKS,
    Role.ML_ENGINEER: VIEW_ALL | EDIT_MODELS | EDIT_FEEDS | EDIT_POLICIES | UPLOAD_REFERENCE
    | EDIT_MONITOR_POLICY | RUN_MONITORS | WORK_INCIDENTS | PROPOSE_RELEASES | SIGN_RELEASES
    | DEPLOY_RELEASES | EDIT_UPDATE_POLICY | RECOMMEND,
    Role.DATA_ENGINEER: VIEW_ALL | EDIT_FEEDS | WORK_INCIDENTS,
    Role.CLINICAL_INFORMATICIST: VIEW_ALL | EDIT_POLICIES | VIEW_CASES | WORK_INCIDENTS
    | PROPOSE_RELEASES,
    Role.QUALITY_SAFETY: VIEW_ALL | WORK_INCIDENTS | SIGN_RELEASES | RUN_REVIEWS,
    Role.REVIEWER: VIEW_ALL | VIEW_CASES | DECIDE_CASES,
    Role.VIEWER: VIEW_ALL,
    SERVICE_GROUP: GATE,
}


def sync_roles(apps: Any) -> None:
    """Create every role group and give it exactly the permissions listed above.

    ``apps`` is a migration state's registry or the global one. Permissions of models that are
    not yet migrated are skipped; the post-migrate sync grants them once they exist.
    """
    from django.contrib.auth.management import create_permissions

    for app_config in apps.get_app_configs():
        original = getattr(app_config, "models_module", None)
        app_config.models_module = original or True  # migration-state stubs have None
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = original

    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    for role, perms in ROLE_PERMISSIONS.items():
        group, _ = Group.objects.get_or_create(name=str(role))
        wanted = []
        for perm in sorted(perms):
            app_label, codename = perm.split(".", 1)
            wanted.extend(
                Permission.objects.filter(content_type__app_label=app_label, codename=codename)
            )
        group.permissions.set(wanted)


def sync_roles_after_migrate(sender: Any, **kwargs: Any) -> None:
    if sender.name != "accounts":
        return
    from django.apps import apps as global_apps

    sync_roles(kwargs.get("apps") or global_apps)
