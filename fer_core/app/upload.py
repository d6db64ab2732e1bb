"""What the Upload and Video pages do with a file, without Streamlit: decode, analyse, annotate, export.

Kept here so that it can be tested directly (Streamlit's AppTest cannot upload files) and so that
the page stays a thin view.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from fer_core.inference.crop import crop_faces
from fer_core.inference.detect import detector_for, to_gray
from fer_core.inference.draw import annotate
from fer_core.inference.images import decode_image, encode_png
from fer_core.inference.pipeline import FaceResult, find_faces
from fer_core.inference.recognizer import EmotionRecognizer
from fer_core.inference.results import results_csv, results_frame, results_json
from fer_core.inference.video import ProgressCallback, VideoAnalysis, VideoError, VideoTooLarge, analyze_video
from fer_core.settings import DEFAULT_DETECTORS, Budgets, env_name

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
    results = find_faces(image, recognizer, tta=tta, whole_image=whole_image, detector=detector_for(detector))
    # as classify_whole_image / analyze_image
    margin = 0.0 if whole_image else recognizer.card.crop_margin_for(detector)
    return ImageAnalysis(name, image, results, recognizer.labels, whole_image, margin)


def _scaled_box(box: tuple[int, int, int, int], factor_x: float, factor_y: float) -> tuple[int, int, int, int]:
    x, y, w, h = box
    return (round(x * factor_x), round(y * factor_y), max(1, round(w * factor_x)), max(1, round(h * factor_y)))


@dataclass(frozen=True)
class VideoUploadAnalysis:
    """An uploaded clip's per-face rows and, if asked for, the annotated MP4's bytes."""

    analysis: VideoAnalysis
    annotated_mp4: bytes | None


@dataclass(frozen=True)
class UploadSettings:
    """The Upload page's sidebar: which model, how to draw, Grad-CAM, TTA, the label view and the detector."""

    model: str
    emoji: bool
    bars: bool
    cam: bool
    tta: bool
    scheme: str | None
    detector: str = DEFAULT_DETECTORS["photo"]


@dataclass(frozen=True)
class VideoSettings:
    """The Video page's analysis settings: a stored result is shown only while they stay the same.

    Defined here, not in the page, so that a result kept in ``st.session_state`` still compares equal
    after a rerun (a rerun redefines the page's own classes)."""

    every: int
    max_seconds: float
    tta: bool
    annotate_video: bool
    emoji: bool
    detector: str = DEFAULT_DETECTORS["video"]


@dataclass(frozen=True)
class VideoRun:
    """A finished analysis kept in the session: of which file, with which model and settings."""

    file_id: str
    model: str
    settings: VideoSettings
    result: VideoUploadAnalysis | None


def analyze_video_upload(data: bytes, name: str, recognizer: EmotionRecognizer, every: int = 5,
                         tta: bool = True, max_seconds: float | None = None, annotate_video: bool = True,
                         emoji: bool = False, progress: ProgressCallback | None = None,
                         detector: str = DEFAULT_DETECTORS["video"], budgets: Budgets | None = None
                         ) -> VideoUploadAnalysis:
    """:func:`fer_core.inference.video.analyze_video` on uploaded bytes, through a temporary folder that is removed
    afterwards. Raises :class:`fer_core.inference.video.VideoError` for a file that is not a readable video."""
    budgets = budgets or Budgets.from_env()
    if len(data) > budgets.max_upload_bytes:
        raise VideoTooLarge(f"{name}: {len(data) / 2**20:.0f} MB is too large (limit "
                            f"{budgets.max_upload_bytes / 2**20:.0f} MB, {env_name('max_upload_bytes')})")
    with tempfile.TemporaryDirectory(prefix="fer_video_") as folder:
        source = Path(folder) / _file_name(name)
        source.write_bytes(data)
        target = Path(folder) / "annotated.mp4" if annotate_video else None
        try:
            analysis = analyze_video(source, recognizer, every=every, annotate_path=target, progress=progress,
                                     tta=tta, max_seconds=max_seconds, emoji=emoji, detector=detector_for(detector),
                                     budgets=budgets)
        except VideoError as exc:  # the message names the upload, not the server's temporary folder
            raise type(exc)(_without_folder(str(exc), folder)) from None
        video = analysis.annotated_path.read_bytes() if analysis.annotated_path else None
    # The temporary file is gone: keep its bytes, not its path.
    error = _without_folder(analysis.error, folder) if analysis.error else None
    return VideoUploadAnalysis(replace(analysis, annotated_path=None, error=error), video)


def _file_name(name: str) -> str:
    """A visitor's file name usable inside the temporary folder: its last part (no folders, no
    ``..``), at most 120 characters ending with the suffix, without NUL bytes."""
    last = Path(name.replace("\0", "")).name[-120:]
    return last if last not in ("", ".", "..") else "upload"


def _without_folder(message: str, folder: str) -> str:
    """A message with the server's temporary folder taken out of the paths it names."""
    return message.replace(folder + os.sep, "").replace(folder, "")
