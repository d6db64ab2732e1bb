"""The HTTP API on Ray Serve with 2 local analyzer replicas: the local engine's answers, and a replica killed
while requests are being answered costs none of them (the gateway sends them again to the other replica)."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from serve_support import analyze, free_port, running_server, wait_until_ready

from fer_core.serve.app import ServeConfig, create_app
from fer_core.serve.engines import LocalEngine
from fer_core.settings import Budgets

pytestmark = pytest.mark.slow
FAST = {"model": "fast", "tta": "false"}


@pytest.fixture(scope="module")
def ray_server(local_ray):
    """2 analyzer replicas on the tests' local Ray (1 CPU each, all it has) behind Serve's proxy on a free port."""
    from fer_core.serve.ray_engine import start_ray_server, stop_ray_server

    local_ray.wait_for_free_cpus()  # else serve.run would wait for the replicas' CPUs for ever
    port = free_port()
    started = start_ray_server(ServeConfig(Budgets(), frozenset()), port=port, replicas=2)
    assert not started  # it joined the running Ray, which stop_ray_server must then leave running
    base = f"http://127.0.0.1:{port}"
    wait_until_ready(base)
    yield base
    stop_ray_server(started)


@pytest.fixture(scope="module")
def local_server():
    with running_server(create_app(LocalEngine(), ServeConfig(Budgets(), frozenset()))) as base:
        yield base


@pytest.fixture(scope="module")
def images(astronaut_path) -> dict[str, bytes]:
    from conftest import SHARED_DATA
    from serve_support import photo_bytes

    return {"astronaut.png": astronaut_path.read_bytes(),
            "solvay_crop.png": photo_bytes(SHARED_DATA / "photos" / "solvay_conference_1927.jpg", (0, 700, 1500, 650))}


def test_ray_serve_gives_the_local_engines_answers(ray_server, local_server, images):
    for params in ({"model": "fast"}, {}, {"scheme": "smile", "max_faces": 2}):
        local = analyze(local_server, images, **params)
        on_ray = analyze(ray_server, images, **params)
        assert on_ray.status_code == local.status_code == 200, on_ray.text
        assert on_ray.json() == local.json()
    arrays = {"faces": [[[v % 256 for v in range(r, r + 48)] for r in range(48)]]}
    local = requests.post(f"{local_server}/v1/classify", params={"model": "fast"}, json=arrays).json()
    assert requests.post(f"{ray_server}/v1/classify", params={"model": "fast"}, json=arrays).json() == local
    refused = requests.post(f"{ray_server}/v1/analyze", data=b"x", headers={"Content-Type": "text/plain"})
    assert refused.status_code == 415 and refused.json()["code"] == "unsupported_media_type"


def test_concurrent_requests_are_batched_to_the_same_answers(ray_server, images):
    alone = analyze(ray_server, images, **FAST).json()
    with ThreadPoolExecutor(8) as pool:
        together = list(pool.map(lambda _: analyze(ray_server, images, **FAST), range(16)))
    assert all(r.status_code == 200 for r in together)
    for response in together:
        for got, expected in zip(response.json()["images"], alone["images"]):
            assert [f["box"] for f in got["faces"]] == [f["box"] for f in expected["faces"]]
            for a, b in zip(got["faces"], expected["faces"]):  # other batch sizes: the last digit may move
                assert all(abs(a["probabilities"][k] - b["probabilities"][k]) < 1e-4 for k in a["probabilities"])


def analyzer_replicas() -> list[str]:
    import ray

    return [a["name"] for a in ray.util.list_named_actors(all_namespaces=True) if "#Analyzer#" in a["name"]]


def test_a_replica_killed_midway_costs_no_accepted_request(ray_server, images):
    import ray

    data = {"astronaut.png": images["astronaut.png"]}
    expected = analyze(ray_server, data, **FAST).json()
    assert len(analyzer_replicas()) == 2
    done, responses = threading.Event(), []

    def client() -> None:
        while not done.is_set():
            responses.append(analyze(ray_server, data, **FAST))

    threads = [threading.Thread(target=client) for _ in range(4)]
    for thread in threads:
        thread.start()
    while len(responses) < 8:
        time.sleep(0.05)
    victim = analyzer_replicas()[0]
    ray.kill(ray.get_actor(victim, namespace="serve"), no_restart=True)
    killed_at = len(responses)
    time.sleep(3)
    while len(responses) < killed_at + 16:
        time.sleep(0.05)
    done.set()
    for thread in threads:
        thread.join(timeout=120)
    assert [r.status_code for r in responses] == [200] * len(responses), \
        [(r.status_code, r.text[:200]) for r in responses if r.status_code != 200]
    assert all(r.json() == expected for r in responses)
    assert requests.get(f"{ray_server}/healthz").status_code == 200
