"""The app's per-server budgets (:class:`fer_core.settings.Budgets`, read once when the server starts).

- Analysis slots: the server analyses at most ``max_concurrent_analyses`` photos or videos at once,
  whatever the number of visitors. A visitor beyond that waits for a slot (up to :data:`SLOT_WAIT_S`
  seconds) and is then told the server is busy: each analysis holds a decoded image or frame and the
  model's working memory, so the number running at once bounds the server's peak memory.
- The photo cache (:data:`PHOTO_CACHE`): analysed photos, bounded by ``cache_max_bytes`` and dropped
  after ``cache_ttl_s`` seconds unused (:mod:`fer_core.app.bounded_cache`).
- Files per upload: the first ``max_files_per_upload`` are analysed, the others named and left alone.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Hashable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, TypeVar

from fer_core.app.bounded_cache import BoundedTTLCache
from fer_core.settings import Budgets, env_name

if TYPE_CHECKING:
    from fer_core.app.upload import ImageAnalysis

Item = TypeVar("Item")

SLOT_WAIT_S = 120.0


class ServerBusy(RuntimeError):
    """No analysis slot came free in time."""


class AnalysisSlots:
    """A counting semaphore with a wait limit and a count of the analyses running now."""

    def __init__(self, slots: int) -> None:
        self.slots = slots
        self._semaphore = threading.BoundedSemaphore(slots)
        self._lock = threading.Lock()
        self.running = 0
        self.most_running = 0  # the largest number seen at once (tests and benchmarks read it)

    @contextmanager
    def slot(self, wait_s: float | None = None) -> Iterator[None]:
        """Hold a slot while the block runs; :class:`ServerBusy` after ``wait_s`` seconds (default
        :data:`SLOT_WAIT_S`) without one."""
        if not self._semaphore.acquire(timeout=SLOT_WAIT_S if wait_s is None else wait_s):
            raise ServerBusy(f"the server is analysing {self.slots} files for other visitors "
                             f"({env_name('max_concurrent_analyses')}); try again in a moment")
        with self._lock:
            self.running += 1
            self.most_running = max(self.most_running, self.running)
        try:
            yield
        finally:
            with self._lock:
                self.running -= 1
            self._semaphore.release()


def within_file_budget(files: Sequence[Item], budgets: Budgets) -> tuple[list[Item], list[Item]]:
    """The files of one upload to analyse (the first ``max_files_per_upload``) and the rest."""
    return list(files[: budgets.max_files_per_upload]), list(files[budgets.max_files_per_upload :])


def photo_key(data: bytes, *settings: Hashable) -> tuple:
    """The photo cache's key: the file's digest (not its bytes) and the settings of its analysis."""
    return (hashlib.sha256(data).hexdigest(), *settings)


def analysis_bytes(analysis: ImageAnalysis) -> int:
    """What a cached analysis holds in memory: the decoded image and a little per face."""
    return analysis.image.nbytes + 4096 * (len(analysis.results) + 1)


SERVER_BUDGETS = Budgets.from_env()
ANALYSIS_SLOTS = AnalysisSlots(SERVER_BUDGETS.max_concurrent_analyses)
PHOTO_CACHE: BoundedTTLCache[ImageAnalysis] = BoundedTTLCache(SERVER_BUDGETS.cache_max_bytes,
                                                              SERVER_BUDGETS.cache_ttl_s)
