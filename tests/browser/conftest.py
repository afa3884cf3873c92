"""The browser tier's fixtures: Debian's Chromium driven by Playwright, a data folder
with every kind of page the pipeline writes, and a real ``airflow api-server`` over it.

Chromium is the system's (``/usr/bin/chromium``, or ``CHROMIUM_EXECUTABLE``); Playwright
never downloads one. Where it is missing, every test here fails with what to install:
a browser tier that skipped itself would pass without having looked at a page.
Screenshots go to ``test-results/browser/<module>/`` (``BROWSER_OUTPUT`` to move it).
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.browser.pages import (
    CHROMIUM,
    CHROMIUM_ARGS,
    FONT_HINT,
    INSTALL_HINT,
    WINDOW,
    PageWatch,
    chart_font_installed,
)
from tests.conftest import REPO, built_once, make_settings, run_daily_steps

# Two daily runs with a second version trained between them: predictions, monitoring,
# drift and validation pages of two days, a champion and a challenger (or two champions
# in turn, as the gate decides), and two backtests with their grid; before them, a day
# served by the heuristic, run with the aliases cleared (and set back after).
DAYS = (dt.date(2013, 3, 16), dt.date(2013, 3, 17))
HEURISTIC_DAY = dt.date(2013, 3, 15)
BACKTEST = (dt.date(2013, 3, 6), dt.date(2013, 3, 19))


def build_pages(trained_data: Path, data_dir: Path) -> None:
    """``data_dir``: a copy of the trained folder with every page of the pipeline written
    by the pipeline's own steps (dbt docs included)."""
    from ml import registry
    from ml.backtest import make_spec, run_backtest
    from ml.backtest_report import write_grid_report, write_run_report
    from ml.train import train

    shutil.copytree(trained_data, data_dir)
    settings = make_settings(data_dir, dbt_docs=True)
    aliases = registry.read_aliases(settings)
    for alias in aliases:
        registry.clear_alias(settings, alias, reason="pages of a day before any model passed")
    run_daily_steps(settings, HEURISTIC_DAY)
    for alias, version in aliases.items():
        registry.set_alias(settings, alias, version, reason="set back after that day")
    run_daily_steps(settings, DAYS[0])
    train(settings, DAYS[1])
    run_daily_steps(settings, DAYS[1])
    for window in (21, 30):
        spec = make_spec(settings, *BACKTEST, "weekly", window, candidates=["lightgbm"])
        run_backtest(settings, spec, progress=False)
        write_run_report(settings, spec.run_id)
    write_grid_report(settings, *BACKTEST, "lightgbm")


@pytest.fixture(scope="session")
def site_data(trained_data, tmp_path_factory) -> Path:
    """The data folder the browser reads (shared by the tier's modules: never changed)."""
    return built_once(tmp_path_factory, "browsed", lambda d: build_pages(trained_data, d))


@pytest.fixture(scope="module")
def browser() -> Iterator:
    # Per module: Playwright's sync API keeps an asyncio loop running in the process
    # while it is open, and a later module of the same worker that calls asyncio.run
    # (the deadline callback's test) would fail.
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(INSTALL_HINT, pytrace=False)
    if not chart_font_installed():
        pytest.fail(FONT_HINT, pytrace=False)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture(scope="module")
def open_context(browser):
    """``open_context(origin)``: a new browser context (no cookies, the tier's window)
    whose pages may reach ``origin`` only, and its :class:`PageWatch`; closed with the
    module."""
    contexts = []

    def open_(origin: str):
        context = browser.new_context(viewport=WINDOW)
        context.set_default_timeout(30_000)
        context.set_default_navigation_timeout(90_000)  # dbt's docs: 3 MB, on a busy machine
        watch = PageWatch(origin)
        watch.attach(context)
        contexts.append(context)
        return context, watch

    yield open_
    for context in contexts:
        context.close()


@pytest.fixture(scope="module")
def output(request) -> Path:
    """This module's screenshot folder, emptied first."""
    base = Path(os.environ.get("BROWSER_OUTPUT", REPO / "test-results" / "browser"))
    folder = base / request.module.__name__.rsplit(".", 1)[-1]
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    return folder


@pytest.fixture(scope="module")
def api_server(tmp_path_factory, request) -> Iterator:
    """A real ``airflow api-server`` (the simple auth manager's login, the ML plugin) over
    :func:`site_data`. Its metadata database is migrated while the pages are written."""
    from tests.e2e.airflow_stack import AIRFLOW, Stack, base_env, free_port, run

    root = tmp_path_factory.mktemp("api-server")
    served = root / "served"  # linked to the data folder once it is written
    env = base_env(root, root / "lineage", free_port())
    env["ML_DATA_DIR"] = str(served)
    stack = Stack(root, env)
    failures: list[BaseException] = []

    def start() -> None:
        try:
            run([AIRFLOW, "db", "migrate"], env)
            stack.start("api-server", "api-server")
        except BaseException as exc:  # shown by the main thread
            failures.append(exc)

    starting = threading.Thread(target=start)
    starting.start()
    try:
        served.symlink_to(request.getfixturevalue("site_data"), target_is_directory=True)
        starting.join()
        if failures:
            raise failures[0]
        stack.wait_for("the API server", lambda: stack.healthy("metadatabase"), timeout=300)
        yield stack
    finally:
        starting.join()
        stack.stop()
