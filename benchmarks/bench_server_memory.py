"""The dashboard server's memory under the worst inputs of issue #39, and once every visitor has left.

Starts `streamlit run streamlit_app.py` on 127.0.0.1 (a free port; nothing else is contacted), drives it
in Debian's Chromium (Playwright) through the pages with each input in turn, and samples the server's
resident memory (``VmRSS`` of its process) every 50 ms:

1. one 48-megapixel PNG (8000 × 6000, a few hundred KB) on the Upload page;
2. three such PNGs at once, from three visitors;
3. a video of twenty 8000 × 8000 H.264 frames (a few hundred KB) on the Video page;
4. one upload of 60 photos (3 megapixels each) on the Upload page.

Then every browser closes, and the server's memory is read again after the photo cache's expiry
(``FER_CACHE_TTL_S``, short here) and after Streamlit has dropped the closed sessions (two minutes).
Each line gives the memory before the input, its peak while the input was handled, and the time it
took; the CPU, its flags and the load average are printed with them.

Usage: ``nice python benchmarks/bench_server_memory.py [--ttl 20] [--model models/NAME.keras]``
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

from fer_core.machine import machine_info
from fer_core.model_card import PROJECT_ROOT, default_model_path

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync"]
STEP_TIMEOUT_MS = 300_000
SERVER_START_S = 120
SESSION_TTL_S = 120  # Streamlit's server.disconnectedSessionTTL: a closed tab's session is kept this long


# --------------------------------------------------------------------------- the inputs


def gray_png(path: Path, width: int, height: int, level: int) -> Path:
    path.write_bytes(cv2.imencode(".png", np.full((height, width, 3), level, np.uint8))[1].tobytes())
    return path


def video_bomb(path: Path, side: int = 8000, frames: int = 20) -> Path:
    """Twenty gray 8000 × 8000 frames in H.264 at the lowest quality: a few hundred KB (the tests' clip
    writer, ``tests/helpers.write_clip``, which the hostile app and browser tests refuse the same way)."""
    sys.path.insert(0, str(PROJECT_ROOT / "tests"))
    from helpers import write_clip

    return write_clip(path, side, frames)


def make_inputs(folder: Path) -> dict[str, list[Path]]:
    return {
        "photo48": [gray_png(folder / "bomb48.png", 8000, 6000, 120)],
        "photos48x3": [gray_png(folder / f"bomb48_{i}.png", 8000, 6000, 60 + 40 * i) for i in range(3)],
        "video": [video_bomb(folder / "bomb8000.mp4")],
        "files60": [gray_png(folder / f"photo{i:02d}.png", 2000, 1500, 2 * i) for i in range(60)],
    }


# --------------------------------------------------------------------------- the server and its memory


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


class PeakWatch:
    """Samples a process's resident memory every 50 ms on a thread; :meth:`take_peak` returns the
    largest sample since the last call."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak = 0.0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        while not self._stop.is_set():
            try:
                value = rss_mb(self.pid)
            except OSError:
                return
            with self._lock:
                self.peak = max(self.peak, value)
            self._stop.wait(0.05)

    def take_peak(self) -> float:
        with self._lock:
            peak, self.peak = self.peak, rss_mb(self.pid)
        return peak

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(model: Path, ttl_s: float, log: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = dict(os.environ, FER_MODEL=str(model), FER_ICE_SERVERS="", FER_CACHE_TTL_S=str(ttl_s))
    with log.open("w") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", "streamlit_app.py", "--server.headless", "true",
             "--server.address", "127.0.0.1", "--server.port", str(port), "--browser.gatherUsageStats", "false"],
            cwd=PROJECT_ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + SERVER_START_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"the server exited: {log.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as answer:
                if answer.read() == b"ok":
                    return process, url
        except OSError:
            time.sleep(0.5)
    process.terminate()
    raise SystemExit(f"the server did not answer within {SERVER_START_S} s")


# --------------------------------------------------------------------------- the visitors


def open_page(browser, url: str, heading: str):
    page = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
    page.goto(url)
    page.get_by_role("heading", name=heading).first.wait_for(timeout=STEP_TIMEOUT_MS)
    return page


def upload_files(page, files: list[Path]) -> None:
    page.locator('[data-testid="stFileUploader"] input[type="file"]').first.set_input_files(
        [str(f) for f in files], timeout=STEP_TIMEOUT_MS)


def wait_for_text(page, text: str) -> None:
    page.get_by_text(text).first.wait_for(timeout=STEP_TIMEOUT_MS)


def photos_step(browser, url: str, batches: list[list[Path]], done_text: str) -> Callable[[], None]:
    """Each batch uploaded by its own visitor, all before any result is awaited."""

    def run() -> None:
        pages = [open_page(browser, f"{url}/Upload", "Upload a photo") for _ in batches]
        for page, files in zip(pages, batches):
            upload_files(page, files)
        for page in pages:
            wait_for_text(page, done_text)
        for page in pages:
            page.context.close()

    return run


def video_step(browser, url: str, clip: Path) -> Callable[[], None]:
    def run() -> None:
        page = open_page(browser, f"{url}/Video", "Video")
        upload_files(page, [clip])
        refused = page.get_by_text("pixels are too large")
        for _ in range(3):  # a press during the rerun that follows the upload is lost: press again
            page.get_by_role("button", name="Analyse", exact=True).click(timeout=STEP_TIMEOUT_MS)
            try:
                refused.first.wait_for(timeout=30_000)
                break
            except Exception:  # noqa: BLE001 - Playwright's TimeoutError: try the button once more
                continue
        else:
            raise SystemExit("the video was not refused")
        page.context.close()

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=default_model_path())
    parser.add_argument("--ttl", type=float, default=20.0, help="the photo cache's expiry for this run (s)")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    print(machine_info().describe())
    with tempfile.TemporaryDirectory(prefix="fer_bench_memory_") as folder:
        inputs = make_inputs(Path(folder))
        process, url = start_server(args.model, args.ttl, Path(folder) / "streamlit.log")
        watch = PeakWatch(process.pid)
        rows: list[tuple[str, float, float, float]] = []
        try:
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
                steps = [
                    ("server started, model loaded", photos_step(browser, url, [[inputs["files60"][0]]],
                                                                 "No face found")),
                    ("one 48 MP PNG", photos_step(browser, url, [inputs["photo48"]], "No face found")),
                    ("three 48 MP PNGs at once", photos_step(browser, url, [[f] for f in inputs["photos48x3"]],
                                                              "No face found")),
                    ("8000×8000 H.264 video, 20 frames", video_step(browser, url, inputs["video"][0])),
                    ("60 photos in one upload", photos_step(browser, url, [inputs["files60"]],
                                                             "could not be used.")),
                ]
                for name, step in steps:
                    before = rss_mb(process.pid)
                    watch.take_peak()
                    started = time.monotonic()
                    step()
                    rows.append((name, before, watch.take_peak(), time.monotonic() - started))
                browser.close()
            closed = time.monotonic()
            time.sleep(args.ttl + max(1.0, args.ttl / 4) + 10)  # the cache's expiry and its next sweep
            after_cache = rss_mb(process.pid)
            time.sleep(max(0.0, SESSION_TTL_S + 10 - (time.monotonic() - closed)))
            after_sessions = rss_mb(process.pid)
            health_ok = urllib.request.urlopen(f"{url}/_stcore/health", timeout=5).read() == b"ok"
        finally:
            watch.stop()
            process.terminate()
            process.wait(30)
    print(f"\n{'input':<36} {'before MB':>10} {'peak MB':>9} {'time s':>8}")
    for name, before, peak, seconds in rows:
        print(f"{name:<36} {before:>10.0f} {peak:>9.0f} {seconds:>8.1f}")
    print(f"{'every visitor gone, cache expired':<36} {after_cache:>10.0f}")
    print(f"{'and the closed sessions dropped':<36} {after_sessions:>10.0f}")
    print(f"health check answered after the run: {health_ok}; cache TTL {args.ttl:.0f} s")
    print(machine_info().describe())


if __name__ == "__main__":
    main()
