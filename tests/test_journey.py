"""One user through every page of one server, in one Chromium, the way a newcomer would go.

Home → Dataset → Training → Upload (the astronaut photo) → Live camera (fake camera: START, annotated
frames, STOP, summary) → Video (a clip made from the photo) → Explain (the photo) → Upload again →
Live camera again, moving between pages with the sidebar as a user does (one browser session).

Each page is tested on its own elsewhere, each in a fresh server; this test is about what only
their succession shows: the server used to die with SIGSEGV when the Live camera page (pylibsrtp)
was opened after a page had loaded TensorFlow. After every step: the step's own result is on the
page, no page shows an exception, and the server process is alive. Screenshots of every step go to
``artifacts/journey_*.png``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
from browser_support import (
    PAGE_TIMEOUT_MS,
    AppServer,
    camera_clip,
    chromium,
    download_csv,
    metric,
    needs_chromium,
    new_page,
    probabilities,
    returned_label,
    running_app,
    save_screenshot,
    shown_exceptions,
    start_live,
    stop_live,
    upload,
    wait_for_count,
    wait_for_metric,
)

from fer_core.app.ui import HOME_PAGE, existing_pages
from fer_core.inference.detect import detector_for
from fer_core.model_card import ModelCard, default_model_path
from fer_core.settings import default_detector

pytestmark = [needs_chromium, pytest.mark.browser]
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (requirements-dev.txt)")


@dataclass
class Journey:
    """The user's one page (one browser session) on one server, and the steps taken so far."""

    page: object
    app: AppServer
    steps: list[str] = field(default_factory=list)
    console: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.page.on("console", lambda message: self.console.append(f"{message.type}: {message.text}"))

    @contextmanager
    def step(self, name: str) -> Iterator[None]:
        """A step whose block checks its result; afterwards no exception shown and the server alive."""
        self.steps.append(name)
        shot = f"journey_{len(self.steps):02d}_{name}.png"
        try:
            yield
        except Exception as exc:  # noqa: BLE001 - a Playwright timeout, a failed check: say where and how the server is
            save_screenshot(self.page, shot)
            pytest.fail(f"step {len(self.steps)} ({name}) failed: {exc}\n"
                        f"screenshot artifacts/{shot}\n{self.diagnose()}")
        save_screenshot(self.page, shot)
        exceptions = shown_exceptions(self.page)
        assert not exceptions, f"step {name}: the page shows an exception:\n" + "\n".join(exceptions)
        assert self.app.process.poll() is None, f"after step {name}: {self.app.describe()}"

    def open(self, title: str) -> None:
        """Go to a page through its sidebar link, as a user does (the session stays the same)."""
        # The link's text is its icon's name, then the title: match the title at the end, case and
        # all ("videocam", the Live camera's icon, contains "video").
        link = self.page.locator('[data-testid="stSidebarNav"] a').filter(has_text=re.compile(rf"{re.escape(title)}$"))
        link.click(timeout=30_000)
        self.page.wait_for_url(re.compile(rf"/{title.replace(' ', '_')}$"), timeout=PAGE_TIMEOUT_MS)

    def diagnose(self) -> str:
        console = "\n".join(self.console[-30:])
        return f"steps: {' → '.join(self.steps)}\nbrowser console:\n{console}\n{self.app.describe()}"


@pytest.fixture(scope="module")
def shipped_model() -> Path:
    path = default_model_path()
    if not path.is_file():
        pytest.skip(f"the journey runs the shipped model and there is none at {path}")
    return path


@pytest.fixture(scope="module")
def clip(astronaut_path, tmp_path_factory) -> tuple[Path, np.ndarray]:
    return camera_clip(astronaut_path, tmp_path_factory.mktemp("camera"))


@pytest.fixture
def journey(shipped_model, clip, tmp_path) -> Iterator[Journey]:
    with running_app(shipped_model, tmp_path / "streamlit.log") as app, chromium(sync_api, clip[0]) as browser:
        journey = Journey(new_page(browser), app)
        journey.page.goto(app.url)
        yield journey


def check_home(journey: Journey) -> None:
    page = journey.page
    page.get_by_role("heading", name="Facial expression recognition").wait_for(timeout=PAGE_TIMEOUT_MS)
    nav = page.locator('[data-testid="stSidebarNav"] a')
    titles = [HOME_PAGE.title, *(p.title for p in existing_pages())]
    texts = [nav.nth(i).inner_text().strip() for i in range(nav.count())]  # the icon's name, then the title
    assert len(texts) == len(titles) and all(text.endswith(title) for text, title in zip(texts, titles)), texts
    assert wait_for_count(page.locator('[data-testid="stPageLink"]'), len(titles) - 1) == len(titles) - 1


def check_dataset(journey: Journey) -> None:
    page = journey.page
    assert wait_for_metric(page, "Faces loaded", 210, PAGE_TIMEOUT_MS, journey.diagnose) == 210
    wait_for_count(page.locator('[data-testid="stPlotlyChart"]'), 2)  # counts and class balance
    wait_for_count(page.locator('[data-testid="stImage"]'), 15)  # a grid row and a mean face per class, one enlarged


def check_training(journey: Journey) -> None:
    page = journey.page
    assert re.fullmatch(r"\d+(\.\d+)?%", metric(page, "Validation accuracy (TTA)", timeout_ms=PAGE_TIMEOUT_MS))
    wait_for_count(page.locator('[data-testid="stPlotlyChart"]'), 3)  # curves, confusion matrix, calibration


def check_upload(journey: Journey, photo: Path, labels) -> list[list[float]]:
    """Upload the photo; its faces' probabilities as the results CSV gives them."""
    page = journey.page
    upload(page, photo)
    page.get_by_text("Face 1:").first.wait_for(timeout=PAGE_TIMEOUT_MS)
    page.locator('[data-testid="stPlotlyChart"]').first.wait_for(timeout=PAGE_TIMEOUT_MS)
    page.locator('[data-testid="stDataFrame"]').first.wait_for(timeout=PAGE_TIMEOUT_MS)
    found = probabilities(download_csv(page), labels)
    assert len(found) == 1 and abs(sum(found[0]) - 1) < 1e-3
    return found


def check_live_camera(journey: Journey, source: np.ndarray, labels) -> None:
    page = journey.page
    (box,) = detector_for(default_detector("live"), "frame").detect(source)  # as the Live page
    first = start_live(page, journey.diagnose)
    assert wait_for_metric(page, "Frames processed", first + 10, PAGE_TIMEOUT_MS, journey.diagnose) > first
    assert metric(page, "Faces") == "1" and metric(page, "Errors") == "0"
    # The streaming view replaced the summary of any earlier session (its CSV no longer offered).
    assert page.get_by_role("button", name="Per-frame results (CSV)").count() == 0
    label, _ = returned_label(page, source, box, labels)
    assert label in labels, "the returned frame has no label tag above the face"
    stop_live(page)
    assert page.get_by_text(re.compile(r"\d+ frames over")).count() == 1


def check_video(journey: Journey, clip_path: Path) -> None:
    page = journey.page
    upload(page, clip_path)
    page.get_by_role("button", name="Analyse", exact=True).click(timeout=PAGE_TIMEOUT_MS)
    page.get_by_text(re.compile(r"\d+ frames read")).first.wait_for(timeout=PAGE_TIMEOUT_MS)
    wait_for_count(page.locator('[data-testid="stPlotlyChart"]'), 1)  # emotions over time
    wait_for_count(page.get_by_role("button", name=re.compile("CSV")), 1)


def check_explain(journey: Journey, photo: Path, labels) -> None:
    page = journey.page
    page.get_by_text("From a photo").click(timeout=PAGE_TIMEOUT_MS)
    page.locator('[data-testid="stFileUploader"]').first.wait_for(timeout=PAGE_TIMEOUT_MS)
    upload(page, photo)
    verdict = page.get_by_text(re.compile(rf"{re.escape(photo.name)}.*predicted"))
    verdict.first.wait_for(timeout=PAGE_TIMEOUT_MS)
    assert any(label in verdict.first.inner_text() for label in labels)
    page.get_by_text(re.compile("Grad-CAM for")).first.wait_for(timeout=PAGE_TIMEOUT_MS)
    wait_for_count(page.locator('[data-testid="stImage"]'), 3)  # the face, its Grad-CAM, the feature maps


def test_one_user_through_every_page_and_back(journey, shipped_model, astronaut_path, astronaut_clip, clip):
    labels = ModelCard.load(shipped_model).labels
    with journey.step("home"):
        check_home(journey)
    with journey.step("dataset"):
        journey.open("Dataset")
        check_dataset(journey)
    with journey.step("training"):
        journey.open("Training")
        check_training(journey)
    with journey.step("upload"):
        journey.open("Upload")
        first_upload = check_upload(journey, astronaut_path, labels)
    with journey.step("live_camera"):  # the step the server used to die in (TensorFlow loaded, then pylibsrtp)
        journey.open("Live camera")
        check_live_camera(journey, clip[1], labels)
    with journey.step("video"):
        journey.open("Video")
        check_video(journey, astronaut_clip)
    with journey.step("explain"):
        journey.open("Explain")
        check_explain(journey, astronaut_path, labels)
    with journey.step("upload_again"):
        journey.open("Upload")
        np.testing.assert_allclose(check_upload(journey, astronaut_path, labels), first_upload, atol=1e-6)
    with journey.step("live_camera_again"):
        journey.open("Live camera")
        check_live_camera(journey, clip[1], labels)
    assert journey.app.process.poll() is None, journey.app.describe()
