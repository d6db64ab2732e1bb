"""Regenerate the README's picture of the Upload page: a server on 127.0.0.1, Debian's Chromium, one photo.

    python tools/readme_screenshot.py PHOTO [--out docs/images/upload.png]

The picture in the README is of the front rows of the 1927 Solvay conference photo (public domain,
``../shared/data/photos/solvay_conference_1927.jpg`` cropped to rows 700-1350, columns 0-1400).
"""

from __future__ import annotations

import argparse
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_health(port: int, seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2):
                return
        except OSError:
            time.sleep(0.5)
    raise TimeoutError("the app did not start")


def screenshot_upload(photo: Path, out: Path, port: int) -> None:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(f"http://127.0.0.1:{port}/Upload", timeout=120_000)
        page.locator('input[type="file"]').first.set_input_files(str(photo))
        page.get_by_text("Results").first.wait_for(timeout=300_000)
        time.sleep(3)  # the charts draw after the table appears
        page.screenshot(path=str(out))
        browser.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("photo", type=Path)
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "images" / "upload.png")
    args = parser.parse_args(argv)
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "streamlit", "run", "streamlit_app.py", "--server.address",
                               "127.0.0.1", "--server.port", str(port), "--server.headless", "true"], cwd=ROOT)
    try:
        wait_for_health(port)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        screenshot_upload(args.photo.resolve(), args.out, port)
    finally:
        server.terminate()
        server.wait(timeout=30)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
