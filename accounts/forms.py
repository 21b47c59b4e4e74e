from __future__ import annotations

from typing import Any

from django import forms
from django.contrib.auth.forms import AuthenticationForm

from accounts import services


class LockoutAuthenticationForm(AuthenticationForm):
    """Django's login form, refusing a locked-out username before checking its password."""

    error_messages = {
        **AuthenticationForm.error_messages,
        "locked": (
            "This account is locked after repeated failed logins. Try again after %(until)s UTC "
            "or ask an administrator to unlock it."
        ),
    }

    def clean(self) -> dict[str, Any]:
        username = self.cleaned_data.get("username") or ""
        until = services.login_locked_until(username=username)
        if until is not None:
            if self.request is not None:
                self.request.vigil_locked_out = True  # type: ignore[attr-defined]
            services.login_refused_locked(username=username)
            raise forms.ValidationError(
                self.error_messages["locked"],
                code="locked",
                params={"until": until.strftime("%H:%M")},  # type: ignore[attr-defined]
            )
        return super().clean()
