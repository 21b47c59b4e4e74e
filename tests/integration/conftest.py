"""Integration tests: real PostgreSQL, Redis and a Celery worker started by the tests.

``scripts/test`` runs this directory with ``DATABASE_URL`` pointing at PostgreSQL and
``CELERY_BROKER_URL`` / ``VIGIL_TEST_REDIS_URL`` at Redis. When those servers cannot be reached
every test here is skipped with a loud message, except under ``CI=true`` or
``VIGIL_REQUIRE_SERVICES=1``, where a missing server fails every test instead: CI must never
go green because nothing ran.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from tests.required_services import note_for_scripts_test, services_required

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
REDIS_URL = os.environ.get("VIGIL_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
MISSING = pytest.StashKey[str]()


def _postgres_problem() -> str:
    from django.conf import settings

    db = settings.DATABASES["default"]
    if db["ENGINE"] != "django.db.backends.postgresql":
        return f"DATABASE_URL is not PostgreSQL (engine {db['ENGINE']})"
    import psycopg

    try:
        psycopg.connect(
            host=db["HOST"] or None,
            port=db["PORT"] or None,
            user=db["USER"],
            password=db["PASSWORD"],
            dbname=db["NAME"],
            connect_timeout=3,
        ).close()
    except psycopg.Error as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else repr(exc)
        return f"PostgreSQL at {db['HOST']}:{db['PORT']}/{db['NAME']} unreachable: {first_line}"
    return ""


def _redis_problem() -> str:
    import redis

    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=3, socket_timeout=3).ping()
    except redis.RedisError as exc:
        return f"Redis at {REDIS_URL} unreachable: {exc}"
    return ""


@pytest.hookimpl(trylast=True)  # after -k / -m deselection: only the tests that will run
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    mine = [item for item in items if HERE in item.path.parents]
    if not mine:
        return
    for item in mine:
        item.add_marker(pytest.mark.integration)
    problem = "; ".join(p for p in (_postgres_problem(), _redis_problem()) if p)
    config.stash[MISSING] = problem
    if problem and not services_required():
        for item in mine:
            item.add_marker(pytest.mark.skip(reason=f"integration services missing: {problem}"))


@pytest.fixture(scope="session", autouse=True)
def _integration_services_present(request: pytest.FixtureRequest) -> None:
    """Reached only when the tests were not skipped: a missing server is then a failure."""
    problem = request.config.stash.get(MISSING, "")
    if problem:
        pytest.fail(
            f"integration services missing and required (CI=true or VIGIL_REQUIRE_SERVICES=1): "
            f"{problem}",
            pytrace=False,
        )


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    problem = config.stash.get(MISSING, "")
    if not problem:
        return
    verdict = "FAILED" if services_required() else "SKIPPED"
    terminalreporter.write_sep("!", f"INTEGRATION TESTS {verdict}", red=True, bold=True)
    terminalreporter.write_line(problem, red=True, bold=True)
    terminalreporter.write_line(
        "Start PostgreSQL and Redis and set VIGIL_TEST_DATABASE_URL / VIGIL_TEST_REDIS_URL "
        "(scripts/test), or run `bash .ci/run` as root to get throwaway servers.",
        red=True,
    )
    note_for_scripts_test(f"integration tests {verdict}: {problem}")


# --- A real Celery worker -------------------------------------------------------------------


@dataclass(frozen=True)
class Worker:
    queue: str
    log: Path


def _database_url(db: dict[str, Any]) -> str:
    credentials = quote(db["USER"] or "", safe="")
    if db["PASSWORD"]:
        credentials += ":" + quote(db["PASSWORD"], safe="")
    return f"postgres://{credentials}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


def _wait_until_ready(app: Any, node: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"Celery worker exited ({process.returncode}):\n{log.read_text()}")
        if app.control.ping(destination=[node], timeout=1):
            return
    pytest.fail(f"Celery worker not ready after 60 s:\n{log.read_text()}")


@pytest.fixture(scope="session")
def celery_worker(django_db_setup: None) -> Iterator[Worker]:
    """``celery -A config worker --pool=solo`` against the test database (``test_<name>``
    that pytest-django created) and Redis, on a queue of its own so no other worker on the same
    Redis can take the tests' tasks. Tests using it need ``transactional_db`` so the worker
    sees their rows committed."""
    from django.db import connection

    from config.celery import app

    queue = f"vigil-test-{uuid.uuid4().hex[:10]}"
    node = f"{queue}@localhost"
    log = Path(tempfile.mkstemp(prefix="vigil-celery-", suffix=".log")[1])
    env = {
        **os.environ,
        "DATABASE_URL": _database_url(connection.settings_dict),
        "CELERY_BROKER_URL": REDIS_URL,
        "CELERY_RESULT_BACKEND": REDIS_URL,
        # Sub-tasks the worker itself sends (chords, groups) must come back to this queue.
        "CELERY_TASK_DEFAULT_QUEUE": queue,
    }
    command = [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "config",
        "worker",
        "--pool=solo",
        "-l",
        "warning",
        "-Q",
        queue,
        "-n",
        node,
        "--without-gossip",
        "--without-mingle",
        "--without-heartbeat",
    ]
    saved = {
        key: app.conf[key]
        for key in ("broker_url", "result_backend", "task_always_eager", "task_default_queue")
    }
    # Settings read CELERY_BROKER_URL at import time; scripts/test sets it, and this makes sure
    # a bare `pytest tests/integration` cannot pass by running the task eagerly in-process.
    app.conf.update(
        broker_url=REDIS_URL,
        result_backend=REDIS_URL,
        task_always_eager=False,
        task_default_queue=queue,
    )
    with log.open("wb") as out:
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        _wait_until_ready(app, node, process, log)
        yield Worker(queue=queue, log=log)
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        app.conf.update(saved)
        log.unlink(missing_ok=True)


# The gate's fixture (a deployed model and a scoped service token), shared with the unit tests.
from tests.monitoring.conftest import gate_setup  # noqa: E402, F401
from tests.monitoring.engine.conftest import days_ago, monitored  # noqa: E402, F401
