"""The HTTP API on Ray Serve (``fer serve --engine ray``): the same FastAPI app, on an embedded local Ray
or a running cluster.

Two deployments. ``Analyzer`` replicas (``--replicas N``, one CPU each) hold the models and run the
analysis; their classification step is a ``@serve.batch`` method, so the faces of requests that arrive
together on a replica are classified in one call (grouped by model, test-time augmentation and scheme).
``Gateway`` is the FastAPI app (:func:`fer_core.serve.app.create_app`, no CPU of its own): it checks keys and
budgets, reads the body and hands the images to an analyzer through a deployment handle. A replica that
dies under a request is not the client's problem: the gateway sends the request again to another replica
(Serve starts a replacement), and only when every attempt failed does the client get a 503 with
``Retry-After``. Ray is imported here only, inside functions and deployments.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

import numpy as np

from fer_core.serve.analysis import Analyzer, ImageInput, ImageOutcome, RequestError
from fer_core.serve.app import ServeConfig, create_app
from fer_core.settings import AnalysisSettings

log = logging.getLogger("fer_core.serve")

APP_NAME = "fer"
ATTEMPTS = 4  # tries of one request on analyzer replicas before the client gets a 503
MAX_BATCH_REQUESTS = 16  # requests whose faces one batched classification may take
BATCH_WAIT_S = 0.005  # how long a batch waits for more requests once its first one is there
REPLICA_QUEUE = 32  # requests one analyzer replica takes at once (the batch's source)


class RayEngine:
    """The app's engine inside the gateway: the analysis runs on analyzer replicas, retried on another
    replica when the one it ran on dies."""

    def __init__(self, analyzer):
        self.analyzer = analyzer  # a DeploymentHandle of Analyzer
        self._ready = False

    async def start(self) -> None:
        self._ready = await self.call("ready")

    @property
    def ready(self) -> bool:
        return self._ready

    async def call(self, method: str, *args):
        from ray.exceptions import RayActorError

        for attempt in range(1, ATTEMPTS + 1):
            try:
                return await getattr(self.analyzer, method).remote(*args)
            except RayActorError as exc:  # ActorDiedError, ActorUnavailableError: the replica is gone
                log.warning("analyzer replica lost during %s (attempt %d of %d): %s", method, attempt, ATTEMPTS,
                            type(exc).__name__)
                await asyncio.sleep(0.25 * attempt)
        raise RequestError(503, "replica_lost", "the analysis replicas were lost while analysing; retry later")

    async def analyze(self, items: Sequence[ImageInput], settings: AnalysisSettings, whole_image: bool = False,
                      max_faces: int | None = None) -> list[ImageOutcome]:
        return await self.call("analyze", list(items), settings, whole_image, max_faces)

    async def classify_arrays(self, faces: np.ndarray, settings: AnalysisSettings) -> list[ImageOutcome]:
        return await self.call("classify_arrays", faces, settings)


class BatchedAnalyzer:
    """An analyzer replica: the models, and a classification step batched across concurrent requests
    (``batching=False`` classifies each request's faces alone, for comparison)."""

    def __init__(self, batching: bool = True):
        self.analyzer = Analyzer()
        self.analyzer.load()
        self.batching = batching

    def ready(self) -> bool:
        return self.analyzer.ready

    async def classify(self, faces: np.ndarray, settings: AnalysisSettings) -> np.ndarray:
        if self.batching:
            return await self.classify_batch((faces, settings))
        return await asyncio.to_thread(self.analyzer.classify_now, faces, settings)

    async def classify_batch(self, requests: list[tuple[np.ndarray, AnalysisSettings]]) -> list[np.ndarray]:
        """The faces of several requests, one recognizer call per (model, tta, scheme) among them."""
        groups: dict[AnalysisSettings, list[int]] = {}
        for i, (_, settings) in enumerate(requests):
            groups.setdefault(settings, []).append(i)
        answers: list[np.ndarray] = [np.empty(0)] * len(requests)
        for settings, members in groups.items():
            faces = [requests[i][0] for i in members]
            probabilities = await asyncio.to_thread(self.analyzer.classify_now, np.concatenate(faces), settings)
            for i, rows in zip(members, np.split(probabilities, np.cumsum([len(f) for f in faces])[:-1])):
                answers[i] = rows
        return answers

    async def analyze(self, items: list[ImageInput], settings: AnalysisSettings, whole_image: bool,
                      max_faces: int | None) -> list[ImageOutcome]:
        return await self.analyzer.analyze(items, settings, self.classify, whole_image, max_faces)

    async def classify_arrays(self, faces: np.ndarray, settings: AnalysisSettings) -> list[ImageOutcome]:
        return await self.analyzer.classify_arrays(faces, settings, self.classify)


def replica_environment() -> dict:
    """Each replica imports this checkout's ``fer_core`` and runs its libraries on one thread."""
    from fer_core.inference.batch_ray import ONE_THREAD_EACH, this_package_first

    return {"env_vars": {**this_package_first()["env_vars"], **ONE_THREAD_EACH}}


def build_application(config: ServeConfig, replicas: int = 1, batching: bool = True):
    """The Serve application: ``Gateway`` (the FastAPI app) bound to ``replicas`` analyzer replicas."""
    from ray import serve

    analyzer_class = type("Analyzer", (BatchedAnalyzer,), {
        "classify_batch": serve.batch(max_batch_size=MAX_BATCH_REQUESTS, batch_wait_timeout_s=BATCH_WAIT_S)(
            BatchedAnalyzer.classify_batch)})
    analyzer = serve.deployment(analyzer_class, name="Analyzer", num_replicas=replicas,
                                max_ongoing_requests=REPLICA_QUEUE,
                                ray_actor_options={"num_cpus": 1, "runtime_env": replica_environment()})

    class Gateway:
        def __init__(self, analyzer_handle, serve_config: ServeConfig):
            self.api = create_app(RayEngine(analyzer_handle), serve_config)

        def __serve_build_asgi_app__(self):
            return self.api

    gateway = serve.deployment(serve.ingress()(Gateway), name="Gateway",
                               max_ongoing_requests=4 * config.budgets.max_in_flight_requests,
                               ray_actor_options={"num_cpus": 0, "runtime_env": replica_environment()})
    return gateway.bind(analyzer.bind(batching), config)


def start_ray_server(config: ServeConfig, host: str = "127.0.0.1", port: int = 8000, replicas: int = 1,
                     address: str | None = None, batching: bool = True) -> bool:
    """Start (or join) Ray, then Serve's HTTP proxy on ``host:port`` and the application; returns once
    every replica is up, with whether this call started Ray (then :func:`stop_ray_server` stops it too)."""
    from ray import serve

    from fer_core.inference.batch_ray import start_ray

    started = start_ray(address)
    serve.start(http_options={"host": host, "port": port})
    serve.run(build_application(config, replicas, batching), name=APP_NAME, route_prefix="/")
    return started


def stop_ray_server(stop_ray: bool) -> None:
    """Remove the application and Serve, and Ray itself when :func:`start_ray_server` started it."""
    import ray
    from ray import serve

    serve.shutdown()
    if stop_ray:
        ray.shutdown()
