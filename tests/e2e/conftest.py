"""End-to-end tests: Vigil served by ``manage.py runserver`` and driven in Debian's Chromium.

The server is a subprocess with its own SQLite file in a temporary ``VIGIL_VAR_DIR``, migrated
and loaded by ``seed_demo`` exactly as ``scripts/demo`` does. (pytest-django's ``live_server``
is not used: its flush DELETEs from the audit table, which the append-only triggers refuse.)
Playwright never downloads a browser: it launches ``/usr/bin/chromium`` (``VIGIL_CHROMIUM``).

Tests here talk to the server only, never to the database in-process: while Playwright's sync
API runs, an asyncio loop is running in the thread and Django refuses synchronous queries.

Without Chromium the tests skip with a loud message, except under ``CI=true`` or
``VIGIL_REQUIRE_SERVICES=1``, where that is a failure.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from governance import demo
from tests.required_services import note_for_scripts_test, services_required

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
CHROMIUM = os.environ.get("VIGIL_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
DEMO_PASSWORD = demo.demo_password()
#: The demo's logins (username -> role) and model names, from the module seed_demo loads.
DEMO_USERS = {user.username: str(user.role) for user in demo.USERS}
DEMO_MODEL_NAMES = [model.fields["name"] for model in demo.MODELS]
MISSING = pytest.StashKey[str]()


def _browser_problem() -> str:
    if not (os.path.isfile(CHROMIUM) and os.access(CHROMIUM, os.X_OK)):
        return f"no Chromium at {CHROMIUM} (Debian: apt-get install chromium)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the playwright package is not installed (pip install -e '.[dev]')"
    return ""


@pytest.hookimpl(trylast=True)  # after -k / -m deselection: only the tests that will run
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    mine = [item for item in items if HERE in item.path.parents]
    if not mine:
        return
    for item in mine:
        item.add_marker(pytest.mark.e2e)
        # The first test also waits for the session's server: migrate and seed_demo.
        item.add_marker(pytest.mark.timeout(900))
    problem = _browser_problem()
    config.stash[MISSING] = problem
    if problem and not services_required():
        for item in mine:
            item.add_marker(pytest.mark.skip(reason=f"e2e browser missing: {problem}"))


@pytest.fixture(scope="session", autouse=True)
def _browser_present(request: pytest.FixtureRequest) -> None:
    """Reached only when the tests were not skipped: a missing browser is then a failure."""
    problem = request.config.stash.get(MISSING, "")
    if problem:
        pytest.fail(
            f"e2e browser missing and required (CI=true or VIGIL_REQUIRE_SERVICES=1): {problem}",
            pytrace=False,
        )


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    problem = config.stash.get(MISSING, "")
    if problem:
        verdict = "FAILED" if services_required() else "SKIPPED"
        terminalreporter.write_sep("!", f"E2E BROWSER TESTS {verdict}", red=True, bold=True)
        terminalreporter.write_line(problem, red=True, bold=True)
        note_for_scripts_test(f"e2e tests {verdict}: {problem}")


def log_in(page: Any, username: str, password: str = DEMO_PASSWORD) -> None:
    """Log in through the login page, as a person would."""
    page.goto("/accounts/login/")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", password)
    page.get_by_role("button", name="Log in").click()


def service_token(server: Server, model: str, prefix: str = "e2e") -> str:
    """A fresh service token for ``model``, made by the management command an operator uses."""
    import uuid

    env = _server_env(server.var_dir)
    name = f"{prefix}-{uuid.uuid4().hex[:8]}"
    done = _manage(env, "create_service_account", name, "--models", model)
    assert done.returncode == 0, f"create_service_account failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout.strip().splitlines()[-1]


def post_prediction(server: Server, token: str, body: dict[str, Any]) -> dict[str, Any]:
    """One prediction through the real gate API, as a model service sends it."""
    import json

    request = urllib.request.Request(
        f"{server.url}/api/v1/predictions/",
        data=json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


# --- The server -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Server:
    url: str
    var_dir: Path
    log: Path


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _server_env(var_dir: Path) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in {"DATABASE_URL", "CELERY_BROKER_URL", "CELERY_RESULT_BACKEND"}
    }
    env.update(
        VIGIL_ENV="development",
        VIGIL_VAR_DIR=str(var_dir),
        VIGIL_DEMO_PASSWORD=DEMO_PASSWORD,
        PYTHONUNBUFFERED="1",
    )
    return env


def _manage(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,  # seed_demo takes 2-3 minutes alone, longer on a loaded machine
    )


def _load_demo(env: dict[str, str]) -> None:
    done = _manage(env, "migrate", "--noinput")
    assert done.returncode == 0, f"migrate failed:\n{done.stdout}\n{done.stderr}"
    done = _manage(env, "seed_demo")
    assert done.returncode == 0, f"seed_demo failed:\n{done.stdout}\n{done.stderr}"


def _wait_until_serving(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"runserver exited ({process.returncode}):\n{log.read_text()}")
        try:
            with urllib.request.urlopen(f"{url}/accounts/login/", timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            time.sleep(0.2)
    pytest.fail(f"runserver did not answer within 60 s:\n{log.read_text()}")


@pytest.fixture(scope="session")
def vigil_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A migrated, seeded Vigil on 127.0.0.1:<free port>, stopped after the session."""
    var_dir = tmp_path_factory.mktemp("vigil-e2e-var")
    env = _server_env(var_dir)
    _load_demo(env)
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    log = var_dir / "runserver.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "manage.py", "runserver", f"127.0.0.1:{port}", "--noreload"],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        _wait_until_serving(url, process, log)
        yield Server(url=url, var_dir=var_dir, log=log)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


# --- The browser ----------------------------------------------------------------------------


@pytest.fixture(scope="package")
def browser() -> Iterator[Any]:
    """One Chromium for the e2e package, closed when the package is done (see the module note
    on Playwright's event loop)."""
    from playwright.sync_api import sync_playwright

    playwright = sync_playwright().start()
    try:
        chromium = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        yield chromium
        chromium.close()
    finally:
        playwright.stop()


@pytest.fixture
def page(browser: Any, vigil_server: Server) -> Iterator[Any]:
    """A fresh browser context (no cookies) per test; a screenshot is kept if the test fails."""
    context = browser.new_context(base_url=vigil_server.url)
    context.set_default_timeout(15_000)
    tab = context.new_page()
    try:
        yield tab
    finally:
        context.close()


# Screenshots of failing tests help more than any assertion message.
@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    if report.when == "call" and report.failed and HERE in item.path.parents:
        tab = getattr(item, "funcargs", {}).get("page")
        if tab is not None and not tab.is_closed():
            shot_dir = ROOT / "test-results"
            shot_dir.mkdir(exist_ok=True)
            path = shot_dir / f"{item.name}.png".replace("/", "_")
            try:
                tab.screenshot(path=str(path), full_page=True)
                report.sections.append(("e2e screenshot", str(path)))
            except Exception as exc:  # a crashed page must not hide the real failure
                report.sections.append(("e2e screenshot", f"could not take one: {exc}"))
    return report
