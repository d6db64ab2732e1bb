"""Batch analyzers for the Ray tests whose worker processes die; in a module of their own, so that a
restarted Ray worker imports little before it is ready again."""

from __future__ import annotations

import os
from pathlib import Path

from fer_core.inference.batch import BatchAnalyzer, BatchSettings, WorkUnit


class DiesOnceAnalyzer(BatchAnalyzer):
    """The real analyzer, except that its worker process dies at its first video segment, once per
    marker file (``$FER_TEST_DIE_ONCE``)."""

    def analyze(self, unit: WorkUnit) -> list[dict]:
        marker = Path(os.environ["FER_TEST_DIE_ONCE"])
        if any(item.kind == "video" for item in unit.items) and not marker.exists():
            marker.touch()
            os._exit(1)
        return super().analyze(unit)


class PoisonedAnalyzer(BatchAnalyzer):
    """No model: no rows for any unit, and a dead worker for every unit holding a ``poison`` input."""

    def __init__(self, settings: BatchSettings):
        self.settings = settings

    def analyze(self, unit: WorkUnit) -> list[dict]:
        if any("poison" in item.source for item in unit.items):
            os._exit(1)
        return []


class BlobDetector:
    """Bright squares on a dark frame as "faces" (exact and fast boxes, for following people)."""

    name = "haar"  # whose crop margin the card gives

    def detect(self, image):
        import cv2

        gray = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY) if image.ndim == 3 else image
        count, _, stats, _ = cv2.connectedComponentsWithStats((gray > 128).astype("uint8"))
        return [tuple(int(v) for v in stats[i, :4]) for i in range(1, count) if stats[i, 4] >= 100]


class BlobAnalyzer(BatchAnalyzer):
    """The real analyzer with :class:`BlobDetector` as its detector."""

    def __init__(self, settings: BatchSettings):
        super().__init__(settings)
        self.detector = BlobDetector()
