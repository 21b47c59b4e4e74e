#!/usr/bin/env python3
"""Verify a Vigil audit trail export (JSON Lines) offline, with Python's standard library only.

    python3 tools/verify_audit_export.py vigil-audit-export.jsonl

Exit 0 and a summary when the file is intact; exit 1 naming the first bad line when any event
was altered, dropped, inserted or reordered, when a hash-only link does not chain, or when the
manifest's counts, hashes or sha256 disagree with the file; exit 2 when the file cannot be read.

What is checked, line by line (the file is read once, in constant memory):

* line 1 is the header (format ``vigil.audit-export`` version 1);
* every following line until the manifest is an ``event`` or a hash-only ``link``, with
  ``seq`` one more than the line before (the first is the header's ``range.first_seq``);
* each line's ``prev_hash`` is the previous line's ``hash`` (``seq`` 1 must start from the
  genesis hash ``000...0``);
* each event's ``hash`` is the sha256 of the canonical JSON of its hashed fields, recomputed
  here exactly as Vigil computes it (keys sorted, no spaces, UTF-8, non-ASCII kept);
* the last line is the manifest: its rows, links, first/last event hash and range match what
  was read, and its ``sha256`` is the sha256 of every byte before the manifest line.

A hash-only link carries no content, so its own hash cannot be recomputed; it is proven by the
chain resuming after it (the next event's ``prev_hash`` is inside that event's hash).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from typing import Any

FORMAT_NAME = "vigil.audit-export"
FORMAT_VERSIONS = {1}
GENESIS_HASH = "0" * 64
# Must equal governance/audit/chain.py HASHED_FIELDS (a test in the repository checks it).
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
LINK_FIELDS = {"type", "seq", "prev_hash", "hash"}


class Broken(Exception):
    def __init__(self, line: int, reason: str) -> None:
        super().__init__(f"line {line}: {reason}")
        self.line = line


def event_hash(content: dict[str, Any]) -> str:
    canonical = json.dumps(
        {name: content[name] for name in HASHED_FIELDS},
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
        allow_nan=False,
    ).encode("utf-8")
    return hashlib.sha256(canonical).hexdigest()


def _parse(raw: bytes, number: int) -> dict[str, Any]:
    if not raw.endswith(b"\n"):
        raise Broken(number, "the file is truncated (the last line has no newline)")
    try:
        value = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise Broken(number, f"not valid JSON ({exc})") from exc
    if not isinstance(value, dict):
        raise Broken(number, "not a JSON object")
    return value


def _check_header(header: dict[str, Any]) -> None:
    if header.get("type") != "header" or header.get("format") != FORMAT_NAME:
        raise Broken(1, f"not a Vigil audit export header (expected format {FORMAT_NAME})")
    if header.get("format_version") not in FORMAT_VERSIONS:
        raise Broken(1, f"unsupported format_version {header.get('format_version')!r}")


class Walk:
    """The state carried from line to line."""

    def __init__(self, header: dict[str, Any]) -> None:
        span = header.get("range") or {}
        self.first_seq = span.get("first_seq")
        self.last_seq = span.get("last_seq")
        self.expected_seq = self.first_seq
        self.prev_hash: str | None = None
        self.rows = self.links = 0
        self.first_event_hash: str | None = None
        self.last_event_hash: str | None = None
        self.anchor: str | None = None  # prev_hash of the first line

    def step(self, line: dict[str, Any], number: int) -> None:
        kind = line.get("type")
        if kind not in ("event", "link"):
            raise Broken(number, f"expected an event or link line, found type {kind!r}")
        seq = line.get("seq")
        if self.expected_seq is None or seq != self.expected_seq:
            raise Broken(
                number,
                f"sequence break: expected #{self.expected_seq}, found #{seq} "
                "(an event was dropped, inserted or reordered)",
            )
        prev_hash = line.get("prev_hash")
        if self.prev_hash is None:
            if seq == 1 and prev_hash != GENESIS_HASH:
                raise Broken(number, "event #1 does not start from the genesis hash")
            self.anchor = prev_hash
        elif prev_hash != self.prev_hash:
            raise Broken(
                number, f"#{seq} does not chain: its prev_hash is not the hash of #{seq - 1}"
            )
        if kind == "event":
            self._event(line, number)
        else:
            self._link(line, number)
        self.prev_hash = line["hash"]
        self.expected_seq = seq + 1

    def _event(self, line: dict[str, Any], number: int) -> None:
        missing = [name for name in (*HASHED_FIELDS, "hash") if name not in line]
        if missing:
            raise Broken(number, f"event lacks {', '.join(missing)}")
        if event_hash(line) != line["hash"]:
            raise Broken(number, f"#{line['seq']} was altered: its content does not match its hash")
        self.rows += 1
        self.first_event_hash = self.first_event_hash or line["hash"]
        self.last_event_hash = line["hash"]

    def _link(self, line: dict[str, Any], number: int) -> None:
        if set(line) != LINK_FIELDS:
            raise Broken(number, "a link must carry exactly type, seq, prev_hash and hash")
        if not (isinstance(line["hash"], str) and len(line["hash"]) == 64):
            raise Broken(number, "a link's hash is not a sha256")
        self.links += 1

    def close(self, manifest: dict[str, Any], number: int, body_sha256: str) -> None:
        read = self.expected_seq - 1 if self.prev_hash is not None else None
        if self.prev_hash is not None and read != self.last_seq:
            raise Broken(number, f"the range ends at #{self.last_seq} but the last line is #{read}")
        if self.prev_hash is None and self.first_seq is not None:
            raise Broken(number, f"the range starts at #{self.first_seq} but holds no lines")
        expected = {
            "rows": self.rows,
            "links": self.links,
            "first_event_hash": self.first_event_hash,
            "last_event_hash": self.last_event_hash,
            "first_seq": self.first_seq,
            "last_seq": self.last_seq,
            "sha256": body_sha256,
        }
        for key, value in expected.items():
            if manifest.get(key) != value:
                raise Broken(
                    number, f"manifest {key} is {manifest.get(key)!r}, the file gives {value!r}"
                )


def verify(path: str) -> dict[str, Any]:
    body = hashlib.sha256()
    whole = hashlib.sha256()
    walk: Walk | None = None
    header: dict[str, Any] = {}
    manifest_seen = False
    number = 0
    with open(path, "rb") as handle:
        for number, raw in enumerate(handle, start=1):
            whole.update(raw)
            if manifest_seen:
                raise Broken(number, "lines after the manifest")
            line = _parse(raw, number)
            if walk is None:
                _check_header(line)
                header, walk = line, Walk(line)
            elif line.get("type") == "manifest":
                walk.close(line, number, body.hexdigest())
                if line.get("filters") != header.get("filters"):
                    raise Broken(number, "the manifest's filters differ from the header's")
                manifest_seen = True
                continue
            else:
                walk.step(line, number)
            body.update(raw)
    if walk is None:
        raise Broken(1, "the file is empty")
    if not manifest_seen:
        raise Broken(number + 1, "no manifest line: the file is truncated")
    return {
        "filters": header.get("filters"),
        "rows": walk.rows,
        "links": walk.links,
        "first_seq": walk.first_seq,
        "last_seq": walk.last_seq,
        "starts_at_genesis": walk.first_seq == 1,
        "anchor_prev_hash": walk.anchor,
        "last_event_hash": walk.last_event_hash,
        "chain_head": header.get("chain_head"),
        "file_sha256": whole.hexdigest(),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("file", help="the exported .jsonl file")
    args = parser.parse_args(argv)
    try:
        summary = verify(args.file)
    except Broken as exc:
        print(f"FAILED {args.file}: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"cannot read {args.file}: {exc}", file=sys.stderr)
        return 2
    filters = ", ".join(f"{k}={v}" for k, v in (summary["filters"] or {}).items() if v)
    print(f"OK {args.file}")
    print(f"  filters: {filters or 'none'}")
    print(f"  events: {summary['rows']} with content, {summary['links']} hash-only links")
    print(f"  chain: #{summary['first_seq']} to #{summary['last_seq']}"
          + (" (from genesis)" if summary["starts_at_genesis"] else
             f" (continues from {summary['anchor_prev_hash']})"))  # fmt: skip
    print(f"  last event hash: {summary['last_event_hash']}")
    print(f"  file sha256: {summary['file_sha256']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
