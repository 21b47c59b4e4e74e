"""Service accounts (model services' API tokens) and the failed-login throttle."""

from __future__ import annotations

import hashlib
import secrets

from django.conf import settings
from django.db import models
from django.utils import timezone
from simple_history.models import HistoricalRecords

TOKEN_PREFIX = "vgl_"


def hash_token(token: str) -> str:
    # Tokens are 256-bit random strings, so a plain sha256 is enough (no slow KDF needed):
    # what is stored cannot be turned back into a usable token.
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


class ServiceAccount(models.Model):
    """A model service. Authenticates with a bearer token; may act only for ``clinical_models``."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="service_account"
    )
    name = models.SlugField(max_length=80, unique=True)
    token_hash = models.CharField(max_length=64, unique=True)
    token_hint = models.CharField(max_length=12, help_text="first characters, to tell tokens apart")
    clinical_models = models.ManyToManyField(
        "registry.ClinicalModel", related_name="service_accounts"
    )
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(default=timezone.now)
    last_used_at = models.DateTimeField(null=True, blank=True)

    history = HistoricalRecords(m2m_fields=[clinical_models])

    def __str__(self) -> str:
        return self.name

    def may_act_for(self, model_slug: str) -> bool:
        return self.is_active and self.clinical_models.filter(slug=model_slug).exists()


class LoginThrottle(models.Model):
    """Failed logins per username; ``locked_until`` set once the threshold is reached."""

    username = models.CharField(max_length=150, unique=True)
    failures = models.PositiveIntegerField(default=0)
    window_started_at = models.DateTimeField(default=timezone.now)
    locked_until = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"{self.username}: {self.failures} failures"

    def is_locked(self, now: object | None = None) -> bool:
        moment = now or timezone.now()
        return self.locked_until is not None and self.locked_until > moment


class BreakGlassGrant(models.Model):
    """Emergency access to one review case outside the holder's sites, for a limited time.

    A person who may view cases (but not at this case's site) states a reason and is let in
    until ``expires_at``; the grant is flagged for compliance, who mark it reviewed with a note.
    ``case_id`` is the ``monitoring.ReviewCase`` id, kept as a plain number because accounts
    sits below monitoring (tests/test_layers.py).
    """

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    case_id = models.PositiveBigIntegerField()
    reason = models.TextField()
    granted_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()
    reviewed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
    )
    reviewed_at = models.DateTimeField(null=True, blank=True)
    review_note = models.TextField(blank=True)

    history = HistoricalRecords()

    class Meta:
        ordering = ["-granted_at"]
        indexes = [
            # The case page asks "does this user hold a live grant for this case?"
            models.Index(fields=["user", "case_id", "expires_at"], name="accounts_bg_active_idx"),
            # The access review page lists the grants compliance has not reviewed yet.
            models.Index(fields=["reviewed_at", "granted_at"], name="accounts_bg_review_idx"),
        ]
        permissions = [
            ("review_access", "Can review access: who saw what, denials, break-glass grants"),
        ]

    def __str__(self) -> str:
        return f"break-glass by {self.user_id} on case #{self.case_id}"

    def is_active(self, now: object | None = None) -> bool:
        return self.expires_at > (now or timezone.now())

    @property
    def is_reviewed(self) -> bool:
        return self.reviewed_at is not None
