"""A real uvicorn server on the loopback address for the HTTP API's tests and benchmark, and the
client calls they share."""

from __future__ import annotations

import io
import socket
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import requests


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until_ready(base: str, timeout: float = 120.0) -> None:
    """Poll ``/readyz`` until the models are loaded."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if requests.get(f"{base}/readyz", timeout=10).status_code == 200:
                return
        except requests.RequestException:  # not listening yet, or too busy starting to answer
            pass
        time.sleep(0.2)
    raise TimeoutError(f"{base} did not get ready in {timeout:.0f} s")


@contextmanager
def running_server(app):
    """``app`` served by uvicorn in a thread of this process on a free loopback port; yields its base URL."""
    import uvicorn

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_ready(base)
        yield base
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def analyze(base: str, files: dict[str, bytes] | list[tuple[str, bytes]], **params) -> requests.Response:
    """``POST /v1/analyze`` with each ``(name, bytes)`` as a multipart field ``file``."""
    items = files.items() if isinstance(files, dict) else files
    return requests.post(f"{base}/v1/analyze", params=params, timeout=300,
                         files=[("file", (name, io.BytesIO(data))) for name, data in items])


def photo_bytes(path: Path, box: tuple[int, int, int, int] | None = None) -> bytes:
    """The photo's file bytes, or a PNG of its ``(x, y, w, h)`` crop."""
    if box is None:
        return path.read_bytes()
    from PIL import Image

    x, y, w, h = box
    buffer = io.BytesIO()
    Image.open(path).convert("RGB").crop((x, y, x + w, y + h)).save(buffer, "PNG")
    return buffer.getvalue()
