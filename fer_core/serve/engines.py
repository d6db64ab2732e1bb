"""Engines of the HTTP API: what runs the analysis behind the FastAPI app.

:class:`LocalEngine` analyses in the server's own process (threads of the event loop's pool): a request's
faces are one batch, and concurrent requests run side by side. The Ray Serve engine
(:mod:`fer_core.serve.ray_engine`) sends the same calls to analyzer replicas.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Protocol

import numpy as np

from fer_core.serve.analysis import Analyzer, ImageInput, ImageOutcome
from fer_core.settings import AnalysisSettings


class Engine(Protocol):
    """What the app asks of an engine; every method but ``ready`` may wait."""

    async def start(self) -> None:
        """Load the models (the app answers ``/readyz`` with 503 until this returns)."""

    @property
    def ready(self) -> bool: ...

    async def analyze(self, items: Sequence[ImageInput], settings: AnalysisSettings, whole_image: bool = False,
                      max_faces: int | None = None) -> list[ImageOutcome]: ...

    async def classify_arrays(self, faces: np.ndarray, settings: AnalysisSettings) -> list[ImageOutcome]: ...


class LocalEngine:
    """The analysis in this process: decoding, detection and cropping in a worker thread, then the
    request's faces in one recognizer call in another."""

    def __init__(self, analyzer: Analyzer | None = None):
        self.analyzer = analyzer or Analyzer()

    async def start(self) -> None:
        await asyncio.to_thread(self.analyzer.load)

    @property
    def ready(self) -> bool:
        return self.analyzer.ready

    async def classify(self, faces: np.ndarray, settings: AnalysisSettings) -> np.ndarray:
        return await asyncio.to_thread(self.analyzer.classify_now, faces, settings)

    async def analyze(self, items: Sequence[ImageInput], settings: AnalysisSettings, whole_image: bool = False,
                      max_faces: int | None = None) -> list[ImageOutcome]:
        return await self.analyzer.analyze(items, settings, self.classify, whole_image, max_faces)

    async def classify_arrays(self, faces: np.ndarray, settings: AnalysisSettings) -> list[ImageOutcome]:
        return await self.analyzer.classify_arrays(faces, settings, self.classify)
