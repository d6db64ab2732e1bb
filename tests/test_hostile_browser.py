"""A hostile visitor in a real browser (Debian's Chromium driven by Playwright) against `streamlit run`
on 127.0.0.1: a deep link as a fresh server's first request keeps the router, and a video bomb is
refused from its header while the server keeps answering its health check."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from browser_support import (
    CHROMIUM,
    CHROMIUM_FLAGS,
    PAGE_TIMEOUT_MS,
    AppServer,
    free_port,
    needs_chromium,
    new_page,
    save_screenshot,
    shown_exceptions,
    wait_until_healthy,
)

from fer_core.app.ui import HOME_PAGE, existing_pages
from fer_core.model_card import PROJECT_ROOT, default_model_path

pytestmark = [needs_chromium, pytest.mark.browser, pytest.mark.slow]
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (requirements-dev.txt)")


@pytest.fixture(scope="module")
def app_model(request) -> Path:
    shipped = default_model_path()
    return shipped if shipped.is_file() else request.getfixturevalue("tiny_model_path")


@contextmanager
def fresh_server(model: Path, log: Path, **env: str) -> Iterator[AppServer]:
    """`streamlit run streamlit_app.py` in a new process on 127.0.0.1, so that no session has run yet."""
    port = free_port()
    environ = dict(os.environ, FER_MODEL=str(model), FER_ICE_SERVERS="", **env)
    with log.open("w") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", "streamlit_app.py", "--server.headless", "true",
             "--server.address", "127.0.0.1", "--server.port", str(port), "--browser.gatherUsageStats", "false"],
            cwd=PROJECT_ROOT, env=environ, stdout=out, stderr=subprocess.STDOUT)
    server = AppServer(f"http://127.0.0.1:{port}", log, process)
    try:
        wait_until_healthy(server)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


@contextmanager
def browser() -> Iterator:
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=list(CHROMIUM_FLAGS))
        try:
            yield chromium
        finally:
            chromium.close()


def sidebar_entries(page) -> list[str]:
    nav = page.locator('[data-testid="stSidebarNav"] a')
    nav.first.wait_for(timeout=PAGE_TIMEOUT_MS)
    return [nav.nth(i).inner_text().strip().splitlines()[-1] for i in range(nav.count())]  # after the icon


def test_a_deep_link_as_the_first_request_keeps_the_router(app_model, tmp_path):
    """Streamlit decides whether an app uses the old pages/ folder when its first session starts;
    the router must own /Video then, and for every visitor after."""
    titles = [HOME_PAGE.title, *(page.title for page in existing_pages())]
    with fresh_server(app_model, tmp_path / "streamlit.log") as server, browser() as chromium:
        for visitor in range(2):
            page = new_page(chromium)
            page.goto(f"{server.url}/Video")
            page.get_by_role("heading", name="Video").first.wait_for(timeout=PAGE_TIMEOUT_MS)
            entries = sidebar_entries(page)
            if entries != titles:
                save_screenshot(page, f"deep_link_visitor{visitor}.png")
            assert entries == titles, f"visitor {visitor}: the sidebar is not the router's\n{server.describe()}"
            assert not any("streamlit app" in entry.lower() for entry in entries)
            assert not shown_exceptions(page)
            page.context.close()
