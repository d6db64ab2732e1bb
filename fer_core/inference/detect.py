"""Face detection: the detectors the app offers, and OpenCV's frontal-face Haar cascade (shipped
inside the OpenCV 4 wheel). The CNN detectors live in :mod:`fer_core.inference.yunet` and
:mod:`fer_core.inference.blazeface`; :func:`detector_for` gives any of them by name.

A Haar cascade is small, needs no download and runs in a few milliseconds on a CPU, which suits a
dashboard on a 2-core server. It only finds roughly frontal faces; that matches FER2013, whose faces
are frontal too, so a face the cascade misses would mostly be classified badly anyway.

Speed comes from detecting on a downscaled gray copy: the cascade's cost grows with the number of
pixels and of scales searched, and a face needs only about 24 px (the cascade's window) to be found.
Boxes are scaled back to the pixels of the image given.
"""

from __future__ import annotations

import hashlib
import os
import queue
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Generic, Literal, Protocol, TypeVar

import numpy as np

from fer_core.settings import default_detector

if TYPE_CHECKING:
    import cv2

CASCADE_FILE = "haarcascade_frontalface_default.xml"
CASCADE_WINDOW = 24  # the default frontal-face cascade's window, in pixels

Box = tuple[int, int, int, int]  # x, y, w, h in pixels
DETECTOR_NAMES = ("yunet", "blazeface", "haar")
Use = Literal["photo", "frame"]
T = TypeVar("T")


class DetectorError(RuntimeError):
    """The face detector cannot run (e.g. the cascade file is missing from the OpenCV install)."""


@dataclass(frozen=True)
class DetectorSettings:
    """How the cascade searches an image.

    ``max_side``: the longest side of the copy detection runs on (larger images are downscaled).
    ``min_face``: smallest face to report, in pixels of the image given (smaller ones carry too little
    detail to classify); a face must also span the cascade's 24-px window on the downscaled copy, so
    in an image larger than ``max_side`` the smallest face found is 24 × side / ``max_side`` pixels.
    ``scale_factor`` and ``min_neighbors`` are OpenCV's: a larger scale factor
    searches fewer sizes (faster, may miss a face between two sizes); more neighbours means fewer
    false positives and a few more misses.
    """

    max_side: int = 640
    min_face: int = 40
    scale_factor: float = 1.1
    min_neighbors: int = 5


# Photos: faces may be small in a large picture, so search a fairly large copy at fine scale steps.
# benchmarks/detector_study.py measures faces found and false boxes for both settings.
PHOTO_SETTINGS = DetectorSettings(max_side=1024, min_face=40, scale_factor=1.1, min_neighbors=5)
# Webcam and video frames: a person in front of a camera has a face of 64 px or more in a 640×480
# frame, and a frame must take milliseconds, so search a 320-px copy at coarser scale steps.
# benchmarks/detector_study.py weighs the alternatives (faces found against ms per frame): no
# setting it tried is both faster and as good.
FRAME_SETTINGS = DetectorSettings(max_side=320, min_face=64, scale_factor=1.2, min_neighbors=5)


def cascade_path() -> Path:
    """Where OpenCV keeps its frontal-face cascade (``cv2.data.haarcascades``)."""
    import cv2

    folder = getattr(getattr(cv2, "data", None), "haarcascades", None)
    if folder is None:
        raise DetectorError(
            f"OpenCV {cv2.__version__} ships no Haar cascades (OpenCV 5 wheels dropped them); "
            "install opencv-python-headless 4.x as pinned in requirements.txt"
        )
    return Path(folder) / CASCADE_FILE


def load_cascade(path: str) -> cv2.CascadeClassifier:
    """A new cascade read from ``path`` (parses a 1 MB XML file; see :class:`ObjectPool`)."""
    import cv2

    if not hasattr(cv2, "CascadeClassifier"):
        raise DetectorError(f"OpenCV {cv2.__version__} has no CascadeClassifier; install opencv-python-headless 4.x")
    if not os.path.isfile(path):
        raise DetectorError(f"Haar cascade {path} not found; reinstall opencv-python-headless 4.x")
    cascade = cv2.CascadeClassifier(path)
    if cascade.empty():
        raise DetectorError(f"Haar cascade {path} could not be loaded (corrupt file?)")
    return cascade


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


@lru_cache(maxsize=4)
def cascade_pool(path: str) -> ObjectPool[cv2.CascadeClassifier]:
    """The process's pool for a cascade file."""
    return ObjectPool(lambda: load_cascade(path))


class Detector(Protocol):
    """What the pipeline needs of a face detector: its name (the model card keeps a crop margin per
    detector) and boxes for an image."""

    name: str

    def detect(self, image: np.ndarray) -> list[Box]: ...


class FaceDetector:
    """Finds frontal faces with the Haar cascade; one instance can be shared between threads (each
    detection borrows its own cascade from the file's :class:`ObjectPool`)."""

    name = "haar"

    def __init__(self, settings: DetectorSettings = PHOTO_SETTINGS, cascade_file: str | os.PathLike | None = None):
        self.settings = settings
        self.cascades = cascade_pool(str(cascade_file or cascade_path()))

    def detect(self, image: np.ndarray) -> list[Box]:
        """Face boxes ``(x, y, w, h)`` in pixels of ``image`` (gray, BGR or BGRA), left to right."""
        import cv2

        gray = to_gray(image)
        height, width = gray.shape
        scale = min(1.0, self.settings.max_side / max(height, width))
        min_side = max(CASCADE_WINDOW, round(self.settings.min_face * scale))
        if min(height, width) * scale < min_side:
            # No face fits across a strip this thin (e.g. a 1×5000 image), and downscaling it would
            # leave zero pixels on its short side, which cv2.resize refuses.
            return []
        small = gray if scale == 1.0 else cv2.resize(gray, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        with self.cascades.borrowed() as cascade:
            found = cascade.detectMultiScale(
                small,  # no histogram equalisation: the cascade normalises each window, and a global
                # equalisation of a picture with a large flat area washes out the face
                scaleFactor=self.settings.scale_factor,
                minNeighbors=self.settings.min_neighbors,
                minSize=(min_side, min_side),
            )
        boxes = []
        for x, y, w, h in np.asarray(found, dtype=np.float64).reshape(-1, 4) / scale:
            box = clip_box((round(x), round(y), round(w), round(h)), width, height)
            if box is not None:
                boxes.append(box)
        return sorted(boxes, key=lambda b: (b[0], b[1]))


@lru_cache(maxsize=4)
def shared_detector(settings: DetectorSettings = PHOTO_SETTINGS) -> FaceDetector:
    """One Haar detector per settings for the whole process (the page, the CLI and the video share it)."""
    return FaceDetector(settings)


@lru_cache(maxsize=8)
def detector_for(name: str | None = None, use: Use = "photo") -> Detector:
    """The process's shared detector called ``name`` (one of :data:`DETECTOR_NAMES`; ``None``: the default
    of photos or of the live camera, :data:`fer_core.settings.DEFAULT_DETECTORS`) with its settings for
    photos or for camera frames."""
    name = name or default_detector("photo" if use == "photo" else "live")
    if name == "haar":
        return shared_detector(PHOTO_SETTINGS if use == "photo" else FRAME_SETTINGS)
    if name == "yunet":
        from fer_core.inference import yunet

        return yunet.YuNetDetector(yunet.PHOTO_SETTINGS if use == "photo" else yunet.FRAME_SETTINGS)
    if name == "blazeface":
        from fer_core.inference import blazeface

        return blazeface.BlazeFaceDetector(blazeface.PHOTO_SETTINGS if use == "photo" else blazeface.FRAME_SETTINGS)
    raise ValueError(f"unknown face detector {name!r}; choose one of {', '.join(DETECTOR_NAMES)}")
