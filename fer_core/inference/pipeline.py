"""The one path from an image to emotions: detect faces → crop → classify.

The upload page, the predict CLI, the video analysis and the live camera all call
:func:`analyze_image`, so a face gets the same crop, preprocessing, test-time augmentation and
calibration wherever it comes from. All faces of an image go to the model in one batch.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from fer_core.inference.crop import FACE_MARGIN, crop_faces
from fer_core.inference.detect import Box, Detector, detector_for, to_gray
from fer_core.inference.recognizer import EmotionRecognizer, TopLabel


@dataclass(frozen=True)
class FaceResult(TopLabel):
    """One face of an image: its number, box ``(x, y, w, h)`` in image pixels and probabilities."""

    index: int
    box: Box
    probabilities: dict[str, float]


def classify_boxes(gray: np.ndarray, boxes: Sequence[Box], recognizer: EmotionRecognizer,
                   tta: bool = True, margin: float = FACE_MARGIN) -> list[FaceResult]:
    """Crop every box of a gray image and classify all of them in one recognizer call."""
    faces = crop_faces(gray, boxes, margin)
    probs = recognizer.predict_proba(faces, tta=tta)
    return [FaceResult(i, tuple(int(v) for v in box), dict(zip(recognizer.labels, map(float, row))))
            for i, (box, row) in enumerate(zip(boxes, probs))]


def analyze_image(image_bgr: np.ndarray, recognizer: EmotionRecognizer, detector: Detector | None = None,
                  tta: bool = True) -> list[FaceResult]:
    """Every face the detector finds in a BGR (or gray) image, numbered left to right; ``[]`` if none.

    The default detector is the default one tuned for photos; a live camera passes
    ``detector_for(name, "frame")``. The crop margin is the one the model's card records for that
    detector (:meth:`fer_core.model_card.ModelCard.crop_margin_for`).
    """
    detector = detector or detector_for()
    gray = to_gray(image_bgr)
    boxes = detector.detect(image_bgr)
    return classify_boxes(gray, boxes, recognizer, tta=tta, margin=recognizer.card.crop_margin_for(detector.name))


def find_faces(image_bgr: np.ndarray, recognizer: EmotionRecognizer, tta: bool = True,
               whole_image: bool = False, detector: Detector | None = None) -> list[FaceResult]:
    """The faces of an image: those the detector finds (:func:`analyze_image`), or with
    ``whole_image`` the whole image as one face (:func:`classify_whole_image`)."""
    if whole_image:
        return [classify_whole_image(image_bgr, recognizer, tta=tta)]
    return analyze_image(image_bgr, recognizer, detector, tta=tta)


def classify_whole_image(image_bgr: np.ndarray, recognizer: EmotionRecognizer, tta: bool = True) -> FaceResult:
    """Classify the whole image as one face, for pictures that are already a cropped face.

    No margin is added (the image is taken to be the face's frame); a non-square image is squared by
    repeating its edges rather than stretched, so the face keeps its proportions.
    """
    gray = to_gray(image_bgr)
    height, width = gray.shape
    return classify_boxes(gray, [(0, 0, width, height)], recognizer, tta=tta, margin=0.0)[0]
