"""What the Upload page does with a file, without Streamlit: decode, analyse, annotate, export.

Kept here so that it can be tested directly (Streamlit's AppTest cannot upload files) and so that
the page stays a thin view; the Video page's counterpart is :mod:`fer_core.app.video`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from fer_core.inference.crop import crop_faces
from fer_core.inference.detect import detector_for, to_gray
from fer_core.inference.draw import annotate
from fer_core.inference.images import decode_image, encode_png
from fer_core.inference.pipeline import FaceResult, crop_margin, find_faces
from fer_core.inference.recognizer import EmotionRecognizer
from fer_core.inference.results import results_csv, results_frame, results_json
from fer_core.settings import DEFAULT_DETECTORS, AnalysisSettings, Budgets

if TYPE_CHECKING:
    import pandas

PREVIEW_SIDE = 1600


@dataclass(frozen=True)
class ImageAnalysis:
    """An uploaded picture (BGR, upright) and its faces."""

    name: str
    image: np.ndarray
    results: list[FaceResult]
    labels: tuple[str, ...]
    whole_image: bool  # the whole picture was classified as one face (no detection)
    margin: float  # crop margin the faces were classified with

    def face_crops(self) -> np.ndarray:
        """The 48×48 faces exactly as the model saw them, in face order (for Grad-CAM)."""
        return crop_faces(to_gray(self.image), [r.box for r in self.results], self.margin)

    def annotated(self, emoji: bool = False, bars: bool = False) -> np.ndarray:
        return annotate(self.image, self.results, emoji=emoji, bars=bars)

    def preview(self, emoji: bool = False, bars: bool = False, max_side: int = PREVIEW_SIDE) -> np.ndarray:
        """The annotated image as RGB, at most ``max_side`` pixels long, for showing on the page: a
        50-megapixel photo would otherwise be re-encoded and sent to the browser on every rerun.

        A large photo is shrunk first and drawn on with its boxes scaled, so that no full-size
        annotated copy (144 MB for 48 megapixels) is made on each rerun."""
        import cv2

        height, width = self.image.shape[:2]
        scale = max_side / max(height, width)
        if scale >= 1:
            return cv2.cvtColor(self.annotated(emoji, bars), cv2.COLOR_BGR2RGB)
        size = (max(1, round(width * scale)), max(1, round(height * scale)))  # a 1×5000 strip keeps a pixel
        small = cv2.resize(self.image, size, interpolation=cv2.INTER_AREA)
        factor_x, factor_y = size[0] / width, size[1] / height
        results = [replace(r, box=_scaled_box(r.box, factor_x, factor_y)) for r in self.results]
        return cv2.cvtColor(annotate(small, results, emoji=emoji, bars=bars), cv2.COLOR_BGR2RGB)

    def annotated_png(self, emoji: bool = False, bars: bool = False) -> bytes:
        return encode_png(self.annotated(emoji, bars))

    def table(self) -> pandas.DataFrame:
        return results_frame(self.results, self.labels)

    def csv(self) -> bytes:
        return results_csv(self.results, self.labels)

    def json(self) -> bytes:
        return results_json(self.name, self.results)

    def download_name(self, suffix: str) -> str:
        """``photo_annotated.png``, ``photo_faces.csv``… for a file named ``photo.jpg``."""
        return f"{Path(self.name).stem or 'image'}_{suffix}"


def analyze_upload(data: bytes, name: str, recognizer: EmotionRecognizer, tta: bool = True,
                   whole_image: bool = False, detector: str = DEFAULT_DETECTORS["photo"],
                   budgets: Budgets | None = None) -> ImageAnalysis:
    """Decode an uploaded file and find and classify its faces with the detector called ``detector``
    (or classify it whole).

    Raises :class:`fer_core.inference.images.ImageError` with a message for the user when the file is
    unusable, :class:`~fer_core.inference.images.ImageTooLarge` when it is over ``budgets`` (checked
    from its header, before decoding).
    """
    image = decode_image(data, name, budgets)
    found_by = None if whole_image else detector_for(detector)
    results = find_faces(image, recognizer, tta=tta, whole_image=whole_image, detector=found_by)
    return ImageAnalysis(name, image, results, recognizer.labels, whole_image, crop_margin(recognizer, found_by))


def _scaled_box(box: tuple[int, int, int, int], factor_x: float, factor_y: float) -> tuple[int, int, int, int]:
    x, y, w, h = box
    return (round(x * factor_x), round(y * factor_y), max(1, round(w * factor_x)), max(1, round(h * factor_y)))


@dataclass(frozen=True)
class UploadSettings:
    """The Upload page's sidebar: the analysis (model, detector, TTA, label view, budgets), how to draw,
    Grad-CAM."""

    analysis: AnalysisSettings
    emoji: bool
    bars: bool
    cam: bool
