"""Shared bits of the operators' account commands."""

from __future__ import annotations

import getpass

from django.core.exceptions import ValidationError
from django.core.management.base import CommandError


def via(command: str) -> str:
    """How an operator's change is attributed in the audit trail: command and OS account."""
    try:
        who = getpass.getuser()
    except Exception:  # noqa: BLE001 - no passwd entry in some containers
        who = "unknown"
    return f"manage.py {command} (os user {who})"


def as_command_error(exc: ValidationError) -> CommandError:
    if hasattr(exc, "error_dict"):
        return CommandError("; ".join(f"{k}: {' '.join(v)}" for k, v in exc.message_dict.items()))
    return CommandError(" ".join(exc.messages))
