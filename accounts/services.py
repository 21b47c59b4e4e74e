"""Writes of the accounts app: service accounts and login throttling, each audited."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from accounts.models import LoginThrottle, ServiceAccount, hash_token, new_token
from accounts.roles import SERVICE_GROUP, Role
from governance.audit.services import record

ROLE_NAMES = tuple(str(role) for role in Role)


@dataclass(frozen=True)
class IssuedToken:
    account: ServiceAccount
    token: str  # shown once; only its hash is stored


@transaction.atomic
def service_account_create(
    *, actor: object | None, name: str, model_slugs: list[str]
) -> IssuedToken:
    from django.apps import apps

    ClinicalModel = apps.get_model("registry", "ClinicalModel")
    User = get_user_model()
    if not re.fullmatch(r"[a-z0-9][a-z0-9-]{1,79}", name or ""):
        raise ValidationError({"name": "Use lowercase letters, digits and '-' (2-80 characters)."})
    if not model_slugs:
        raise ValidationError({"models": "Name at least one model the service may log for."})
    found = {m.slug: m for m in ClinicalModel.objects.filter(slug__in=model_slugs)}
    unknown = sorted(set(model_slugs) - set(found))
    if unknown:
        raise ValidationError({"models": f"Unknown model(s): {', '.join(unknown)}"})
    username = f"svc-{name}"
    if (
        ServiceAccount.objects.filter(name=name).exists()
        or User.objects.filter(username=username).exists()
    ):
        raise ValidationError({"name": f"A service account named {name!r} already exists."})
    user = User.objects.create_user(username=username, password=None)
    user.groups.add(Group.objects.get(name=SERVICE_GROUP))
    token = new_token()
    account = ServiceAccount.objects.create(
        user=user, name=name, token_hash=hash_token(token), token_hint=token[:10]
    )
    account.clinical_models.set(found.values())
    record(
        actor=actor,  # type: ignore[arg-type]
        action="service_account.create",
        target=account,
        summary=f"Service account {name} created for {', '.join(sorted(found))}",
        payload={"models": sorted(found), "token_hint": account.token_hint},
    )
    return IssuedToken(account=account, token=token)


@transaction.atomic
def login_failed(*, username: str) -> LoginThrottle:
    """Count a failed login; lock the username once the threshold is reached in the window."""
    now = timezone.now()
    window = timedelta(seconds=settings.VIGIL_LOCKOUT_WINDOW_SECONDS)
    throttle, _ = LoginThrottle.objects.select_for_update().get_or_create(username=username[:150])
    if now - throttle.window_started_at > window:
        throttle.failures, throttle.window_started_at = 0, now
    throttle.failures += 1
    record(
        actor=None,
        actor_label=username[:150],
        action="auth.login_failed",
        object_type="auth.user",
        summary=f"Failed login for {username[:150]}",
        payload={"failures_in_window": throttle.failures},
    )
    if throttle.failures >= settings.VIGIL_LOCKOUT_THRESHOLD and not throttle.is_locked(now):
        throttle.locked_until = now + window
        record(
            actor=None,
            actor_label=username[:150],
            action="auth.lockout",
            object_type="auth.user",
            summary=f"{username[:150]} locked out after {throttle.failures} failed logins",
            payload={"locked_until": throttle.locked_until.isoformat()},
        )
    throttle.save()
    return throttle


def login_locked_until(*, username: str) -> object | None:
    throttle = LoginThrottle.objects.filter(username=username).first()
    if throttle and throttle.is_locked():
        return throttle.locked_until
    return None


@transaction.atomic
def login_refused_locked(*, username: str) -> None:
    record(
        actor=None,
        actor_label=username[:150],
        action="auth.login_refused_locked",
        object_type="auth.user",
        summary=f"Login refused: {username[:150]} is locked out",
    )


@transaction.atomic
def login_succeeded(*, user: object) -> None:
    LoginThrottle.objects.filter(username=user.get_username()).delete()  # type: ignore[attr-defined]
    record(actor=user, action="auth.login", target=user, summary=f"{user} logged in")  # type: ignore[arg-type]


@transaction.atomic
def logout_recorded(*, user: object, reason: str) -> None:
    action = "auth.session_timeout" if reason == "idle" else "auth.logout"
    summary = f"{user} signed out after inactivity" if reason == "idle" else f"{user} logged out"
    record(actor=user, action=action, target=user, summary=summary)  # type: ignore[arg-type]


# --- People and roles (operators' management commands) --------------------------------------


def _role_group(role: str) -> Group:
    if role not in ROLE_NAMES:
        raise ValidationError(
            {"role": f"Unknown role {role!r}; use one of {', '.join(ROLE_NAMES)}."}
        )
    return Group.objects.get(name=role)


@transaction.atomic
def user_create(
    *,
    actor: object | None,
    username: str,
    email: str,
    first_name: str,
    last_name: str,
    password: str,
    roles: list[str],
    via: str,
) -> object:
    """A person's account with its roles. The password is checked by the configured validators."""
    from django.contrib.auth import password_validation

    User = get_user_model()
    errors: dict[str, list[str]] = {}
    if User.objects.filter(username=username).exists():
        errors["username"] = [f"A user named {username!r} already exists."]
    if not roles:
        errors["roles"] = ["Give the person at least one role."]
    groups = []
    for role in roles:
        try:
            groups.append(_role_group(role))
        except ValidationError as exc:
            errors.setdefault("roles", []).extend(exc.message_dict["role"])
    candidate = User(username=username, email=email, first_name=first_name, last_name=last_name)
    try:
        candidate.full_clean(exclude=["password"])
    except ValidationError as exc:
        for key, messages in exc.message_dict.items():
            errors.setdefault(key, []).extend(messages)
    try:
        password_validation.validate_password(password, user=candidate)
    except ValidationError as exc:
        errors["password"] = list(exc.messages)
    if errors:
        raise ValidationError(errors)
    candidate.set_password(password)
    candidate.save()
    candidate.groups.set(groups)
    record(
        actor=actor,  # type: ignore[arg-type]
        action="user.create",
        target=candidate,
        summary=f"Created user {username} with roles {', '.join(sorted(roles))}",
        payload={"roles": sorted(roles), "via": via},
    )
    return candidate


@transaction.atomic
def role_set(*, actor: object | None, username: str, role: str, granted: bool, via: str) -> None:
    User = get_user_model()
    user = User.objects.select_for_update().filter(username=username).first()
    if user is None:
        raise ValidationError({"username": f"No user named {username!r}."})
    group = _role_group(role)
    holds = user.groups.filter(pk=group.pk).exists()
    if holds == granted:
        raise ValidationError(
            {"role": f"{username} {'already holds' if holds else 'does not hold'} {role}."}
        )
    (user.groups.add if granted else user.groups.remove)(group)
    record(
        actor=actor,  # type: ignore[arg-type]
        action="user.role_grant" if granted else "user.role_revoke",
        target=user,
        summary=(f"Granted {role} to {username}" if granted else f"Revoked {role} from {username}"),
        payload={"role": role, "via": via},
    )


@transaction.atomic
def login_unlock(*, actor: object | None, username: str, via: str) -> None:
    throttle = LoginThrottle.objects.select_for_update().filter(username=username).first()
    if throttle is None or not throttle.is_locked():
        raise ValidationError({"username": f"{username} is not locked out."})
    throttle.delete()
    record(
        actor=actor,  # type: ignore[arg-type]
        action="auth.unlock",
        object_type="auth.user",
        summary=f"Unlocked {username} after a lock-out",
        payload={"via": via},
    )


@transaction.atomic
def service_account_revoke(*, actor: object | None, name: str, reason: str, via: str) -> None:
    account = ServiceAccount.objects.select_for_update().filter(name=name).first()
    if account is None:
        raise ValidationError({"name": f"No service account named {name!r}."})
    if not account.is_active:
        raise ValidationError({"name": f"{name} is already revoked."})
    if not reason.strip():
        raise ValidationError({"reason": "Say why the token is revoked."})
    account.is_active = False
    account._change_reason = reason  # type: ignore[attr-defined]
    account.save(update_fields=["is_active"])
    record(
        actor=actor,  # type: ignore[arg-type]
        action="service_account.revoke",
        target=account,
        summary=f"Revoked service account {name}",
        payload={"reason": reason, "via": via},
    )
