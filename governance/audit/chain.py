"""The audit hash chain: pure hashing and verification, no Django import.

Each event's ``hash`` is the sha256 of the canonical JSON of its content *including*
``prev_hash``, so altering, removing or reordering any event changes every hash after it.
Canonical JSON: keys sorted, no insignificant whitespace, UTF-8, times as ISO-8601 UTC with
microseconds. An auditor can recompute a chain from an export with nothing but this module.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

GENESIS_HASH = "0" * 64

#: The fields, in an event's content, that the hash covers.
HASHED_FIELDS = (
    "seq",
    "occurred_at",
    "actor",
    "actor_role",
    "action",
    "object_type",
    "object_id",
    "summary",
    "payload",
    "prev_hash",
)


def canonical_time(moment: datetime) -> str:
    if moment.tzinfo is None:
        raise ValueError("audit times must be timezone-aware")
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


def canonical_json(content: Mapping[str, Any]) -> bytes:
    return json.dumps(
        content, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


def event_hash(content: Mapping[str, Any]) -> str:
    """sha256 over the canonical JSON of exactly the hashed fields of ``content``."""
    missing = [name for name in HASHED_FIELDS if name not in content]
    if missing:
        raise ValueError(f"event content lacks {', '.join(missing)}")
    return hashlib.sha256(canonical_json({k: content[k] for k in HASHED_FIELDS})).hexdigest()


@dataclass(frozen=True)
class Link:
    """One stored event as the verifier sees it: its content plus the hash stored with it."""

    content: Mapping[str, Any]
    stored_hash: str


@dataclass(frozen=True)
class Verdict:
    ok: bool
    count: int
    broken_seq: int | None = None
    reason: str = ""
    last_hash: str = GENESIS_HASH


def verify(
    links: Iterable[Link], *, expected_count: int | None = None, expected_head: str | None = None
) -> Verdict:
    """Walk the chain in sequence order and report the first break.

    ``expected_count`` / ``expected_head`` come from the separately stored chain head, so that
    deleting the newest events (which leaves a shorter but internally valid chain) is caught.
    """
    prev_hash = GENESIS_HASH
    count = 0
    for link in links:
        seq = link.content["seq"]
        if seq != count + 1:
            return Verdict(False, count, seq, f"sequence gap: expected {count + 1}, found {seq}")
        if link.content["prev_hash"] != prev_hash:
            return Verdict(False, count, seq, "prev_hash does not match the previous event's hash")
        recomputed = event_hash(link.content)
        if recomputed != link.stored_hash:
            return Verdict(False, count, seq, "content does not match its stored hash")
        prev_hash = link.stored_hash
        count += 1
    if expected_count is not None and expected_count != count:
        return Verdict(
            False,
            count,
            count + 1,
            f"chain head records {expected_count} events but {count} are present",
        )
    if expected_head is not None and expected_head != prev_hash:
        return Verdict(False, count, count, "last event's hash differs from the chain head")
    return Verdict(True, count, last_hash=prev_hash)


def json_roundtrip(value: Any) -> Any:
    """``value`` as it will come back from a JSON column (tuples become lists, and so on)."""
    return json.loads(canonical_json({"v": value}))["v"]
