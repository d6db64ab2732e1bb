"""Face detection with OpenCV's frontal-face Haar cascade (shipped inside the OpenCV 4 wheel).

A Haar cascade is small, needs no download and runs in a few milliseconds on a CPU, which suits a
dashboard on a 2-core server. It only finds roughly frontal faces; that matches FER2013, whose faces
are frontal too, so a face the cascade misses would mostly be classified badly anyway.

Speed comes from detecting on a downscaled gray copy: the cascade's cost grows with the number of
pixels and of scales searched, and a face needs only about 24 px (the cascade's window) to be found.
Boxes are scaled back to the pixels of the image given.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from fer_core.inference.detect.base import Box, DetectorError, ObjectPool, clipped_boxes, to_gray

if TYPE_CHECKING:
    import cv2

CASCADE_FILE = "haarcascade_frontalface_default.xml"
CASCADE_WINDOW = 24  # the default frontal-face cascade's window, in pixels
SOURCE = f"OpenCV Haar cascade {CASCADE_FILE}"  # as a model card names the detector


@dataclass(frozen=True)
class HaarSettings:
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
PHOTO_SETTINGS = HaarSettings(max_side=1024, min_face=40, scale_factor=1.1, min_neighbors=5)
# Webcam and video frames: a person in front of a camera has a face of 64 px or more in a 640×480
# frame, and a frame must take milliseconds, so search a 320-px copy at coarser scale steps.
# benchmarks/detector_study.py weighs the alternatives (faces found against ms per frame): no
# setting it tried is both faster and as good.
FRAME_SETTINGS = HaarSettings(max_side=320, min_face=64, scale_factor=1.2, min_neighbors=5)


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


@lru_cache(maxsize=4)
def cascade_pool(path: str) -> ObjectPool[cv2.CascadeClassifier]:
    """The process's pool for a cascade file."""
    return ObjectPool(lambda: load_cascade(path))


class HaarDetector:
    """Finds frontal faces with the Haar cascade; one instance can be shared between threads (each
    detection borrows its own cascade from the file's :class:`ObjectPool`)."""

    name = "haar"

    def __init__(self, settings: HaarSettings = PHOTO_SETTINGS, cascade_file: str | os.PathLike | None = None):
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
        return clipped_boxes(np.asarray(found, dtype=np.float64).reshape(-1, 4) / scale, width, height)
