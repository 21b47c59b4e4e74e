"""Dependencies point one way (DESIGN.md): the audit trail is the bottom layer, statistics are
pure, and registry ← monitoring ← incidents."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
VIGIL_APPS = {"accounts", "registry", "monitoring", "incidents", "governance"}


def imported_modules(package: str, skip: tuple[str, ...] = ()) -> set[str]:
    names: set[str] = set()
    for path in (ROOT / package).rglob("*.py"):
        if "migrations" in path.parts or path.name in skip or any(s in path.parts for s in skip):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names.add(node.module)
            elif isinstance(node, ast.Import):
                names.update(alias.name for alias in node.names)
    return names


def top_levels(modules: set[str]) -> set[str]:
    return {m.split(".")[0] for m in modules}


def test_the_audit_trail_imports_no_other_vigil_app():
    # Its pages and API check roles (accounts); the trail itself (chain, models, record,
    # verification) stands alone.
    modules = imported_modules("governance/audit", skip=("views.py", "urls.py", "api"))
    outside = {
        m for m in modules if m.split(".")[0] in VIGIL_APPS and not m.startswith("governance.audit")
    }
    assert outside == set()


def test_statistics_import_nothing_but_numpy_and_scipy():
    allowed = {
        "numpy",
        "scipy",
        "math",
        "dataclasses",
        "typing",
        "collections",
        "__future__",
        "monitoring",
        "enum",
        "functools",
        "itertools",
        "statistics",
    }
    assert top_levels(imported_modules("monitoring/stats")) <= allowed


@pytest.mark.parametrize(
    ("package", "forbidden"),
    [
        ("registry", {"monitoring", "incidents", "governance.releases"}),
        ("accounts", {"registry", "monitoring", "incidents"}),
        ("monitoring", {"incidents"}),
        # Governance tells incidents what its checks find through a signal.
        ("governance", {"incidents"}),
    ],
)
def test_dependencies_point_one_way(package, forbidden):
    modules = imported_modules(package)
    assert not {m for m in modules if any(m == f or m.startswith(f + ".") for f in forbidden)}
