"""A hostile visitor in a real browser (Debian's Chromium driven by Playwright) against `streamlit run`
on 127.0.0.1: a deep link as a fresh server's first request keeps the router, and a video bomb is
refused from its header while the server keeps answering its health check."""

from __future__ import annotations

import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from browser_support import (
    CHROMIUM,
    CHROMIUM_FLAGS,
    PAGE_TIMEOUT_MS,
    needs_chromium,
    new_page,
    running_app,
    save_screenshot,
    shown_exceptions,
    upload,
)
from helpers import write_clip

from fer_core.app.ui import HOME_PAGE, existing_pages
from fer_core.model_card import default_model_path

pytestmark = [needs_chromium, pytest.mark.browser, pytest.mark.slow]
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (requirements-dev.txt)")


@pytest.fixture(scope="module")
def app_model(request) -> Path:
    shipped = default_model_path()
    return shipped if shipped.is_file() else request.getfixturevalue("tiny_model_path")


def fresh_server(model: Path, log: Path, **env: str):
    """`streamlit run streamlit_app.py` in a new process on 127.0.0.1, so that no session has run yet."""
    return running_app(model, log, **env)


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


class HealthWatch:
    """Polls the server's health check every 0.25 s on a thread; the slowest answer and any failure."""

    def __init__(self, url: str) -> None:
        self.url = f"{url}/_stcore/health"
        self.slowest_s = 0.0
        self.failures: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)

    def _poll(self) -> None:
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                with urllib.request.urlopen(self.url, timeout=5) as answer:
                    if answer.read() != b"ok":
                        self.failures.append("not ok")
            except OSError as exc:
                self.failures.append(repr(exc))
            self.slowest_s = max(self.slowest_s, time.monotonic() - started)
            self._stop.wait(0.25)

    def __enter__(self) -> HealthWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(10)


def press_analyse_until(page, shown, tries: int = 3, wait_ms: int = 20_000) -> float | None:
    """Press Analyse until ``shown`` appears (a press during the rerun that follows the upload is lost);
    the seconds from the successful press to it, or ``None``."""
    for _ in range(tries):
        page.get_by_role("button", name="Analyse", exact=True).click(timeout=PAGE_TIMEOUT_MS)
        started = time.monotonic()
        try:
            shown.first.wait_for(timeout=wait_ms)
            return time.monotonic() - started
        except sync_api.Error:
            continue
    return None


def test_a_video_bomb_is_refused_from_its_header_while_the_server_stays_healthy(app_model, tmp_path):
    bomb = write_clip(tmp_path / "bomb.mp4", 8000, 20)  # the video bomb: a few hundred KB
    assert bomb.stat().st_size < 1_000_000
    with fresh_server(app_model, tmp_path / "streamlit.log") as server, browser() as chromium:
        page = new_page(chromium)
        page.goto(f"{server.url}/Video")
        page.get_by_role("heading", name="Video").first.wait_for(timeout=PAGE_TIMEOUT_MS)
        with HealthWatch(server.url) as health:
            upload(page, bomb)
            refused = page.get_by_text("pixels are too large")
            refused_after_s = press_analyse_until(page, refused)
            if refused_after_s is None:
                pytest.fail(f"no refusal; screenshot {save_screenshot(page, 'video_bomb.png')}\n{server.describe()}")
        text = refused.first.inner_text()
        assert "8000×8000" in text and "FER_MAX_FRAME_PIXELS" in text, text
        assert refused_after_s < 10, f"refused after {refused_after_s:.1f} s: it was decoded first"
        assert not health.failures and health.slowest_s < 2, (health.failures, health.slowest_s)
        assert not shown_exceptions(page)
        assert server.process.poll() is None, server.describe()
