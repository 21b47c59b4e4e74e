"""The hash chain itself: pure functions, no Django, checked against hashlib by hand."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from governance.audit import chain


def make_chain(n: int) -> list[chain.Link]:
    links, prev = [], chain.GENESIS_HASH
    for seq in range(1, n + 1):
        content = {
            "seq": seq,
            "occurred_at": f"2026-01-01T00:00:{seq:02d}.000000+00:00",
            "actor": "alice",
            "actor_role": "ml_engineer",
            "action": "model.register",
            "object_type": "registry.clinicalmodel",
            "object_id": str(seq),
            "summary": f"event {seq}",
            "payload": {"n": seq},
            "prev_hash": prev,
        }
        digest = chain.event_hash(content)
        links.append(chain.Link(content=content, stored_hash=digest))
        prev = digest
    return links


def test_it_hashes_the_canonical_json_with_sha256():
    content = make_chain(1)[0].content
    expected = hashlib.sha256(
        json.dumps(content, sort_keys=True, separators=(",", ":")).encode()
    ).hexdigest()
    assert chain.event_hash(content) == expected


def test_it_verifies_an_intact_chain():
    verdict = chain.verify(
        make_chain(5), expected_count=5, expected_head=make_chain(5)[-1].stored_hash
    )
    assert verdict.ok and verdict.count == 5


def test_it_names_the_first_altered_event():
    links = make_chain(5)
    altered = dict(links[2].content, summary="rewritten")
    links[2] = chain.Link(content=altered, stored_hash=links[2].stored_hash)
    verdict = chain.verify(links)
    assert not verdict.ok and verdict.broken_seq == 3 and "stored hash" in verdict.reason


def test_it_catches_a_removed_event_in_the_middle():
    links = make_chain(5)
    del links[1]
    verdict = chain.verify(links)
    assert not verdict.ok and verdict.broken_seq == 3 and "gap" in verdict.reason


def test_it_catches_a_rehashed_forgery_by_the_next_link():
    links = make_chain(4)
    forged = dict(links[1].content, summary="forged")
    links[1] = chain.Link(content=forged, stored_hash=chain.event_hash(forged))
    verdict = chain.verify(links)
    assert not verdict.ok and verdict.broken_seq == 3 and "prev_hash" in verdict.reason


def test_it_catches_deleted_newest_events_against_the_head():
    links = make_chain(5)
    verdict = chain.verify(links[:3], expected_count=5, expected_head=links[-1].stored_hash)
    assert not verdict.ok and verdict.broken_seq == 4


def test_it_refuses_naive_times():
    with pytest.raises(ValueError):
        chain.canonical_time(datetime(2026, 1, 1))  # noqa: DTZ001
    assert chain.canonical_time(datetime(2026, 1, 1, tzinfo=UTC)).endswith("+00:00")


@given(
    st.dictionaries(
        st.text(max_size=8), st.one_of(st.integers(), st.text(max_size=8), st.booleans(), st.none())
    )
)
def test_it_hashes_payloads_independently_of_key_order(payload):
    base = dict(make_chain(1)[0].content, payload=payload)
    reordered = dict(base, payload=dict(reversed(list(payload.items()))))
    assert chain.event_hash(base) == chain.event_hash(reordered)


def test_it_imports_without_django():
    code = "import sys; import governance.audit.chain; assert 'django' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)
