"""Shared by the integration and e2e conftests: when a missing server or browser may skip."""

from __future__ import annotations

import os


def services_required() -> bool:
    """In CI (or when asked) a missing PostgreSQL, Redis or Chromium fails instead of skipping."""
    return (
        os.environ.get("CI", "").lower() == "true"
        or os.environ.get("VIGIL_REQUIRE_SERVICES") == "1"
    )


def note_for_scripts_test(line: str) -> None:
    """scripts/test repeats these lines in its final summary, so a skip cannot scroll away."""
    if os.environ.get("VIGIL_TEST_NOTES"):
        with open(os.environ["VIGIL_TEST_NOTES"], "a") as notes:
            notes.write(line.replace("\n", " ") + "\n")
