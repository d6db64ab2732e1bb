"""Cutting detected faces out of an image so they look like FER2013's training faces.

FER2013 faces are tightly framed 48×48 gray crops. A detected box is widened by a margin on every
side (a fraction of its side), squared, cut out and resized. OpenCV's frontal-face box lands
almost exactly on FER2013's frame, which fits how the dataset was made (with OpenCV face detection),
so the box is used as it is (margin 0). Another detector's boxes frame a face differently (BlazeFace's
are tighter, YuNet's taller than wide), so the margin depends on the detector.
``benchmarks/crop_study.py`` measures both the frame overlap and the accuracy per margin for each
detector; the model card's ``face_crop`` records the margin per detector the model uses.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from fer_core.data import FACE_SIZE
from fer_core.inference.detect import Box, detector_sources
from fer_core.model_format import FACE_MARGIN, FACE_MARGINS

# Largest square built at full size when a crop reaches past the image (see _padded_square).
MAX_PADDED_SIDE = 4096


def face_crop_card(margin: float = FACE_MARGIN, margins: dict[str, float] | None = None) -> dict:
    """The ``face_crop`` entry of a model card: how faces must be cut out for this model.

    ``margins`` holds the margin per detector (default :data:`FACE_MARGINS`, with ``margin`` for
    Haar); ``margin`` and ``detector`` stay for readers of cards written before detectors were a choice.
    """
    margins = {**FACE_MARGINS, "haar": margin, **(margins or {})}
    sources = detector_sources()
    return {"detector": sources["haar"], "margin": margins["haar"], "margins": margins, "detectors": sources,
            "shape": "square around the box centre, side × (1 + 2 × margin), edges repeated past the image",
            "size": [FACE_SIZE, FACE_SIZE], "chosen_by": "benchmarks/crop_study.py --detector NAME"}


def square_around(box: Box, margin: float) -> tuple[int, int, int]:
    """``(x, y, side)`` of the square centred on ``box``, with ``margin`` × side added on each side."""
    x, y, w, h = box
    side = max(1, round(max(w, h) * (1 + 2 * margin)))
    cx, cy = x + w / 2, y + h / 2
    return round(cx - side / 2), round(cy - side / 2), side


def crop_face(gray: np.ndarray, box: Box, margin: float = FACE_MARGIN) -> np.ndarray:
    """One 48×48 uint8 face: the square around ``box`` with ``margin``, resized.

    Where the square reaches past the image, the edge pixels are repeated rather than filled with
    black: a black band is a strong feature the model never saw in training.
    """
    import cv2

    x, y, side = square_around(box, margin)
    height, width = gray.shape
    # The part of the square inside the image (at least one pixel, the nearest, when none is),
    # and how far the square reaches past it on each side.
    x0, y0 = min(max(0, x), width - 1), min(max(0, y), height - 1)
    x1, y1 = max(min(width, x + side), x0 + 1), max(min(height, y + side), y0 + 1)
    inside = gray[y0:y1, x0:x1]
    top, left = y0 - y, x0 - x
    if top == left == 0 and inside.shape == (side, side):
        square = inside
    else:
        square = _padded_square(inside, top, left, side)
    interpolation = cv2.INTER_AREA if square.shape[0] > FACE_SIZE else cv2.INTER_LINEAR
    return cv2.resize(square, (FACE_SIZE, FACE_SIZE), interpolation=interpolation)


def _padded_square(inside: np.ndarray, top: int, left: int, side: int) -> np.ndarray:
    """The ``side``-pixel square holding ``inside`` at ``(left, top)``, edges repeated around it.

    A square much larger than the image (the whole of a 1×50,000 strip classified as one face)
    would take gigabytes at full size, so beyond :data:`MAX_PADDED_SIDE` the image part is
    downscaled first and the square built at that size; it ends up 48×48 either way.
    """
    import cv2

    if side > MAX_PADDED_SIDE:
        factor = MAX_PADDED_SIDE / side
        h, w = inside.shape
        inside = cv2.resize(inside, (max(1, round(w * factor)), max(1, round(h * factor))),
                            interpolation=cv2.INTER_AREA)
        top, left, side = round(top * factor), round(left * factor), MAX_PADDED_SIDE
    h, w = inside.shape
    top, left = min(max(0, top), side - h), min(max(0, left), side - w)
    return cv2.copyMakeBorder(inside, top, side - h - top, left, side - w - left, cv2.BORDER_REPLICATE)


def crop_faces(gray: np.ndarray, boxes: Sequence[Box], margin: float = FACE_MARGIN) -> np.ndarray:
    """Faces ``(N, 48, 48)`` uint8 for ``boxes`` in a gray uint8 image (``(0, 48, 48)`` for no box)."""
    if gray.ndim != 2 or gray.dtype != np.uint8:
        raise ValueError(f"crop_faces needs a 2-D uint8 gray image, got {gray.dtype} {gray.shape}")
    faces = np.zeros((len(boxes), FACE_SIZE, FACE_SIZE), np.uint8)
    for i, box in enumerate(boxes):
        faces[i] = crop_face(gray, box, margin)
    return faces
