"""The HTTP API under a bounded loopback load: requests/s and p50/p95 latency per engine, clients and photo.

Each configuration is a real server started as ``fer serve`` would be (its own process on a free
127.0.0.1 port): the local engine, and Ray Serve with 1 and 2 analyzer replicas with request batching
(``@serve.batch``: faces of concurrent requests classified in one call) on and off. For each, 1, 4 and
16 concurrent clients send a fixed number of requests each (one photo per request, as multipart), with
two photos: the astronaut (1 face) and a crop of the 1927 Solvay conference photo (a dozen faces).
The server's ``max_in_flight_requests`` is raised to the most clients, so no request is refused; any
answer other than 200 is counted in the ``errors`` column.

The CPU, its vector flags and the load average are printed before each configuration: on a shared
machine the figures move with the load.

Usage: ``python benchmarks/bench_api.py [--requests 4] [--clients 1 4 16] [--model fast]
[--configs local ray1 ray1-nobatch ray2 ray2-nobatch]``
"""

from __future__ import annotations

import argparse
import io
import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import requests

from fer_core.machine import machine_info
from fer_core.model_card import PROJECT_ROOT

SHARED_DATA = Path(os.environ.get("FER_SHARED_DATA", PROJECT_ROOT.parent / "shared" / "data"))
PHOTOS = SHARED_DATA / "photos"
SOLVAY_CROP = (0, 700, 1500, 650)
CONFIGS = {"local": [], "ray1": ["--engine", "ray", "--replicas", "1"],
           "ray1-nobatch": ["--engine", "ray", "--replicas", "1", "--no-batching"],
           "ray2": ["--engine", "ray", "--replicas", "2"],
           "ray2-nobatch": ["--engine", "ray", "--replicas", "2", "--no-batching"]}


@dataclass
class Figures:
    requests: int
    errors: int
    seconds: float
    latencies: list[float]

    def row(self) -> str:
        p50, p95 = (np.percentile(self.latencies, q) * 1000 for q in (50, 95))
        return f"{self.requests / self.seconds:7.2f} | {p50:7.0f} | {p95:7.0f} | {self.errors}"


def load_average() -> str:
    return ", ".join(f"{v:.2f}" for v in os.getloadavg())


def bench_photos() -> dict[str, bytes]:
    from PIL import Image

    x, y, w, h = SOLVAY_CROP
    buffer = io.BytesIO()
    Image.open(PHOTOS / "solvay_conference_1927.jpg").convert("RGB").crop((x, y, x + w, y + h)).save(buffer, "PNG")
    return {"1 face (astronaut)": (PHOTOS / "astronaut.png").read_bytes(),
            "many faces (Solvay crop)": buffer.getvalue()}


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(flags: list[str], port: int, max_clients: int) -> subprocess.Popen:
    env = {**os.environ, "FER_MAX_IN_FLIGHT_REQUESTS": str(max(8, max_clients)),
           "PYTHONPATH": os.pathsep.join(filter(None, [str(PROJECT_ROOT), os.environ.get("PYTHONPATH")]))}
    server = subprocess.Popen([sys.executable, "-m", "fer_core", "serve", "--port", str(port), *flags], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=PROJECT_ROOT)
    try:
        wait_until_ready(server, f"http://127.0.0.1:{port}/readyz", 600)
    except BaseException:
        stop_server(server)
        raise
    return server


def wait_until_ready(server: subprocess.Popen, url: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"the server exited with {server.returncode}")
        try:
            if requests.get(url, timeout=10).status_code == 200:
                return
        except requests.RequestException:  # not listening yet, or too busy starting to answer
            pass
        time.sleep(0.5)
    raise TimeoutError(f"the server did not get ready in {timeout:.0f} s")


def stop_server(server: subprocess.Popen) -> None:
    server.send_signal(signal.SIGTERM)
    try:
        server.wait(timeout=60)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()


def load(url: str, data: bytes, clients: int, per_client: int, params: dict) -> Figures:
    """``clients`` threads, each sending ``per_client`` requests one after another."""

    def client(_: int) -> list[tuple[float, int]]:
        session, out = requests.Session(), []
        for _ in range(per_client):
            start = time.perf_counter()
            response = session.post(url, params=params, files=[("file", ("photo.png", data))], timeout=600)
            out.append((time.perf_counter() - start, response.status_code))
        return out

    start = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        results = [r for rs in pool.map(client, range(clients)) for r in rs]
    seconds = time.perf_counter() - start
    return Figures(len(results), sum(status != 200 for _, status in results), seconds, [t for t, _ in results])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=4, help="requests per client (default 4)")
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument("--model", choices=["accurate", "fast"], default="fast")
    parser.add_argument("--configs", nargs="+", choices=list(CONFIGS), default=list(CONFIGS))
    args = parser.parse_args(argv)
    photos = bench_photos()
    params = {"model": args.model}
    print(f"{machine_info().describe()}")
    print(f"model {args.model}, {args.requests} requests per client, one photo per request\n")
    print("| engine | photo | clients | req/s | p50 ms | p95 ms | errors |")
    print("|---|---|---|---|---|---|---|")
    for name in args.configs:
        port = free_port()
        server = start_server(CONFIGS[name], port, max(args.clients))
        try:
            url = f"http://127.0.0.1:{port}/v1/analyze"
            for data in photos.values():  # one warm-up request per photo: first-call costs are not the load's
                requests.post(url, params=params, files=[("file", ("photo.png", data))], timeout=600)
            for photo, data in photos.items():
                for clients in args.clients:
                    figures = load(url, data, clients, args.requests, params)
                    print(f"| {name} | {photo} | {clients} | {figures.row()} |", flush=True)
        finally:
            stop_server(server)
        print(f"<!-- after {name}: load average {load_average()} -->", flush=True)
    print(f"\nload average at the end: {load_average()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
