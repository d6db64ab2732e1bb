"""What every face detector shares: the box type and the protocol the pipeline needs, colour
conversions, the weight-file check, a pool of models for threads, non-maximum suppression and the
clipping of boxes to the image.

The detector modules (:mod:`.haar`, :mod:`.yunet`, :mod:`.blazeface`) build on this module only;
the registry in the package's ``__init__`` builds on them, so nothing here imports a detector.
"""

from __future__ import annotations

import hashlib
import queue
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Generic, Literal, Protocol, TypeVar

import numpy as np

Box = tuple[int, int, int, int]  # x, y, w, h in pixels
Use = Literal["photo", "frame"]
T = TypeVar("T")


class DetectorError(RuntimeError):
    """The face detector cannot run (e.g. the cascade file is missing from the OpenCV install)."""


class Detector(Protocol):
    """What the pipeline needs of a face detector: its name (the model card keeps a crop margin per
    detector) and boxes for an image."""

    name: str

    def detect(self, image: np.ndarray) -> list[Box]: ...


def to_gray(image: np.ndarray) -> np.ndarray:
    """Gray uint8 view of a gray, BGR or BGRA image."""
    import cv2

    if image.ndim == 2:
        return image
    if image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2GRAY)
    return cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)


def to_bgr(image: np.ndarray) -> np.ndarray:
    """BGR view of a gray, BGR or BGRA image (the CNN detectors take colour)."""
    import cv2

    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    if image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
    return image


def check_weights_file(path: Path, sha256: str, what: str, source: str, reinstall: str) -> None:
    """Raise :class:`DetectorError` unless ``path`` holds exactly the weights a CNN detector's
    decoder was written for (``what``: the detector's name in messages; ``reinstall``: how to get
    the file back)."""
    if not path.is_file():
        raise DetectorError(f"{what} weights {path} not found; {reinstall} (or choose the haar detector)")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != sha256:
        raise DetectorError(f"{what} weights {path} have sha256 {digest}, expected {sha256} "
                            f"({source}); the file is corrupt or another model")


def clip_box(box: Box, width: int, height: int) -> Box | None:
    """``box`` cut to the image; ``None`` when nothing of it is left inside."""
    x, y, w, h = box
    x0, y0 = max(0, x), max(0, y)
    x1, y1 = min(width, x + w), min(height, y + h)
    if x1 <= x0 or y1 <= y0:
        return None
    return (x0, y0, x1 - x0, y1 - y0)


def clipped_boxes(boxes: np.ndarray, width: int, height: int) -> list[Box]:
    """Float boxes ``(N, 4)`` in image pixels as whole-pixel boxes cut to the image (those left with
    nothing inside dropped), left to right: what every detector returns."""
    found = []
    for x, y, w, h in boxes:
        box = clip_box((round(x), round(y), round(w), round(h)), width, height)
        if box is not None:
            found.append(box)
    return sorted(found, key=lambda b: (b[0], b[1]))


def kept_by_nms(boxes: np.ndarray, scores: np.ndarray, min_score: float, overlap: float) -> np.ndarray:
    """Indices of the boxes non-maximum suppression keeps (OpenCV's ``NMSBoxes``): scored at least
    ``min_score``, and overlapping no higher-scored kept box by more than ``overlap`` (IoU)."""
    import cv2

    kept = cv2.dnn.NMSBoxes(boxes.tolist(), scores.tolist(), min_score, overlap)
    return np.asarray(kept, dtype=int).reshape(-1)


class ObjectPool(Generic[T]):
    """Copies of one detector model, lent to one caller at a time.

    Neither ``cv2.CascadeClassifier.detectMultiScale`` nor a ``cv2.dnn.Net`` is thread-safe: two
    threads in the same cascade raise ``(-215) ... getScaleData`` or get wrong boxes, and a net keeps
    its input and buffers. Each concurrent caller borrows its own copy; copies are made by ``load``
    only when all are busy and are kept for reuse, so there are as many as the most callers ever at once.
    """

    def __init__(self, load: Callable[[], T]):
        self._load = load
        self._free: queue.SimpleQueue = queue.SimpleQueue()
        self._free.put(load())  # fails early on a missing or corrupt file

    @contextmanager
    def borrowed(self) -> Iterator[T]:
        try:
            item = self._free.get_nowait()
        except queue.Empty:
            item = self._load()
        try:
            yield item
        finally:
            self._free.put(item)
