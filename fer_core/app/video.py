"""What the Video page does with an uploaded clip, without Streamlit: analyse it through a temporary
file within the budgets, keep the annotated copy's bytes, and the settings a stored result is shown under.

Kept here so that it can be tested directly (Streamlit's AppTest cannot upload files) and so that
the page stays a thin view.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path

from fer_core.inference.detect import detector_for
from fer_core.inference.recognizer import EmotionRecognizer
from fer_core.inference.video import ProgressCallback, VideoAnalysis, VideoError, VideoTooLarge, analyze_video
from fer_core.settings import DEFAULT_DETECTORS, AnalysisSettings, Budgets, env_name


@dataclass(frozen=True)
class VideoUploadAnalysis:
    """An uploaded clip's per-face rows and, if asked for, the annotated MP4's bytes."""

    analysis: VideoAnalysis
    annotated_mp4: bytes | None


@dataclass(frozen=True)
class VideoSettings:
    """The Video page's analysis settings: a stored result is shown only while they stay the same.

    Defined here, not in the page, so that a result kept in ``st.session_state`` still compares equal
    after a rerun (a rerun redefines the page's own classes)."""

    analysis: AnalysisSettings
    every: int
    max_seconds: float
    annotate_video: bool
    emoji: bool


@dataclass(frozen=True)
class VideoRun:
    """A finished analysis kept in the session: of which file, with which settings (the model among them)."""

    file_id: str
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
