"""CPU seconds used by a process tree (Linux /proc), to report server CPU per request: a figure
that other load on the machine disturbs far less than wall-clock latency does."""

from __future__ import annotations

import os
from pathlib import Path

TICKS = os.sysconf("SC_CLK_TCK")


def _children(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found += [int(p) for p in (task / "children").read_text().split()]
        except OSError:
            continue
    return found


def tree_cpu(pid: int) -> dict[int, float]:
    """CPU seconds (user + system) of ``pid`` and every descendant alive now, by pid."""
    seconds: dict[int, float] = {}
    stack = [pid]
    while stack:
        current = stack.pop()
        try:
            fields = Path(f"/proc/{current}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        seconds[current] = (int(fields[11]) + int(fields[12])) / TICKS
        stack += _children(current)
    return seconds


def used_since(before: dict[int, float], after: dict[int, float]) -> float:
    """CPU seconds used between two ``tree_cpu`` readings (processes born in between count)."""
    return sum(value - before.get(pid, 0.0) for pid, value in after.items())


def pid_from(path: str) -> int | None:
    try:
        return int(Path(path).read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
