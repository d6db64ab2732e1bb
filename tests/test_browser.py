"""The app in a real browser: Debian's Chromium driven by Playwright against `streamlit run`.

The Live camera test feeds Chromium's fake camera a clip of the astronaut photo, presses START and
checks what comes back over WebRTC: the page's counters move, and the returned video shows the label
tag of the face box in an emotion's colour where the detector finds the face. It measures the frame
rate the browser receives, then stops and expects the session summary. The Upload test uploads the
photo through the file input and waits for the probability chart. Screenshots go to ``artifacts/``.

The server uses the shipped model when there is one, else an untrained tiny model: the labels are
meaningless then, but boxes and labels are drawn all the same, which is what is checked here.
"""

from __future__ import annotations

import base64
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pytest

from fer_core.card import PROJECT_ROOT, default_model_path
from fer_core.detect import FRAME_SETTINGS, FaceDetector
from fer_core.draw import color_rgb

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = PROJECT_ROOT / "artifacts"
FRAME_W, FRAME_H, CLIP_FPS = 640, 480, 10
SERVER_START_S = 90
LIVE_TIMEOUT_MS = 90_000  # the first frames wait for TensorFlow and the model to load on a busy CPU
GRAB_FRAME_JS = """video => {
    const canvas = document.createElement('canvas');
    canvas.width = video.videoWidth;
    canvas.height = video.videoHeight;
    canvas.getContext('2d').drawImage(video, 0, 0);
    return canvas.toDataURL('image/png');
}"""
FRAME_COUNT_JS = "video => [video.getVideoPlaybackQuality().totalVideoFrames, performance.now()]"

pytestmark = pytest.mark.skipif(not Path(CHROMIUM).is_file(), reason=f"{CHROMIUM} not found (apt-get install chromium)")
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (requirements-dev.txt)")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def camera_frame(astronaut_path: Path) -> np.ndarray:
    """640×480 BGR: the astronaut photo (480×480, one face about 100 px wide) on a gray background."""
    frame = np.full((FRAME_H, FRAME_W, 3), 90, np.uint8)
    frame[:, 80:560] = cv2.resize(cv2.imread(str(astronaut_path)), (480, 480), interpolation=cv2.INTER_AREA)
    return frame


def write_y4m(path: Path, frame_bgr: np.ndarray, frames: int) -> None:
    """A YUV4MPEG2 clip (4:2:0, the format Chromium's fake camera reads) repeating one frame."""
    planes = cv2.cvtColor(frame_bgr, cv2.COLOR_BGR2YUV_I420).tobytes()  # Y, then U, then V
    with path.open("wb") as out:
        out.write(f"YUV4MPEG2 W{FRAME_W} H{FRAME_H} F{CLIP_FPS}:1 Ip A1:1 C420jpeg\n".encode())
        for _ in range(frames):
            out.write(b"FRAME\n" + planes)


def wait_until_healthy(url: str, server: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + SERVER_START_S
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(f"streamlit exited with {server.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as answer:
                if answer.read() == b"ok":
                    return
        except OSError:
            pass
        time.sleep(0.5)
    pytest.fail(f"streamlit did not answer within {SERVER_START_S} s:\n{log.read_text()[-3000:]}")


def save_screenshot(page, name: str, capsys) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / name
    page.screenshot(path=str(path), full_page=True)
    with capsys.disabled():
        print(f"\n[browser] screenshot: {path}")
    return path


@pytest.fixture(scope="module")
def camera_clip(astronaut_path, tmp_path_factory) -> tuple[Path, np.ndarray]:
    """The fake camera's clip and the frame it shows, as the browser decodes it (after 4:2:0)."""
    frame = camera_frame(astronaut_path)
    path = tmp_path_factory.mktemp("camera") / "astronaut.y4m"
    write_y4m(path, frame, frames=CLIP_FPS)
    return path, cv2.cvtColor(cv2.cvtColor(frame, cv2.COLOR_BGR2YUV_I420), cv2.COLOR_YUV2BGR_I420)


@pytest.fixture(scope="module")
def app_model(request) -> Path:
    shipped = default_model_path()
    return shipped if shipped.is_file() else request.getfixturevalue("tiny_model_path")


@dataclass(frozen=True)
class AppServer:
    url: str
    log: Path

    def log_tail(self, chars: int = 4000) -> str:
        return self.log.read_text(errors="replace")[-chars:]


@pytest.fixture(scope="module")
def app(app_model, tmp_path_factory) -> Iterator[AppServer]:
    """`streamlit run` on a free port with FER_MODEL set; terminated (then killed) whatever happens."""
    port = free_port()
    log = tmp_path_factory.mktemp("server") / "streamlit.log"
    env = dict(os.environ, FER_MODEL=str(app_model), FER_ICE_SERVERS="")
    with log.open("w") as out:
        server = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", "streamlit_app.py", "--server.headless", "true",
             "--server.port", str(port), "--browser.gatherUsageStats", "false"],
            cwd=PROJECT_ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        url = f"http://127.0.0.1:{port}"
        wait_until_healthy(url, server, log)
        yield AppServer(url, log)
    finally:
        server.terminate()
        try:
            server.wait(20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(10)


@pytest.fixture(scope="module")
def browser(camera_clip) -> Iterator["sync_api.Browser"]:
    args = ["--no-sandbox", "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
            f"--use-file-for-fake-video-capture={camera_clip[0]}", "--disable-gpu",
            "--disable-background-networking", "--disable-component-update", "--no-first-run"]
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=args)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def page(browser) -> Iterator["sync_api.Page"]:
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    try:
        yield context.new_page()
    finally:
        context.close()


def metric(page, label: str) -> str:
    """The value of the page's ``st.metric`` with this label."""
    box = page.locator('[data-testid="stMetric"]').filter(has_text=label)
    return box.locator('[data-testid="stMetricValue"]').inner_text(timeout=5000)


def wait_for_metric(page, label: str, at_least: float, timeout_ms: int, diagnose: Callable[[], str]) -> float:
    deadline = time.monotonic() + timeout_ms / 1000
    value = None
    while time.monotonic() < deadline:
        try:
            value = float(metric(page, label))
        except (ValueError, sync_api.Error):
            value = None
        if value is not None and value >= at_least:
            return value
        page.wait_for_timeout(500)
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "failed_metric.png"), full_page=True)
    pytest.fail(f"metric {label!r} did not reach {at_least} within {timeout_ms / 1000:.0f} s (last: {value}); "
                f"screenshot {ARTIFACTS / 'failed_metric.png'}\n{diagnose()}")


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


def test_live_camera_returns_annotated_frames(page, app, camera_clip, app_model, capsys):
    from fer_core.card import card_scheme, read_card

    labels = card_scheme(read_card(app_model)).labels
    source = camera_clip[1]
    expected = FaceDetector(FRAME_SETTINGS).detect(source)
    assert len(expected) == 1, expected

    console: list[str] = []
    page.on("console", lambda message: console.append(f"{message.type}: {message.text}"))

    def diagnose() -> str:
        return "browser console:\n" + "\n".join(console[-40:]) + f"\nserver log:\n{app.log_tail()}"

    page.goto(f"{app.url}/Live_camera")
    component = page.frame_locator('iframe[title*="webrtc_streamer"]')
    component.get_by_role("button", name="Start").click(timeout=LIVE_TIMEOUT_MS)
    component.get_by_role("button", name="Stop").wait_for(timeout=30_000)  # the click reached the component
    first = wait_for_metric(page, "Frames processed", 10, LIVE_TIMEOUT_MS, diagnose)
    assert wait_for_metric(page, "Frames processed", first + 10, 30_000, diagnose) > first
    assert metric(page, "Faces") == "1"
    assert metric(page, "Errors") == "0"

    video = component.locator("video")
    count0, t0 = video.evaluate(FRAME_COUNT_JS)
    page.wait_for_timeout(5000)
    count1, t1 = video.evaluate(FRAME_COUNT_JS)
    browser_fps = (count1 - count0) / ((t1 - t0) / 1000)
    with capsys.disabled():
        print(f"\n[browser] end-to-end: {browser_fps:.1f} frames/s reached the page's <video> "
              f"(camera clip at {CLIP_FPS} fps); the page showed {metric(page, 'Processing fps')} processing fps, "
              f"{metric(page, 'ms per frame')} ms per frame")
    assert browser_fps > 1

    returned = grab_video_frame(video)
    ARTIFACTS.mkdir(exist_ok=True)
    cv2.imwrite(str(ARTIFACTS / "live_camera_frame.png"), returned)
    assert label_tag_color(returned, source, expected[0], labels) is not None, "no label tag above the face"
    assert page.locator('[data-testid="stPlotlyChart"]').count() == 1  # the live chart
    save_screenshot(page, "live_camera.png", capsys)

    component.get_by_role("button", name="Stop").click()
    page.get_by_text("Last session").wait_for(timeout=30_000)
    page.get_by_role("button", name="Per-frame results (CSV)").wait_for(timeout=30_000)
    save_screenshot(page, "live_camera_summary.png", capsys)


def test_upload_page_shows_the_probability_chart(page, app, astronaut_path, capsys):
    page.goto(f"{app.url}/Upload")
    page.locator('input[type="file"]').set_input_files(str(astronaut_path), timeout=60_000)
    page.locator('[data-testid="stPlotlyChart"]').first.wait_for(timeout=LIVE_TIMEOUT_MS)
    assert page.get_by_text("Face 1:").is_visible()
    save_screenshot(page, "upload.png", capsys)
