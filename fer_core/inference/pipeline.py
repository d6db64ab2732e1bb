"""The one path from an image to emotions: detect faces → crop → classify.

The upload page, the predict CLI, the video analysis and the live camera all call
:func:`analyze_image`, so a face gets the same crop, preprocessing, test-time augmentation and
calibration wherever it comes from. All faces of an image go to the model in one batch.

An analysis is asked for with one :class:`~fer_core.settings.AnalysisSettings`; :func:`recognizer_for`
and :func:`settings_detector` turn it into the recognizer and the detector, and :func:`crop_margin` says
how the faces of that detector are cut out for that model.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from fer_core.inference.crop import crop_faces
from fer_core.inference.detect import Box, Detector, Use, detector_for, to_gray
from fer_core.inference.recognizer import EmotionRecognizer, TopLabel
from fer_core.model_format import FACE_MARGIN
from fer_core.settings import AnalysisSettings

WHOLE_IMAGE_MARGIN = 0.0  # an image classified whole is taken to be the face's frame


@dataclass(frozen=True)
class FaceResult(TopLabel):
    """One face of an image: its number, box ``(x, y, w, h)`` in image pixels and probabilities."""

    index: int
    box: Box
    probabilities: dict[str, float]


@dataclass(frozen=True)
class FaceCrops:
    """The detect and crop steps of one image: its face boxes and the 48×48 faces cut out for them,
    ready for the classifier. A caller that classifies the faces of many images in one call (the HTTP
    API) stops here, then turns its probabilities into results with :func:`face_results`."""

    boxes: list[Box]
    faces: np.ndarray  # (N, 48, 48) uint8


def recognizer_for(settings: AnalysisSettings,
                   load: Callable[[str], EmotionRecognizer] = EmotionRecognizer) -> EmotionRecognizer:
    """The recognizer an analysis asks for: its model, seen through its label view. ``load`` turns a model
    path into a recognizer; a surface that keeps its models loaded (the app's cache, the HTTP API's
    preloaded models) passes its own."""
    return load(settings.model).for_scheme(settings.scheme)


def settings_detector(settings: AnalysisSettings, use: Use = "photo") -> Detector:
    """The process's shared detector an analysis asks for, with its settings for photos or for frames."""
    return detector_for(settings.detector, use)


def crop_margin(recognizer: EmotionRecognizer, detector: Detector | None) -> float:
    """The margin faces are cut out with: the one the model's card records for ``detector``'s boxes
    (:meth:`fer_core.model_card.ModelCard.crop_margin_for`), or none for the whole image classified as
    one face (``detector`` ``None``)."""
    return WHOLE_IMAGE_MARGIN if detector is None else recognizer.card.crop_margin_for(detector.name)


def largest_faces(boxes: Sequence[Box], n: int | None) -> list[Box]:
    """The ``n`` largest boxes by area (all of them for ``None``), kept in their left-to-right order."""
    boxes = list(boxes)
    if n is None or len(boxes) <= n:
        return boxes
    keep = set(sorted(range(len(boxes)), key=lambda i: -boxes[i][2] * boxes[i][3])[:n])
    return [box for i, box in enumerate(boxes) if i in keep]


def crop_image_faces(image_bgr: np.ndarray, recognizer: EmotionRecognizer, detector: Detector | None = None,
                     whole_image: bool = False, max_faces: int | None = None) -> FaceCrops:
    """The faces the detector finds in a BGR (or gray) image, left to right (only the ``max_faces``
    largest when given), cut out with the margin the model's card records for that detector; with
    ``whole_image`` the whole image as one face, squared without a margin (:func:`classify_whole_image`)."""
    gray = to_gray(image_bgr)
    if whole_image:
        height, width = gray.shape
        boxes: list[Box] = [(0, 0, width, height)]
        return FaceCrops(boxes, crop_faces(gray, boxes, crop_margin(recognizer, None)))
    detector = detector or detector_for()
    boxes = largest_faces(detector.detect(image_bgr), max_faces)
    return FaceCrops(boxes, crop_faces(gray, boxes, crop_margin(recognizer, detector)))


def face_results(boxes: Sequence[Box], probabilities: np.ndarray, labels: Sequence[str]) -> list[FaceResult]:
    """One :class:`FaceResult` per box, numbered in the boxes' order, from the classifier's rows."""
    return [FaceResult(i, tuple(int(v) for v in box), dict(zip(labels, map(float, row))))
            for i, (box, row) in enumerate(zip(boxes, probabilities))]


def classify_boxes(gray: np.ndarray, boxes: Sequence[Box], recognizer: EmotionRecognizer,
                   tta: bool = True, margin: float = FACE_MARGIN) -> list[FaceResult]:
    """Crop every box of a gray image and classify all of them in one recognizer call."""
    faces = crop_faces(gray, boxes, margin)
    return face_results(boxes, recognizer.predict_proba(faces, tta=tta), recognizer.labels)


def analyze_image(image_bgr: np.ndarray, recognizer: EmotionRecognizer, detector: Detector | None = None,
                  tta: bool = True, max_faces: int | None = None) -> list[FaceResult]:
    """Every face the detector finds in a BGR (or gray) image, numbered left to right; ``[]`` if none
    (only the ``max_faces`` largest when given).

    The default detector is the default one tuned for photos; a live camera passes
    ``detector_for(name, "frame")``. The crop margin is the one the model's card records for that
    detector (:meth:`fer_core.model_card.ModelCard.crop_margin_for`).
    """
    return find_faces(image_bgr, recognizer, tta=tta, detector=detector, max_faces=max_faces)


def find_faces(image_bgr: np.ndarray, recognizer: EmotionRecognizer, tta: bool = True,
               whole_image: bool = False, detector: Detector | None = None,
               max_faces: int | None = None) -> list[FaceResult]:
    """The faces of an image: those the detector finds (:func:`analyze_image`), or with
    ``whole_image`` the whole image as one face (:func:`classify_whole_image`)."""
    crops = crop_image_faces(image_bgr, recognizer, detector, whole_image=whole_image, max_faces=max_faces)
    return face_results(crops.boxes, recognizer.predict_proba(crops.faces, tta=tta), recognizer.labels)


def classify_whole_image(image_bgr: np.ndarray, recognizer: EmotionRecognizer, tta: bool = True) -> FaceResult:
    """Classify the whole image as one face, for pictures that are already a cropped face.

    No margin is added (the image is taken to be the face's frame); a non-square image is squared by
    repeating its edges rather than stretched, so the face keeps its proportions.
    """
    return find_faces(image_bgr, recognizer, tta=tta, whole_image=True)[0]
