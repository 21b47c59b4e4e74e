"""What the governance checks found: pure data, sent to incidents as one signal per run."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

#: The kinds of governance finding, each a governance-layer alert type.
KINDS = {
    "unsigned_deployment": "Deployment without a complete set of valid signatures",
    "voided_signature": "Voided signature on a live release",
    "overdue_review": "Overdue governance review",
    "incomplete_model_card": "Incomplete model card for a deployed model",
    "overdue_action": "Overdue review action item",
    "signing_locked": "Signing locked after repeated failed attempts",
    "audit_chain_broken": "Audit trail chain broken: the record may have been altered",
}


@dataclass(frozen=True)
class Finding:
    """One governance problem for one model. ``key`` tells findings of one kind apart (a
    deployment id, an action item id); ``details`` holds aggregates and record ids only,
    never patient data."""

    kind: str
    model_id: int
    summary: str
    key: str = ""
    band: str = "orange"
    details: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown governance finding {self.kind!r}")
        if self.band not in ("yellow", "orange", "red"):
            raise ValueError(f"a finding's band is yellow, orange or red, not {self.band!r}")
