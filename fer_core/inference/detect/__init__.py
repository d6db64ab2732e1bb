"""Face detection: the detectors the app offers, by name.

One module per detector (:mod:`.haar`, OpenCV's frontal-face cascade; :mod:`.yunet` and
:mod:`.blazeface`, small CNNs run by OpenCV), each with its settings for photos and for camera and
video frames; :mod:`.base` holds what they share. This registry sits above them: it names them,
builds them (:func:`detector_for`) and passes on the shared names callers need
(``from fer_core.inference.detect import Box, Detector, detector_for, to_gray``). No detector module
imports it.
"""

from __future__ import annotations

from functools import lru_cache

from fer_core.inference.detect import blazeface, haar, yunet
from fer_core.inference.detect.base import Box, Detector, DetectorError, Use, to_gray
from fer_core.settings import default_detector

__all__ = ["DETECTOR_NAMES", "Box", "Detector", "DetectorError", "Use", "detector_for",
           "detector_sources", "to_gray"]

DETECTOR_NAMES = ("yunet", "blazeface", "haar")


@lru_cache(maxsize=8)
def detector_for(name: str | None = None, use: Use = "photo") -> Detector:
    """The process's shared detector called ``name`` (one of :data:`DETECTOR_NAMES`; ``None``: the default
    of photos or of the live camera, :data:`fer_core.settings.DEFAULT_DETECTORS`) with its settings for
    photos or for camera frames."""
    name = name or default_detector("photo" if use == "photo" else "live")
    photo = use == "photo"
    if name == "haar":
        return haar.HaarDetector(haar.PHOTO_SETTINGS if photo else haar.FRAME_SETTINGS)
    if name == "yunet":
        return yunet.YuNetDetector(yunet.PHOTO_SETTINGS if photo else yunet.FRAME_SETTINGS)
    if name == "blazeface":
        return blazeface.BlazeFaceDetector(blazeface.PHOTO_SETTINGS if photo else blazeface.FRAME_SETTINGS)
    raise ValueError(f"unknown face detector {name!r}; choose one of {', '.join(DETECTOR_NAMES)}")


def detector_sources() -> dict[str, str]:
    """Where each detector's model comes from, by name, as a model card records it."""
    return {"haar": haar.SOURCE, "blazeface": blazeface.WEIGHTS_SOURCE, "yunet": yunet.WEIGHTS_SOURCE}
