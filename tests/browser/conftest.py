"""Browser tests: Debian's Chromium, driven by Playwright, clicking through the running shop.

Everything is real: the shop served by its own web server process (tests/browser/servers.py
says why not pytest-django's live_server), a Celery worker, RabbitMQ in the test vhost, the
SMTP sink, on the test database. Starting those takes seconds, so they are started once for
all the browser tests, and so is the browser; each test gets a fresh browser context (its own
cookies) and an empty database, as every transactional test does.

Without Chromium (scripts/ensure-chromium.sh installs it), or when Playwright cannot start it,
the browser tests are skipped, with one line saying why. Playwright never downloads a browser
here: it drives /usr/bin/chromium.

A screenshot of each flow's last step, and of the page of every failed test, is saved in
test-results/screenshots/ (beside the repository's files, ignored by git); the end of the run
says where.
"""

import os
import shutil
from pathlib import Path
from unittest import mock

import pytest
from django.db import connection

from config import queues
from config.celery import app as celery_app
from demo.smtp_sink import DEFAULT_CONTROLS
from testkit.faults import free_port
from testkit.processes import ROOT, SmtpSink, Worker
from tests.browser.servers import WebServer, database_url
from tests.components import missing

CHROMIUM = "/usr/bin/chromium"
# Playwright adds --headless and --no-sandbox (needed as root) itself. The rest keeps Chromium
# from calling home: on a machine without a network its own connections would be refused.
CHROMIUM_ARGS = [
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# TEST_SCREENSHOTS_DIR: where to put them instead (scripts/run-tests.sh gives each of its
# side-by-side runs a folder of its own).
SCREENSHOTS = Path(
    os.environ.get("TEST_SCREENSHOTS_DIR") or ROOT / "test-results" / "screenshots"
).resolve()
SKIP_REASON = "browser tests: "  # how every reason to skip them starts
saved_screenshots = pytest.StashKey[list]()


# --- The browser ----------------------------------------------------------------------------


@pytest.fixture(scope="package")
def chromium():
    """One headless Chromium for every browser test, or one skip reason for all of them."""
    try:
        from playwright.sync_api import Error, sync_playwright
    except ImportError:
        missing(SKIP_REASON + "playwright", "pip install -r requirements.txt")
    if not os.access(CHROMIUM, os.X_OK):
        missing(
            f"{SKIP_REASON}Chromium at {CHROMIUM}",
            "install it with scripts/ensure-chromium.sh (as root) or: "
            "sudo apt-get install -y chromium",
        )
    # Playwright's sync API keeps an asyncio loop running in this thread while the browser is
    # open, and Django's ORM refuses to run "in an async context". It is safe here: nothing but
    # Playwright runs on that loop, never at the same time as the test's queries.
    with mock.patch.dict(os.environ, DJANGO_ALLOW_ASYNC_UNSAFE="true"):
        playwright = sync_playwright().start()
        try:
            browser = playwright.chromium.launch(
                executable_path=CHROMIUM, headless=True, chromium_sandbox=False, args=CHROMIUM_ARGS
            )
        except Error as exc:
            playwright.stop()
            first_line = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            missing(f"{SKIP_REASON}a Chromium that starts", f"{CHROMIUM}: {first_line}")
        shutil.rmtree(SCREENSHOTS, ignore_errors=True)  # this run's screenshots only
        yield browser
        browser.close()
        playwright.stop()


@pytest.fixture
def page(chromium, web, broker, sink):
    """A fresh browser context (no cookies) and a page in it, at the shop's address.

    The queues are empty (the `broker` fixture purges them) and the mail server behaves.
    """
    sink.set(**DEFAULT_CONTROLS)
    context = chromium.new_context(base_url=web.url, viewport={"width": 1280, "height": 900})
    context.set_default_timeout(20_000)
    page = context.new_page()
    yield page
    context.close()


# --- The shop, as the demo runs it ---------------------------------------------------------


@pytest.fixture(scope="package")
def shop_env(chromium, rabbitmq_vhost, django_db_setup, tmp_path_factory):
    """Environment of the shop's processes: the test database, the test vhost, files of its own."""
    root = tmp_path_factory.mktemp("browser")
    env = dict(
        os.environ,
        DJANGO_SETTINGS_MODULE="config.settings",
        # After django_db_setup, the connection's settings name the test database.
        DATABASE_URL=database_url(connection.settings_dict),
        CELERY_BROKER_URL=rabbitmq_vhost.url,
        # The demo's settings: /mailbox/ and the media files are there only under DEBUG.
        DEBUG="1",
        VAR_DIR=str(root),
        MEDIA_ROOT=str(root / "media"),
        JOB_RETRY_BACKOFF_SECONDS="0.2",
        JOB_RETRY_BACKOFF_MAX_SECONDS="2",
    )
    env.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)  # the test process's business, not theirs
    return root, env


@pytest.fixture(scope="package")
def sink(shop_env):
    root, env = shop_env
    sink = SmtpSink(
        port=free_port(),
        maildir=root / "outbox",
        control=root / "smtp-sink.json",
        env=env,
        log_path=root / "smtp-sink.log",
    ).start()
    yield sink
    sink.stop()


@pytest.fixture(scope="package")
def worker(shop_env, sink):
    """One worker for every queue, as `make worker` runs it (the demo runs one per queue)."""
    root, env = shop_env
    worker = Worker(
        celery_app,
        queues.WORK_QUEUE_NAMES,
        env={**env, "EMAIL_PORT": str(sink.port)},
        log_path=root / "worker.log",
        concurrency=2,
    ).start()
    yield worker
    worker.stop()


@pytest.fixture(scope="package")
def web(shop_env, sink, worker):
    """The shop's web server, `manage.py runserver` as in the Procfile; `web.url` is its address."""
    root, env = shop_env
    server = WebServer(
        free_port(),
        env={
            **env,
            "EMAIL_PORT": str(sink.port),
            # The /mailbox/ page reads the sink's mail; the demo page writes its knobs.
            "SMTP_SINK_DIR": str(sink.maildir),
            "SMTP_SINK_CONTROL": str(sink.control),
        },
        log_path=root / "web.log",
    ).start()
    yield server
    server.stop()


# --- Screenshots ------------------------------------------------------------------------------


@pytest.fixture
def screenshot(request, page):
    """screenshot("label"): save the page as it is now, for people to look at after the run.

    The whole page by default; full_page=False takes what the window shows, for the frames
    of another origin (a sandboxed iframe) that Chromium leaves blank outside the window.
    """

    def save(label, full_page=True):
        return _save_screenshot(request.node, page, label, full_page)

    return save


def _save_screenshot(item, page, label, full_page=True):
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    if full_page:
        page.evaluate("window.scrollTo(0, 0)")  # else a sticky header is drawn mid-page
    path = SCREENSHOTS / f"{item.module.__name__.rpartition('.')[2]}.{item.name}.{label}.png"
    page.screenshot(path=path, full_page=full_page)
    item.config.stash.setdefault(saved_screenshots, []).append(path)
    return path


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    if report.skipped and isinstance(report.longrepr, tuple):
        _, _, reason = report.longrepr
        if reason.removeprefix("Skipped: ").startswith(SKIP_REASON):
            # Pytest's summary folds skips of the same place and reason into one line: give
            # them all this file as their place, so that one line says why, not one per test.
            report.longrepr = (__file__, None, reason)
    if not (report.failed and call.when == "call"):
        return report
    fixtures = getattr(item, "funcargs", {})
    page = fixtures.get("page")
    if page is not None and not page.is_closed():
        try:
            path = _save_screenshot(item, page, "failed")
        except Exception as exc:  # a broken page must not hide the test's own failure
            report.sections.append(("screenshot", f"could not take one: {exc!r}"))
        else:
            report.sections.append(("screenshot", f"{path}\nat {page.url}"))
    if "shop_env" in fixtures:
        root, _ = fixtures["shop_env"]
        logs = "\n".join(str(path) for path in sorted(root.glob("*.log")))
        report.sections.append(("logs of the web server, worker and SMTP sink", logs))
    return report


def pytest_terminal_summary(terminalreporter, config):
    paths = config.stash.get(saved_screenshots, [])
    if paths:
        shown = Path(os.path.relpath(SCREENSHOTS, Path.cwd()))
        terminalreporter.write_line(f"browser screenshots: {len(paths)} in {shown}/")
