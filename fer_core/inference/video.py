"""Video analysis with PyAV: every Nth frame through :func:`fer_core.inference.pipeline.analyze_image`.

The result is a table with one row per face per analysed frame (frame number, time in seconds, face
number, person, box, probability of each emotion, top label), and optionally an annotated copy of
the clip. In every analysed frame the faces are numbered by size, largest first (``face``), so face 1
is the main face of that frame. ``person`` follows each face through the clip
(:mod:`fer_core.inference.tracking` with :data:`~fer_core.inference.tracking.VIDEO_TRACKER`, clocked by
the frames' times): it is the number drawn in the annotated copy, and what the per-person summaries
(:mod:`fer_core.inference.people`) group by.

A video is analysed under :class:`fer_core.settings.Budgets`: a clip whose frames are larger than
``max_frame_pixels`` by the stream's header is refused before a frame is decoded
(:class:`VideoTooLarge`), and the frames decoded and the wall-clock time spent are counted as the
analysis goes (never trusted from the frame rate or length the file claims). Work over a budget stops
and keeps its rows; :attr:`VideoAnalysis.cut_short` says which budget stopped it.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from fer_core.inference.detect import Detector
from fer_core.inference.draw import annotate
from fer_core.inference.images import failure_reason
from fer_core.inference.pipeline import FaceResult, analyze_image
from fer_core.inference.recognizer import EmotionRecognizer
from fer_core.inference.results import face_row
from fer_core.inference.tracking import VIDEO_TRACKER, FaceTracker, TrackerSettings
from fer_core.settings import Budgets, env_name

if TYPE_CHECKING:
    import pandas

ProgressCallback = Callable[[int, int], None]  # (frames read, frames expected; 0 when unknown)
LOGGER = logging.getLogger(__name__)
OUTPUT_CODECS = ("libx264", "mpeg4")  # H.264 plays in browsers; MPEG-4 Part 2 is the fallback


class VideoError(ValueError):
    """A video that cannot be read, or an output that cannot be written; the message says which."""


class VideoTooLarge(VideoError):
    """A video whose frames are over the pixel budget by its header, refused before decoding."""


@dataclass
class VideoAnalysis:
    """Per-face rows of a clip and what was read."""

    labels: tuple[str, ...]
    rows: list[dict]
    frames_read: int
    frames_analyzed: int
    fps: float
    annotated_path: Path | None
    # Why and where the analysis stopped before the end of the clip (a frame that could not be
    # decoded or analysed); ``None`` when it read to the end or to ``max_seconds``.
    error: str | None = None
    # Which budget stopped the analysis before the end of the clip (frames, time or frame size), and
    # where; ``None`` when no budget was reached. The rows before it are kept.
    cut_short: str | None = None
    # Each person's clearest face (the largest box it was seen with), BGR, for showing who is who.
    portraits: dict[int, np.ndarray] = field(default_factory=dict)

    def to_frame(self) -> pandas.DataFrame:
        """Columns ``frame, time_s, face, person, x, y, w, h, label, confidence`` and one per label."""
        import pandas as pd

        columns = ["frame", "time_s", "face", "person", "x", "y", "w", "h", "label", "confidence", *self.labels]
        return pd.DataFrame(self.rows, columns=columns)


def upright(frame_bgr: np.ndarray, rotation: int) -> np.ndarray:
    """The frame as it should be shown: phones store portrait clips sideways plus a display rotation.

    ``rotation`` is PyAV's ``VideoFrame.rotation``: degrees counter-clockwise, a multiple of 90.
    """
    turns = round(rotation / 90) % 4
    return np.ascontiguousarray(np.rot90(frame_bgr, turns)) if turns else frame_bgr


def faces_by_size(results: list[FaceResult]) -> list[FaceResult]:
    """The same faces renumbered largest first (face 1 = the main face)."""
    ordered = sorted(results, key=lambda r: -r.box[2] * r.box[3])
    return [FaceResult(i, r.box, r.probabilities) for i, r in enumerate(ordered)]


def face_rows(frame_index: int, time_s: float, results: list[FaceResult], people: list[int]) -> list[dict]:
    """The rows of one analysed frame: its faces (in ``results``' order) and each one's person."""
    return [{"frame": frame_index, "time_s": row_time(time_s), **face_row(r, digits=None), "person": person}
            for r, person in zip(results, people)]


def row_time(time_s: float) -> float:
    """A frame's time as the rows carry it (and as the tracker's clock, so rows can replay it)."""
    return round(time_s, 3)


def follow(tracker: FaceTracker, boxes: list, time_s: float) -> list[int]:
    """The person of each box of one analysed frame, in the order of ``boxes``."""
    return [track.id for track in tracker.update(boxes, at=row_time(time_s))]


def retrack_rows(rows: list[dict], tracker: FaceTracker) -> None:
    """Set the ``person`` of each face row by following ``tracker`` over the rows' boxes, frame by
    frame: what :func:`analyze_video` numbers when it reads these frames after those the tracker has
    seen. ``rows`` are one clip's rows in frame order, each frame's faces as analysed (rows without a
    face, e.g. an error, are left alone). Frames without a face have no row, which changes nothing
    (:meth:`~fer_core.inference.tracking.FaceTracker.update`)."""
    faces = [row for row in rows if row.get("x") is not None]
    start = 0
    while start < len(faces):
        end = start
        while end < len(faces) and faces[end]["frame"] == faces[start]["frame"]:
            end += 1
        frame = faces[start:end]
        boxes = [(int(row["x"]), int(row["y"]), int(row["w"]), int(row["h"])) for row in frame]
        people = follow(tracker, boxes, frame[0]["time_s"])
        for row, person in zip(frame, people):
            row["person"] = person
        start = end


def portrait(image: np.ndarray, box: tuple[int, int, int, int], side: int = 128) -> np.ndarray:
    """The face in ``box`` with a little of its surroundings, at most ``side`` pixels each way."""
    import cv2

    x, y, w, h = box
    pad = round(0.15 * max(w, h))
    height, width = image.shape[:2]
    crop = image[max(0, y - pad):min(height, y + h + pad), max(0, x - pad):min(width, x + w + pad)]
    scale = side / max(crop.shape[:2])
    if scale < 1:
        crop = cv2.resize(crop, (max(1, round(crop.shape[1] * scale)), max(1, round(crop.shape[0] * scale))),
                          interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(crop)


def keep_clearest(portraits: dict[int, np.ndarray], sizes: dict[int, int], image: np.ndarray,
                  results: list[FaceResult], people: list[int]) -> None:
    """Keep, per person, the crop of the largest box seen so far (a larger face shows more)."""
    for result, person in zip(results, people):
        size = result.box[2] * result.box[3]
        if size > sizes.get(person, 0):
            sizes[person] = size
            portraits[person] = portrait(image, result.box)


@lru_cache(maxsize=1)
def output_codec() -> str:
    """The first of :data:`OUTPUT_CODECS` that this PyAV build can open for encoding."""
    import av

    for name in OUTPUT_CODECS:
        try:
            context = av.CodecContext.create(name, "w")
            context.width, context.height, context.pix_fmt = 64, 64, "yuv420p"
            context.time_base = Fraction(1, 25)
            context.open()
            return name
        except (av.FFmpegError, ValueError):
            continue
    raise VideoError(f"this PyAV build has none of the encoders {', '.join(OUTPUT_CODECS)}")


class AnnotatedWriter:
    """Writes annotated frames to an MP4 at the clip's frame rate (sizes rounded down to even)."""

    def __init__(self, path: str | os.PathLike, fps: float):
        import av

        self.path = Path(path)
        self.fps = Fraction(fps).limit_denominator(1001) if fps > 0 else Fraction(25)
        self.container = av.open(str(self.path), "w")
        self.stream = None
        self.count = 0

    def _open_stream(self, width: int, height: int) -> None:
        codec = output_codec()
        self.stream = self.container.add_stream(codec, rate=self.fps)
        self.stream.width, self.stream.height, self.stream.pix_fmt = width, height, "yuv420p"
        if codec == "libx264":
            self.stream.options = {"preset": "veryfast", "crf": "23"}

    def write(self, frame_bgr: np.ndarray) -> None:
        """Append a frame; one of another size than the first (a clip that changes resolution) is resized."""
        import av
        import cv2

        if self.stream is None:  # yuv420p needs even sizes, and at least 2 pixels each way
            self._open_stream(max(2, frame_bgr.shape[1] // 2 * 2), max(2, frame_bgr.shape[0] // 2 * 2))
        width, height = self.stream.width, self.stream.height
        if frame_bgr.shape[:2] != (height, width):
            frame_bgr = cv2.resize(frame_bgr, (width, height), interpolation=cv2.INTER_AREA)
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame_bgr), format="bgr24")
        frame.pts = self.count
        frame.time_base = 1 / self.fps
        self.count += 1
        self.container.mux(self.stream.encode(frame))

    def close(self) -> None:
        if self.stream is not None:
            self.container.mux(self.stream.encode(None))
        self.container.close()


def _open_input(path: Path):
    import av

    try:
        container = av.open(str(path))
    except (av.FFmpegError, OSError) as exc:
        raise VideoError(f"{path.name}: not a video PyAV can read ({exc})") from None
    if not container.streams.video:
        container.close()
        raise VideoError(f"{path.name}: the file has no video stream")
    return container


def _expected_frames(stream, fps: float, max_seconds: float | None) -> int:
    """Frames the loop should read (for progress), from the header; 0 when the header does not say."""
    total = stream.frames
    if not total and stream.duration and stream.time_base:
        total = int(float(stream.duration * stream.time_base) * fps)
    if max_seconds is not None and fps > 0:
        total = min(total, int(max_seconds * fps)) if total else int(max_seconds * fps)
    return int(total)


def analyze_video(path: str | os.PathLike, recognizer: EmotionRecognizer, every: int = 5,
                  annotate_path: str | os.PathLike | None = None, progress: ProgressCallback | None = None,
                  detector: Detector | None = None, tta: bool = True, max_seconds: float | None = None,
                  emoji: bool = False, frames: range | None = None, budgets: Budgets | None = None,
                  tracker: TrackerSettings = VIDEO_TRACKER) -> VideoAnalysis:
    """Analyse every ``every``-th frame (the first included) of the clip at ``path``; the faces are
    followed from one analysed frame to the next with ``tracker``'s settings (each row's ``person``).

    With ``annotate_path`` every frame is written there with the boxes and labels of the latest
    analysed frame (so boxes may lag fast motion by up to ``every - 1`` frames). ``max_seconds``
    stops reading after that much of the clip. ``progress(frames read, frames expected)`` is called
    after each analysed frame and once at the end. The default detector is the default one at photo settings: the
    analysis is offline, so it favours finding small faces over speed.

    A stream that breaks midway, or a frame that cannot be analysed, ends the analysis there: the
    frames before it are kept and :attr:`VideoAnalysis.error` says where it stopped and why. Only a
    clip of which no frame can be decoded is a :class:`VideoError`.

    ``frames`` (a ``range(start, stop)`` of frame numbers, step 1) analyses only that part of the
    clip, with the frame numbers, times and rows the whole analysis gives those frames: batch
    analysis splits a long clip into such segments to spread it over workers. The reading seeks to
    the key frame before ``start`` (see :func:`_frames_from`); ``frames_read`` is then the number of
    the frame after the last one read. Its ``person`` numbers start afresh at the segment:
    :func:`retrack_rows` continues them from the segments before.

    ``budgets`` (:meth:`Budgets.from_env` when not given) bounds the frame size (from the stream's
    header, :class:`VideoTooLarge` before decoding; and again per decoded frame), the frames decoded
    and the wall-clock seconds; reaching one stops the analysis with :attr:`VideoAnalysis.cut_short`.
    """
    budgets = budgets or Budgets.from_env()
    if every < 1:
        raise ValueError("every must be at least 1")
    frames = frames if frames is not None else range(0, sys.maxsize)
    if frames.step != 1 or (annotate_path and frames.start):
        raise ValueError("frames must be a range with step 1, and an annotated copy needs the clip from its start")
    path = Path(path)
    container = _open_input(path)
    stream = container.streams.video[0]
    try:
        _check_header_size(path, stream, budgets)
    except VideoTooLarge:
        container.close()
        raise
    stream.thread_type = "AUTO"
    fps = float(stream.average_rate or stream.guessed_rate or 0)
    expected = min(_expected_frames(stream, fps, max_seconds), budgets.max_video_frames)
    writer = AnnotatedWriter(annotate_path, fps) if annotate_path else None
    rows: list[dict] = []
    latest: list[FaceResult] = []
    read, analyzed, decoded = frames.start, 0, 0
    error = cut_short = None
    started = time.monotonic()
    follower = FaceTracker(tracker)
    portraits: dict[int, np.ndarray] = {}
    portrait_sizes: dict[int, int] = {}
    try:
        for index, frame in _frames_from(container, stream, frames.start, path):
            time_s = float(frame.time) if frame.time is not None else index / (fps or 25)
            if index >= frames.stop or (max_seconds is not None and time_s > max_seconds):
                break
            decoded += 1
            cut_short = _over_budget(frame, decoded, budgets)
            if cut_short:
                cut_short = f"stopped at frame {index}: {cut_short}"
                break
            image = upright(frame.to_ndarray(format="bgr24"), frame.rotation)
            if index % every == 0:
                faces = faces_by_size(analyze_image(image, recognizer, detector, tta=tta))
                people = follow(follower, [face.box for face in faces], time_s)
                rows += face_rows(index, time_s, faces, people)
                keep_clearest(portraits, portrait_sizes, image, faces, people)
                latest = [FaceResult(person - 1, face.box, face.probabilities) for face, person in zip(faces, people)]
                analyzed += 1
                if progress:
                    progress(index + 1, expected)
            if writer:
                writer.write(annotate(image, latest, emoji=emoji))
            read = index + 1
            if time.monotonic() - started > budgets.max_video_seconds:
                cut_short = (f"stopped at frame {read}: {budgets.max_video_seconds:.0f} s spent, the limit "
                             f"({env_name('max_video_seconds')})")
                break
    except Exception as exc:  # noqa: BLE001 - a broken stream or a bad frame keeps the frames before it
        error = _stop_message(read, fps, exc)
    finally:
        container.close()
        error = _close_writer(writer, error)
    if read == frames.start and cut_short:  # the first frame is over a budget: nothing to keep
        raise VideoTooLarge(f"{path.name}: {cut_short}")
    if read == 0:
        raise VideoError(f"{path.name}: no frame could be decoded" + (f" ({error})" if error else ""))
    if progress:
        progress(read, max(expected, read))
    annotated = writer.path if writer is not None and writer.path.exists() else None
    return VideoAnalysis(recognizer.labels, rows, read, analyzed, fps, annotated, error, cut_short,
                         portraits)


def _check_header_size(path: Path, stream, budgets: Budgets) -> None:
    """:class:`VideoTooLarge` when the stream's header states frames over ``max_frame_pixels``."""
    width, height = stream.codec_context.width or 0, stream.codec_context.height or 0
    if width * height > budgets.max_frame_pixels:
        raise VideoTooLarge(f"{path.name}: frames of {width}×{height} pixels are too large (limit "
                            f"{budgets.max_frame_pixels / 1e6:.0f} megapixels, {env_name('max_frame_pixels')})")


def _over_budget(frame, decoded: int, budgets: Budgets) -> str | None:
    """Which budget a decoded frame is over (its size, the frames decoded so far), in words."""
    if frame.width * frame.height > budgets.max_frame_pixels:
        return (f"a frame of {frame.width}×{frame.height} pixels is over the limit of "
                f"{budgets.max_frame_pixels / 1e6:.0f} megapixels ({env_name('max_frame_pixels')})")
    if decoded > budgets.max_video_frames:
        return f"{budgets.max_video_frames} frames decoded, the limit ({env_name('max_video_frames')})"
    return None


def _close_writer(writer: AnnotatedWriter | None, error: str | None) -> str | None:
    """Close the annotated copy; a failure to finish it (a frame size its encoder refuses, a full
    disk) becomes the analysis's error instead of an exception that would lose the rows."""
    if writer is None:
        return error
    try:
        writer.close()
    except Exception as exc:  # noqa: BLE001 - the rows are kept; the copy is what failed
        LOGGER.exception("the annotated copy %s could not be finished", writer.path)
        writer.path.unlink(missing_ok=True)
        return error or f"the annotated copy could not be finished ({type(exc).__name__})"
    return error


def frame_count(path: str | os.PathLike) -> int:
    """Frames of the clip by its header: the count it states, else its duration times its frame rate
    (an estimate; 0 when it says neither). Raises :class:`VideoError` for a file that is no video."""
    import av

    container = _open_input(Path(path))
    try:
        stream = container.streams.video[0]
        fps = float(stream.average_rate or stream.guessed_rate or 0)
        frames = _expected_frames(stream, fps, None)
        if not frames and container.duration:  # Matroska/WebM state the duration of the file only
            frames = int(container.duration / av.time_base * fps)
        return frames
    finally:
        container.close()


# Packets read past frame ``start`` to find its timestamp: decoders reorder frames (B-frames) by at
# most a few places, so the ``start``-th smallest timestamp is among the first ``start + 64`` packets.
REORDER_SLACK = 64


def _start_timestamp(path: str, stream_index: int, start: int) -> int | None:
    """Presentation timestamp of frame ``start`` (in display order), read from packet headers without
    decoding; ``None`` when the packets do not carry timestamps or the clip is shorter."""
    import av

    stamps: list[int] = []
    with av.open(path) as container:
        for packet in container.demux(container.streams.video[stream_index]):
            if packet.pts is None and packet.size:
                return None
            if packet.size:
                stamps.append(packet.pts)
            if len(stamps) > start + REORDER_SLACK:
                break
    return sorted(stamps)[start] if len(stamps) > start else None


def _frames_from(container, stream, start: int, path: Path) -> Iterator[tuple[int, object]]:
    """``(frame number, frame)`` of the decoded clip from frame ``start`` on.

    For ``start > 0`` it seeks to the key frame before frame ``start``'s timestamp and counts from the
    frame that carries it; when that frame does not come out of the decoder (no timestamps, an odd
    container), it decodes from the beginning and skips ``start`` frames, which is slower but exact.
    """
    target = _start_timestamp(str(path), stream.index, start) if start else None
    if target is not None:
        container.seek(target, stream=stream, backward=True)
        decoded = (f for f in container.decode(stream) if f.pts is None or f.pts >= target)
        first = next(decoded, None)
        if first is not None and first.pts == target:
            yield start, first
            yield from enumerate(decoded, start + 1)
            return
        container.seek(0, stream=stream, backward=True)
    for index, frame in enumerate(container.decode(stream)):
        if index >= start:
            yield index, frame


def _stop_message(frame_index: int, fps: float, exc: Exception) -> str:
    """``stopped at frame N (t = S s): reason`` for an analysis cut short by ``exc``."""
    import av

    reason = f"decoding failed ({exc})" if isinstance(exc, av.FFmpegError) else failure_reason("", exc)
    when = f" (t = {frame_index / fps:.2f} s)" if fps > 0 else ""
    return f"stopped at frame {frame_index}{when}: {reason}"
