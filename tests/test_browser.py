"""The app in a real browser: Debian's Chromium driven by Playwright against `streamlit run`.

The Live camera test feeds Chromium's fake camera a clip of the astronaut photo, presses START and
checks what comes back over WebRTC: the page's counters move, and the returned video shows the label
tag of the face box in an emotion's colour where the detector finds the face. It measures the frame
rate the browser receives, then stops and expects the session summary. The Upload test uploads the
photo through the file input and waits for the probability chart.

Several users at once: three browser sessions upload three different photos at the same moment and
each gets the results a lone session gets for its photo; two sessions stream the camera at once and
both get annotated frames back. Screenshots go to ``artifacts/``. The whole journey of one user
through every page is tests/test_journey.py.

The server uses the shipped model when there is one, else an untrained tiny model: the labels are
meaningless then, but boxes and labels are drawn all the same, which is what is checked here.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest
from browser_support import (
    ARTIFACTS,
    CLIP_FPS,
    PAGE_TIMEOUT_MS,
    WEBRTC_IFRAME,
    AppServer,
    camera_clip,
    chromium,
    download_csv,
    metric,
    needs_chromium,
    new_page,
    press_start,
    probabilities,
    returned_label,
    running_app,
    save_screenshot,
    shown_exceptions,
    start_live,
    stop_live,
    upload,
    wait_for_metric,
)
from helpers import two_people_clip

from fer_core.inference.detect import detector_for
from fer_core.model_card import ModelCard, default_model_path
from fer_core.settings import default_detector

FRAME_COUNT_JS = "video => [video.getVideoPlaybackQuality().totalVideoFrames, performance.now()]"

pytestmark = [needs_chromium, pytest.mark.browser]
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (requirements-dev.txt)")


@pytest.fixture(scope="module")
def clip(astronaut_path, tmp_path_factory) -> tuple[Path, np.ndarray]:
    return camera_clip(astronaut_path, tmp_path_factory.mktemp("camera"))


@pytest.fixture(scope="module")
def app_model(request) -> Path:
    shipped = default_model_path()
    return shipped if shipped.is_file() else request.getfixturevalue("tiny_model_path")


@pytest.fixture(scope="module")
def labels(app_model) -> tuple[str, ...]:
    return ModelCard.load(app_model).labels


@pytest.fixture(scope="module")
def app(app_model, tmp_path_factory) -> Iterator[AppServer]:
    with running_app(app_model, tmp_path_factory.mktemp("server") / "streamlit.log") as server:
        yield server
        assert server.process.poll() is None, server.describe()


@pytest.fixture(scope="module")
def browser(clip) -> Iterator[sync_api.Browser]:
    with chromium(sync_api, clip[0]) as browser:
        yield browser


@pytest.fixture
def pages(browser) -> Iterator[list]:
    """Pages in fresh contexts (one browser session each), closed after the test."""
    opened: list = []
    yield opened
    for page in opened:
        page.context.close()


@pytest.fixture
def page(pages, browser):
    pages.append(new_page(browser))
    return pages[-1]


@pytest.fixture(scope="module")
def expected_face(clip) -> tuple[int, int, int, int]:
    (box,) = detector_for(default_detector("live"), "frame").detect(clip[1])  # as the Live page
    return box


def diagnosis(page, app: AppServer):
    console: list[str] = []
    page.on("console", lambda message: console.append(f"{message.type}: {message.text}"))
    return lambda: "browser console:\n" + "\n".join(console[-40:]) + f"\n{app.describe()}"


def test_live_camera_returns_annotated_frames(page, app, clip, labels, expected_face, capsys):
    diagnose = diagnosis(page, app)
    page.goto(f"{app.url}/Live_camera")
    first = start_live(page, diagnose)
    assert wait_for_metric(page, "Frames processed", first + 10, 30_000, diagnose) > first
    assert metric(page, "Faces") == "1"
    assert metric(page, "Errors") == "0"

    video = page.frame_locator(WEBRTC_IFRAME).locator("video")
    count0, t0 = video.evaluate(FRAME_COUNT_JS)
    page.wait_for_timeout(5000)
    count1, t1 = video.evaluate(FRAME_COUNT_JS)
    browser_fps = (count1 - count0) / ((t1 - t0) / 1000)
    with capsys.disabled():
        print(f"\n[browser] end-to-end: {browser_fps:.1f} frames/s reached the page's <video> "
              f"(camera clip at {CLIP_FPS} fps); the page showed {metric(page, 'Processing fps')} processing fps, "
              f"{metric(page, 'ms per frame')} ms per frame")
    assert browser_fps > 1

    label, returned = returned_label(page, clip[1], expected_face, labels)
    ARTIFACTS.mkdir(exist_ok=True)
    cv2.imwrite(str(ARTIFACTS / "live_camera_frame.png"), returned)
    assert label is not None, "no label tag above the face"
    assert page.locator('[data-testid="stPlotlyChart"]').count() == 1  # the live chart
    save_screenshot(page, "live_camera.png")

    stop_live(page)
    save_screenshot(page, "live_camera_summary.png")
    assert not shown_exceptions(page)


def test_upload_page_shows_the_probability_chart(page, app, astronaut_path):
    page.goto(f"{app.url}/Upload")
    upload(page, astronaut_path)
    page.locator('[data-testid="stPlotlyChart"]').first.wait_for(timeout=PAGE_TIMEOUT_MS)
    assert page.get_by_text("Face 1:").first.is_visible()
    save_screenshot(page, "upload.png")
    assert not shown_exceptions(page)


def test_video_page_follows_two_people(page, app, astronaut_path, tmp_path):
    """A clip of two people: each gets a portrait, a share-of-time bar, an emotions-over-time chart
    (small multiples) and a row in the People CSV."""
    page.goto(f"{app.url}/Video")
    upload(page, two_people_clip(astronaut_path, tmp_path / "two_people.mp4", frames=29))
    page.get_by_role("button", name="Analyse", exact=True).click(timeout=PAGE_TIMEOUT_MS)
    page.get_by_text("2 people", exact=True).wait_for(timeout=PAGE_TIMEOUT_MS)
    page.locator('[data-testid="stPlotlyChart"]').nth(2).wait_for(timeout=PAGE_TIMEOUT_MS)
    assert page.locator('[data-testid="stImage"]').count() == 2  # a portrait each
    people = download_csv(page, "People")
    assert [row["person"] for row in people] == ["1", "2"]
    assert all(float(row["seconds"]) == pytest.approx(3.0) for row in people)  # 6 analysed frames × 0.5 s
    frames = download_csv(page, "Results")
    assert {row["person"] for row in frames} == {"1", "2"} and len(frames) == 12
    page.set_viewport_size({"width": 1400, "height": 2800})  # the app scrolls inside: show the whole result
    page.get_by_text("2 people", exact=True).scroll_into_view_if_needed()
    save_screenshot(page, "video_people.png")
    assert not shown_exceptions(page)


def photo_variants(astronaut_path: Path, folder: Path) -> list[Path]:
    """Three different photos with one face each: the astronaut, mirrored, and smaller on a wider canvas."""
    photo = cv2.imread(str(astronaut_path))
    canvas = np.full((600, 900, 3), 120, np.uint8)
    small = cv2.resize(photo, None, fx=0.8, fy=0.8, interpolation=cv2.INTER_AREA)
    canvas[60 : 60 + small.shape[0], 300 : 300 + small.shape[1]] = small
    variants = {"astronaut.png": photo, "mirrored.png": photo[:, ::-1], "on_canvas.png": canvas}
    paths = []
    for name, image in variants.items():
        assert detector_for(default_detector("photo")).detect(image), \
            f"{name}: the test photo must show a detectable face"
        paths.append(folder / name)
        cv2.imwrite(str(paths[-1]), image)
    return paths


def upload_results(page, labels) -> list[list[float]]:
    """After an upload: wait for the chart (failing with the page's message if an error comes
    instead), then the probabilities of the results CSV."""
    chart, error = page.locator('[data-testid="stPlotlyChart"]'), page.locator('[data-testid="stAlertContentError"]')
    chart.or_(error).first.wait_for(timeout=PAGE_TIMEOUT_MS)
    assert not error.count(), error.first.inner_text()
    page.locator('[data-testid="stDataFrame"]').first.wait_for(timeout=PAGE_TIMEOUT_MS)
    return probabilities(download_csv(page), labels)


def test_three_sessions_uploading_at_once_get_the_results_of_one_at_a_time(
        app, browser, pages, astronaut_path, labels, tmp_path):
    photos = photo_variants(astronaut_path, tmp_path)
    for _ in photos:
        pages.append(new_page(browser))
        pages[-1].goto(f"{app.url}/Upload")
    for page in pages:
        page.locator('[data-testid="stFileUploader"]').first.wait_for(timeout=PAGE_TIMEOUT_MS)
    for page, photo in zip(pages, photos):  # no waiting in between: the server analyses all three at once
        upload(page, photo)
    together = [upload_results(page, labels) for page in pages]
    for i, page in enumerate(pages):
        save_screenshot(page, f"upload_session_{i + 1}.png")
        assert not shown_exceptions(page)

    # One at a time, in one session, under other names: the page caches an analysis by file name
    # and bytes, so renamed copies are analysed afresh.
    alone = []
    for photo in photos:
        renamed = shutil.copy(photo, tmp_path / f"alone_{photo.name}")
        pages[0].goto(f"{app.url}/Upload")
        upload(pages[0], Path(renamed))
        alone.append(upload_results(pages[0], labels))
    for photo, got, expected in zip(photos, together, alone):
        assert len(got) == len(expected) >= 1, photo.name
        np.testing.assert_allclose(got, expected, atol=1e-5, err_msg=photo.name)
    assert not np.allclose(together[0], together[2], atol=1e-5), "other photos, other probabilities"


def test_two_live_streams_at_once_both_get_annotated_frames(app, browser, pages, clip, labels, expected_face):
    for _ in range(2):
        pages.append(new_page(browser))
        pages[-1].goto(f"{app.url}/Live_camera")
    diagnoses = [diagnosis(page, app) for page in pages]
    for page in pages:
        press_start(page)
    for page, diagnose in zip(pages, diagnoses):  # both streams play while each is checked
        first = wait_for_metric(page, "Frames processed", 10, PAGE_TIMEOUT_MS, diagnose)
        assert wait_for_metric(page, "Frames processed", first + 10, 60_000, diagnose) > first
    for i, page in enumerate(pages):
        label, returned = returned_label(page, clip[1], expected_face, labels)
        cv2.imwrite(str(ARTIFACTS / f"live_stream_{i + 1}_frame.png"), returned)
        assert label is not None, f"stream {i + 1}: no label tag above the face"
        assert metric(page, "Errors") == "0"
    for page in pages:
        stop_live(page)
        assert not shown_exceptions(page)
