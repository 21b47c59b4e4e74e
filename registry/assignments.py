"""Which sites a person works at: the scope of the review queue (``registry.SiteAssignment``).

No role may change assignments from a page yet; operators do it with ``manage.py assign_site``
(``actor=None``, the server's own authority), and every change is audited.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from accounts.permissions import is_service_account, require_perms
from governance.audit.services import record
from registry.models import Site, SiteAssignment


def _person(username: str) -> Any:
    user = get_user_model().objects.select_for_update().filter(username=username).first()
    if user is None:
        raise ValidationError({"username": f"No user named {username!r}."})
    if is_service_account(user):
        raise ValidationError({"username": f"{username} is a model service, not a person."})
    return user


def _site(code: str) -> Site:
    site = Site.objects.filter(code=code).first()
    if site is None:
        raise ValidationError({"site": f"No site {code!r}."})
    return site


def _assign(actor: Any, user: Any, site: Site, reason: str) -> SiteAssignment:
    if not site.is_active:
        raise ValidationError({"site": f"Site {site.code} is inactive."})
    assignment = SiteAssignment(user=user, site=site)
    assignment._history_user = actor  # type: ignore[attr-defined]
    assignment._change_reason = reason  # type: ignore[attr-defined]
    try:
        with transaction.atomic():
            assignment.save()
    except IntegrityError as exc:  # assigned concurrently
        message = f"{user} was assigned to {site.code} a moment ago."
        raise ValidationError({"site": message}) from exc
    return assignment


@transaction.atomic
def site_assignment_set(
    *, actor: Any, username: str, site_code: str, assigned: bool, via: str = ""
) -> None:
    """Assign ``username`` to the site (``assigned``) or take the assignment away."""
    require_perms(
        actor,
        "registry.add_siteassignment" if assigned else "registry.delete_siteassignment",
    )
    person = actor if actor is not None and actor.is_authenticated else None
    user, site = _person(username), _site(site_code)
    existing = SiteAssignment.objects.select_for_update().filter(user=user, site=site).first()
    if assigned == (existing is not None):
        state = "already assigned" if assigned else "not assigned"
        raise ValidationError({"site": f"{username} is {state} to {site.code}."})
    reason = via or ("assigned" if assigned else "unassigned")
    if existing is None:  # here: assigning
        assignment_id = _assign(person, user, site, reason).pk
    else:
        assignment_id = existing.pk
        existing._history_user = person  # type: ignore[attr-defined]
        existing._change_reason = reason  # type: ignore[attr-defined]
        existing.delete()
    record(
        actor=actor,
        action="site.assign" if assigned else "site.unassign",
        object_type="registry.siteassignment",
        object_id=assignment_id,
        summary=(
            f"Assigned {username} to {site.code}"
            if assigned
            else f"Removed {username} from {site.code}"
        ),
        payload={"username": username, "site": site.code, "via": via},
    )
