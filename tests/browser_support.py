"""Driving the app in a real browser: a `streamlit run` server, Debian's Chromium with a fake camera,
and the checks the browser tests share (page health, metrics, uploads, the live camera's frames).

Used by tests/test_browser.py (one page per test, several sessions at once) and
tests/test_journey.py (one user through every page). Timeouts are generous on purpose: on the
2-core CI machine the first page that classifies a face waits for TensorFlow and the model to load.
"""

from __future__ import annotations

import base64
import csv
import io
import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pytest

from fer_core.inference.draw import color_rgb
from fer_core.model_card import PROJECT_ROOT

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = PROJECT_ROOT / "artifacts"
FRAME_W, FRAME_H, CLIP_FPS = 640, 480, 10
SERVER_START_S = 90
PAGE_TIMEOUT_MS = 120_000  # a page's result, including a first model load on a busy CPU
CHROMIUM_FLAGS = ("--no-sandbox", "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
                  "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync")
WEBRTC_IFRAME = 'iframe[title*="webrtc_streamer"]'
GRAB_FRAME_JS = """video => {
    const canvas = document.createElement('canvas');
    canvas.width = video.videoWidth;
    canvas.height = video.videoHeight;
    canvas.getContext('2d').drawImage(video, 0, 0);
    return canvas.toDataURL('image/png');
}"""

needs_chromium = pytest.mark.skipif(not Path(CHROMIUM).is_file(),
                                    reason=f"{CHROMIUM} not found (apt-get install chromium)")


# --------------------------------------------------------------------------- the fake camera


def camera_frame(photo_path: Path) -> np.ndarray:
    """640×480 BGR: the photo (squeezed to 480×480; the astronaut's face is then about 100 px wide)
    on a gray background."""
    frame = np.full((FRAME_H, FRAME_W, 3), 90, np.uint8)
    frame[:, 80:560] = cv2.resize(cv2.imread(str(photo_path)), (480, 480), interpolation=cv2.INTER_AREA)
    return frame


def write_y4m(path: Path, frame_bgr: np.ndarray, frames: int) -> None:
    """A YUV4MPEG2 clip (4:2:0, the format Chromium's fake camera reads) repeating one frame."""
    planes = cv2.cvtColor(frame_bgr, cv2.COLOR_BGR2YUV_I420).tobytes()  # Y, then U, then V
    with path.open("wb") as out:
        out.write(f"YUV4MPEG2 W{FRAME_W} H{FRAME_H} F{CLIP_FPS}:1 Ip A1:1 C420jpeg\n".encode())
        for _ in range(frames):
            out.write(b"FRAME\n" + planes)


def camera_clip(photo_path: Path, folder: Path) -> tuple[Path, np.ndarray]:
    """The fake camera's clip of the photo and the frame it shows as the browser decodes it (after 4:2:0)."""
    frame = camera_frame(photo_path)
    path = folder / "camera.y4m"
    write_y4m(path, frame, frames=CLIP_FPS)
    return path, cv2.cvtColor(cv2.cvtColor(frame, cv2.COLOR_BGR2YUV_I420), cv2.COLOR_YUV2BGR_I420)


# --------------------------------------------------------------------------- server and browser


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass(frozen=True)
class AppServer:
    url: str
    log: Path
    process: subprocess.Popen

    def log_tail(self, chars: int = 4000) -> str:
        return self.log.read_text(errors="replace")[-chars:]

    def describe(self) -> str:
        """Whether the server still runs (and how it ended if not), with the end of its log."""
        code = self.process.poll()
        state = "running" if code is None else f"EXITED with {code}" + (" (SIGSEGV)" if code == -11 else "")
        return f"streamlit server {state}; log tail:\n{self.log_tail()}"


def wait_until_healthy(server: AppServer) -> None:
    deadline = time.monotonic() + SERVER_START_S
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            pytest.fail(server.describe())
        try:
            with urllib.request.urlopen(f"{server.url}/_stcore/health", timeout=2) as answer:
                if answer.read() == b"ok":
                    return
        except OSError:
            pass
        time.sleep(0.5)
    pytest.fail(f"streamlit did not answer within {SERVER_START_S} s: {server.describe()}")


@contextmanager
def running_app(model_path: Path, log: Path, **extra_env: str) -> Iterator[AppServer]:
    """`streamlit run streamlit_app.py` on a free port of 127.0.0.1 with FER_MODEL (and ``extra_env``) set;
    stopped whatever happens."""
    port = free_port()
    env = dict(os.environ, FER_MODEL=str(model_path), FER_ICE_SERVERS="", **extra_env)
    with log.open("w") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", "streamlit_app.py", "--server.headless", "true",
             "--server.address", "127.0.0.1", "--server.port", str(port), "--browser.gatherUsageStats", "false"],
            cwd=PROJECT_ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
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
def chromium(sync_api, fake_camera_clip: Path) -> Iterator:
    """Debian's Chromium (never a downloaded one) with a fake camera playing ``fake_camera_clip``."""
    args = [*CHROMIUM_FLAGS, f"--use-file-for-fake-video-capture={fake_camera_clip}"]
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=args)
        try:
            yield browser
        finally:
            browser.close()


def new_page(browser):
    """A page in a fresh context: a new browser session, as a second user would have."""
    return browser.new_context(viewport={"width": 1400, "height": 1000}, accept_downloads=True).new_page()


def save_screenshot(page, name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / name
    page.screenshot(path=str(path), full_page=True)
    return path


# --------------------------------------------------------------------------- what a page shows


def shown_exceptions(page) -> list[str]:
    """Exceptions the page shows: ``st.exception`` boxes (Streamlit's or the router's) and any
    traceback printed as text."""
    boxes = page.locator('[data-testid="stException"]')
    found = [boxes.nth(i).inner_text() for i in range(boxes.count())]
    if page.get_by_text("Traceback (most recent call last)").count():
        found.append("a traceback is shown as text")
    return found


def wait_for_count(locator, at_least: int, timeout_ms: int = PAGE_TIMEOUT_MS) -> int:
    """Wait until ``locator`` matches at least ``at_least`` elements; how many it matches then."""
    locator.nth(at_least - 1).wait_for(timeout=timeout_ms)
    return locator.count()


def metric(page, label: str, timeout_ms: int = 5000) -> str:
    """The value of the page's ``st.metric`` with this label."""
    box = page.locator('[data-testid="stMetric"]').filter(has_text=label)
    return box.locator('[data-testid="stMetricValue"]').first.inner_text(timeout=timeout_ms)


def wait_for_metric(page, label: str, at_least: float, timeout_ms: int, diagnose: Callable[[], str]) -> float:
    """Poll a numeric metric until it reaches ``at_least``; fail with a screenshot and ``diagnose()``."""
    from playwright.sync_api import Error

    deadline = time.monotonic() + timeout_ms / 1000
    value = None
    while time.monotonic() < deadline:
        try:
            value = float(metric(page, label))
        except (ValueError, Error):
            value = None
        if value is not None and value >= at_least:
            return value
        page.wait_for_timeout(500)
    shot = save_screenshot(page, "failed_metric.png")
    pytest.fail(f"metric {label!r} did not reach {at_least} within {timeout_ms / 1000:.0f} s (last: {value}); "
                f"screenshot {shot}\n{diagnose()}")


def upload(page, path: Path, timeout_ms: int = PAGE_TIMEOUT_MS) -> None:
    """Put a file into the page's (first) file uploader, whether it takes one file or several."""
    page.locator('[data-testid="stFileUploader"] input[type="file"]').first.set_input_files(
        str(path), timeout=timeout_ms)


def download_csv(page, button_text: str = "CSV", timeout_ms: int = PAGE_TIMEOUT_MS) -> list[dict[str, str]]:
    """Rows of the CSV behind the first download button whose label contains ``button_text``."""
    button = page.locator('[data-testid="stDownloadButton"] button').filter(has_text=button_text).first
    with page.expect_download(timeout=timeout_ms) as download:
        button.click(timeout=timeout_ms)
    text = Path(download.value.path()).read_text()
    return list(csv.DictReader(io.StringIO(text)))


def probabilities(rows: list[dict[str, str]], labels) -> list[list[float]]:
    """The per-label probability columns of result rows, one list per face."""
    return [[float(row[label]) for label in labels] for row in rows]


# --------------------------------------------------------------------------- the live camera


def grab_video_frame(video) -> np.ndarray:
    """The frame the <video> element shows, as BGR at the camera's size."""
    data_url = video.evaluate(GRAB_FRAME_JS)
    image = cv2.imdecode(np.frombuffer(base64.b64decode(data_url.split(",", 1)[1]), np.uint8), cv2.IMREAD_COLOR)
    return cv2.resize(image, (FRAME_W, FRAME_H)) if image.shape[:2] != (FRAME_H, FRAME_W) else image


def share_near(region_bgr: np.ndarray, rgb: tuple[int, int, int], tolerance: float = 60) -> float:
    """Fraction of the region's pixels within ``tolerance`` of a colour."""
    distance = np.linalg.norm(region_bgr.astype(np.float32) - np.array(rgb[::-1], np.float32), axis=-1)
    return float((distance < tolerance).mean())


def label_tag_color(returned: np.ndarray, source: np.ndarray, box, labels) -> str | None:
    """The label whose colour fills the band where the face's label tag is drawn (just above the box)
    in the returned frame but not in the camera's own frame; ``None`` if no label's colour does."""
    x, y, _, _ = box
    band = np.s_[max(0, y - 16) : max(4, y - 4), x + 2 : x + 40]
    for label in labels:
        if share_near(returned[band], color_rgb(label)) > 0.4 and share_near(source[band], color_rgb(label)) < 0.1:
            return label
    return None


def press_start(page) -> None:
    """Press the camera component's START and see it turn into STOP.

    First the page's run must be over (its last element, the hint or the last session's summary, is
    shown), as a user sees it: a START pressed in the middle of the run that renders the component
    can be lost with that run.
    """
    settled = page.get_by_text("Press START to classify").or_(page.get_by_text("Last session"))
    settled.first.wait_for(timeout=PAGE_TIMEOUT_MS)
    component = page.frame_locator(WEBRTC_IFRAME)
    component.get_by_role("button", name="Start").click(timeout=PAGE_TIMEOUT_MS)
    component.get_by_role("button", name="Stop").wait_for(timeout=30_000)  # the click reached the component


def start_live(page, diagnose: Callable[[], str], frames: int = 10) -> float:
    """Press START and wait until the server has processed ``frames`` frames; how many it had."""
    press_start(page)
    return wait_for_metric(page, "Frames processed", frames, PAGE_TIMEOUT_MS, diagnose)


def returned_label(page, source: np.ndarray, box, labels) -> tuple[str | None, np.ndarray]:
    """The label tag's emotion in the frame the page's <video> shows now, and that frame."""
    returned = grab_video_frame(page.frame_locator(WEBRTC_IFRAME).locator("video"))
    return label_tag_color(returned, source, box, labels), returned


def stop_live(page) -> None:
    """Press STOP and wait for the session summary: its heading, its frame count and its CSV."""
    page.frame_locator(WEBRTC_IFRAME).get_by_role("button", name="Stop").click(timeout=30_000)
    page.get_by_text("Last session", exact=True).wait_for(timeout=60_000)
    page.get_by_text(re.compile(r"\d+ frames over")).wait_for(timeout=30_000)
    page.get_by_role("button", name="Per-frame results (CSV)").wait_for(timeout=30_000)
