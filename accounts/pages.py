"""How a page tells a person that a service refused their action: one message per problem,
labelled by field, shown on the page they return to."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpRequest


def refused(request: HttpRequest, exc: ValidationError | PermissionDenied) -> None:
    """A service's refusal as messages: the role's, or each field's problem with its label."""
    if isinstance(exc, PermissionDenied):
        messages.error(request, str(exc) or "Your role does not allow this.")
    elif hasattr(exc, "error_dict"):
        for field, errors in exc.message_dict.items():
            label = field.replace("_", " ").replace("-", " ").capitalize()
            for error in errors:
                messages.error(request, error if field == "__all__" else f"{label}: {error}")
    else:
        messages.error(request, " ".join(exc.messages))


def form_refused(request: HttpRequest, form: Any) -> None:
    """A form's errors as messages, each with its field's label."""
    for field, errors in form.errors.items():
        label = form.fields[field].label or field if field in form.fields else ""
        for error in errors:
            messages.error(request, f"{str(label).capitalize()}: {error}" if label else error)
