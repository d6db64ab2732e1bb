"""Live camera frames without Streamlit: detect → track → classify → smooth → draw, one frame at a time.

:class:`LiveProcessor` turns a BGR frame into an annotated one with the same detector (frame
settings), crop, recognizer and drawing as the Upload page: detection frames go through
:func:`fer_core.pipeline.analyze_image`, the frames in between re-classify the boxes of the last
detection with :func:`fer_core.pipeline.classify_boxes`.

Labels would flicker if each frame were shown on its own: the classifier's top emotion can swap
between two close ones from one frame to the next. So faces are tracked between frames (boxes
matched by overlap, each face keeps its number while it moves) and each face's probabilities are an
exponential moving average over time. The average uses a time constant in seconds rather than a
weight per frame, so the smoothing feels the same at 5 and at 25 frames per second.

Each frame's result goes into a :class:`queue.Queue` as a :class:`FrameRecord`: the camera thread
never touches the page, the page drains the queue (:class:`LiveSession`) and charts it.
"""

from __future__ import annotations

import itertools
import logging
import math
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from .crop import card_margin
from .detect import FRAME_SETTINGS, Box, FaceDetector, shared_detector, to_gray
from .draw import annotate
from .pipeline import FaceResult, analyze_image, classify_boxes
from .recognizer import EmotionRecognizer

if TYPE_CHECKING:
    import pandas

LOGGER = logging.getLogger(__name__)

# Boxes of one face in successive detections overlap at least this much (IoU). Low on purpose: with
# detection every few frames a face may move most of its width in between, while the faces of two
# people next to each other hardly ever overlap at all.
MIN_IOU = 0.1
MAX_MISSED = 3  # detections a tracked face may be missed in before it is dropped (it stays drawn meanwhile)
FPS_WINDOW = 30  # frames the fps is measured over
QUEUE_SIZE = 600  # records waiting for the page; the oldest is dropped when the page falls behind
MAX_GAP_S = 1.0  # a longer pause between two frames (a stalled stream) counts as this long in the summary
ERROR_LOG_INTERVAL_S = 10.0  # the same frame error's traceback is logged at most this often
NO_FACE = "no face"


@dataclass(frozen=True)
class LiveSettings:
    """What the page's controls set; replaced as a whole (one attribute write) while frames flow.

    ``smoothing_s``: time constant of the probability average in seconds (0: no smoothing; after
    ``smoothing_s`` a change of expression is 63% shown). ``detect_every``: run the detector on every
    Nth frame and re-classify the last boxes in between (the detector is the slowest step).
    """

    smoothing_s: float = 0.5
    detect_every: int = 2
    tta: bool = False
    emoji: bool = False
    bars: bool = False


def iou(a: Box, b: Box) -> float:
    """Intersection over union of two ``(x, y, w, h)`` boxes (0 when they do not overlap)."""
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    width = min(ax + aw, bx + bw) - max(ax, bx)
    height = min(ay + ah, by + bh) - max(ay, by)
    if width <= 0 or height <= 0:
        return 0.0
    inter = width * height
    return inter / (aw * ah + bw * bh - inter)


def match_boxes(tracked: Sequence[Box], detected: Sequence[Box], min_iou: float = MIN_IOU) -> list[tuple[int, int]]:
    """``(tracked index, detected index)`` pairs, best overlaps first, each box used at most once."""
    candidates = sorted(((iou(t, d), ti, di) for ti, t in enumerate(tracked) for di, d in enumerate(detected)),
                        reverse=True)
    used_tracked: set[int] = set()
    used_detected: set[int] = set()
    pairs = []
    for overlap, ti, di in candidates:
        if overlap < min_iou:
            break
        if ti not in used_tracked and di not in used_detected:
            pairs.append((ti, di))
            used_tracked.add(ti)
            used_detected.add(di)
    return pairs


def ema_weight(elapsed_s: float, time_constant_s: float) -> float:
    """Weight of a new value in a time-based exponential moving average: ``1 − exp(−Δt / τ)``."""
    if time_constant_s <= 0:
        return 1.0
    return 1.0 - math.exp(-max(0.0, elapsed_s) / time_constant_s)


@dataclass
class Track:
    """One face followed across frames: its number, latest box and smoothed probabilities."""

    id: int
    box: Box
    probabilities: np.ndarray | None = None
    updated_at: float = 0.0
    missed: int = 0

    def smooth(self, probabilities: np.ndarray, now: float, time_constant_s: float) -> None:
        """Blend a new classification into the average (the first one is taken as it is)."""
        if self.probabilities is None:
            self.probabilities = np.asarray(probabilities, np.float64)
        else:
            weight = ema_weight(now - self.updated_at, time_constant_s)
            self.probabilities = (1 - weight) * self.probabilities + weight * np.asarray(probabilities)
        self.updated_at = now


class FaceTracker:
    """Gives each detected face a number that it keeps while it moves (boxes matched by IoU)."""

    def __init__(self, min_iou: float = MIN_IOU, max_missed: int = MAX_MISSED):
        self.min_iou = min_iou
        self.max_missed = max_missed
        self.tracks: list[Track] = []
        self._next_id = 1

    def update(self, boxes: Sequence[Box]) -> list[Track]:
        """Match one detection's boxes to the tracks; the track of each box, in the order of ``boxes``.

        Boxes that match no track start a new one; tracks missed more than ``max_missed`` detections
        in a row are dropped.
        """
        found: list[Track | None] = [None] * len(boxes)
        for ti, bi in match_boxes([t.box for t in self.tracks], boxes, self.min_iou):
            track = self.tracks[ti]
            track.box, track.missed = tuple(boxes[bi]), 0
            found[bi] = track
        matched = {id(t) for t in found if t is not None}
        for track in self.tracks:
            if id(track) not in matched:
                track.missed += 1
        self.tracks = [t for t in self.tracks if t.missed <= self.max_missed]
        for bi, box in enumerate(boxes):
            if found[bi] is None:
                found[bi] = Track(self._next_id, tuple(box))
                self._next_id += 1
                self.tracks.append(found[bi])
        return found

    def seen(self) -> list[Track]:
        """Tracks found by the latest detection (their boxes are reused until the next one)."""
        return [t for t in self.tracks if t.missed == 0]


def track_result(track: Track, labels: Sequence[str]) -> FaceResult:
    """A track as a :class:`FaceResult` numbered by the track (drawn as face ``track.id``)."""
    return FaceResult(track.id - 1, track.box, dict(zip(labels, map(float, track.probabilities))))


def main_face(faces: Iterable[FaceResult]) -> FaceResult | None:
    """The largest face (the person in front of the camera), ``None`` when there is none."""
    return max(faces, key=lambda f: f.box[2] * f.box[3], default=None)


@dataclass(frozen=True)
class FrameRecord:
    """What happened to one frame: its faces (smoothed probabilities, numbered by track) or an error."""

    frame: int  # frames since the session started
    time_s: float  # seconds since the session started
    fps: float  # frames per second over the last FPS_WINDOW frames
    latency_ms: float  # processing time of this frame
    faces: tuple[FaceResult, ...] = ()
    error: str | None = None


class LiveProcessor:
    """Annotates camera frames; holds the tracker, the counters and the queue of :class:`FrameRecord`.

    :meth:`process` runs on the camera's worker thread; the page changes :attr:`settings`, calls
    :meth:`reset` and reads the counters from its own thread. A lock keeps a reset from landing in
    the middle of a frame.
    """

    def __init__(self, recognizer: EmotionRecognizer, detector: FaceDetector | None = None,
                 settings: LiveSettings = LiveSettings(), clock: Callable[[], float] = time.monotonic,
                 queue_size: int = QUEUE_SIZE):
        self.recognizer = recognizer
        self.detector = detector or shared_detector(FRAME_SETTINGS)
        self.settings = settings
        self.clock = clock
        self.records: queue.Queue[FrameRecord] = queue.Queue(maxsize=queue_size)
        self._lock = threading.Lock()
        self._reset_state()

    def _reset_state(self) -> None:
        self.tracker = FaceTracker()
        self.frames = 0
        self.errors = 0
        self.last_error: str | None = None
        self._logged_error: str | None = None  # the last error whose traceback was logged, and when
        self._logged_at = -math.inf
        self._unlogged_errors = 0
        self.fps = 0.0  # frames processed per second over the last FPS_WINDOW frames
        self._started_at: float | None = None
        self._stamps: deque[float] = deque(maxlen=FPS_WINDOW)

    def reset(self) -> None:
        """Start a new session: new face numbers, counters at zero, queue emptied."""
        with self._lock:
            self._reset_state()
            while not self.records.empty():
                self.records.get_nowait()

    def _count_frame(self, now: float) -> None:
        """Note a frame's arrival: session start, and the fps over the last :data:`FPS_WINDOW` frames."""
        if self._started_at is None:
            self._started_at = now
        self._stamps.append(now)
        span = self._stamps[-1] - self._stamps[0]
        self.fps = (len(self._stamps) - 1) / span if span > 0 else 0.0

    def process(self, frame_bgr: np.ndarray, now: float | None = None) -> np.ndarray:
        """The frame with each tracked face's box, number, smoothed label and the chosen overlays.

        Never raises: on any error the frame is returned unprocessed, the error is logged and
        counted and goes into the queue, so one bad frame cannot end the stream.
        """
        with self._lock:
            now = self.clock() if now is None else now
            self._count_frame(now)
            started = time.perf_counter()
            settings = self.settings
            try:
                faces = self._faces(frame_bgr, now, settings)
                annotated = annotate(frame_bgr, faces, emoji=settings.emoji, bars=settings.bars)
            except Exception as exc:  # noqa: BLE001 - any failure of one frame must leave the stream running
                self._record_error(exc, now, started)
                return frame_bgr
            self._publish(FrameRecord(self.frames, now - self._started_at, self.fps,
                                      (time.perf_counter() - started) * 1000, tuple(faces)))
            self.frames += 1
            return annotated

    def _faces(self, frame_bgr: np.ndarray, now: float, settings: LiveSettings) -> list[FaceResult]:
        if self.frames % max(1, settings.detect_every) == 0:
            results = analyze_image(frame_bgr, self.recognizer, self.detector, tta=settings.tta)
            tracks = self.tracker.update([r.box for r in results])
        else:
            tracks = self.tracker.seen()
            results = classify_boxes(to_gray(frame_bgr), [t.box for t in tracks], self.recognizer,
                                     tta=settings.tta, margin=card_margin(self.recognizer.card))
        for track, result in zip(tracks, results):
            track.smooth(np.fromiter(result.probabilities.values(), np.float64), now, settings.smoothing_s)
        return [track_result(t, self.recognizer.labels) for t in sorted(self.tracker.tracks, key=lambda t: t.id)]

    def _record_error(self, exc: Exception, now: float, started: float) -> None:
        message = f"{type(exc).__name__}: {exc}"
        self.errors += 1
        self._unlogged_errors += 1
        self.last_error = message
        self._log_error(exc, message, now)
        self._publish(FrameRecord(self.frames, now - self._started_at, self.fps,
                                  (time.perf_counter() - started) * 1000, error=message))
        self.frames += 1

    def _log_error(self, exc: Exception, message: str, now: float) -> None:
        """Log the traceback of a new error at once, and of a repeated one at most every
        :data:`ERROR_LOG_INTERVAL_S` (a camera at 25 fps failing on every frame would otherwise
        bury the log), with the count of errors since the last traceback."""
        if message == self._logged_error and now - self._logged_at < ERROR_LOG_INTERVAL_S:
            return
        LOGGER.error("live camera: frame %d shown unprocessed (%d frame error(s) since the last report, "
                     "%d this session): %s", self.frames, self._unlogged_errors, self.errors, message, exc_info=exc)
        self._logged_error, self._logged_at, self._unlogged_errors = message, now, 0

    def _publish(self, record: FrameRecord) -> None:
        """Queue a record; when the page has fallen behind, the oldest waiting record makes room."""
        try:
            self.records.put_nowait(record)
        except queue.Full:
            try:
                self.records.get_nowait()
            except queue.Empty:
                pass
            self.records.put_nowait(record)


class LiveSession:
    """The records of one camera session as the page collects them: charts, summary and CSV."""

    def __init__(self, labels: Sequence[str], max_records: int = 50_000):
        self.labels = tuple(labels)
        self.records: deque[FrameRecord] = deque(maxlen=max_records)

    def drain(self, source: queue.Queue) -> int:
        """Move every record waiting in ``source`` into the session; how many were moved."""
        moved = 0
        while True:
            try:
                self.records.append(source.get_nowait())
            except queue.Empty:
                return moved
            moved += 1

    @property
    def latest(self) -> FrameRecord | None:
        return self.records[-1] if self.records else None

    def recent_latency_ms(self, frames: int = FPS_WINDOW) -> float | None:
        """Median processing time of the last ``frames`` frames (``None`` before the first)."""
        recent = [r.latency_ms for r in itertools.islice(reversed(self.records), frames)]
        return float(np.median(recent)) if recent else None

    def main_face_probabilities(self, last_s: float | None = None) -> "pandas.DataFrame":
        """Long table ``time_s, emotion, probability`` of the main face per frame (the last ``last_s`` seconds)."""
        import pandas as pd

        records = list(self.records)
        if last_s is not None and records:
            records = [r for r in records if r.time_s >= records[-1].time_s - last_s]
        rows = [(r.time_s, label, face.probabilities[label])
                for r in records if (face := main_face(r.faces)) is not None for label in self.labels]
        return pd.DataFrame(rows, columns=["time_s", "emotion", "probability"])

    def durations(self) -> np.ndarray:
        """Seconds each frame stood for: up to the next frame (at most :data:`MAX_GAP_S`); the
        last frame gets the median interval."""
        times = np.array([r.time_s for r in self.records], np.float64)
        if len(times) < 2:
            return np.zeros(len(times))
        gaps = np.minimum(np.diff(times), MAX_GAP_S)
        return np.append(gaps, np.median(gaps))

    def emotion_shares(self) -> "pandas.DataFrame":
        """Share of the session's time per top emotion of the main face, and without a face
        (``emotion, seconds, share``, every label listed, largest first)."""
        import pandas as pd

        seconds = dict.fromkeys((*self.labels, NO_FACE), 0.0)
        for record, duration in zip(self.records, self.durations()):
            face = main_face(record.faces)
            seconds[face.label if face is not None else NO_FACE] += float(duration)
        total = sum(seconds.values())
        table = pd.DataFrame({"emotion": list(seconds), "seconds": list(seconds.values())})
        table["share"] = table["seconds"] / total if total > 0 else 0.0
        return table.sort_values("seconds", ascending=False, kind="stable", ignore_index=True)

    def rows(self) -> list[dict]:
        """One row per face per frame (a frame without a face, or with an error, gets one row without a face)."""
        rows = []
        for r in self.records:
            base = {"frame": r.frame, "time_s": round(r.time_s, 3), "fps": round(r.fps, 2),
                    "latency_ms": round(r.latency_ms, 2), "error": r.error or ""}
            if not r.faces:
                rows.append(base)
            for face in r.faces:
                x, y, w, h = face.box
                rows.append({**base, "face": face.index + 1, "x": x, "y": y, "w": w, "h": h, "label": face.label,
                             "confidence": round(face.confidence, 6),
                             **{label: round(p, 6) for label, p in face.probabilities.items()}})
        return rows

    def to_csv(self) -> bytes:
        """The per-frame results as CSV (columns ``frame, time_s, fps, latency_ms, error, face, x, y,
        w, h, label, confidence`` and one per emotion; probabilities as drawn, i.e. smoothed)."""
        import pandas as pd

        columns = ["frame", "time_s", "fps", "latency_ms", "error", "face", "x", "y", "w", "h", "label",
                   "confidence", *self.labels]
        table = pd.DataFrame(self.rows(), columns=columns).astype({c: "Int64" for c in ("face", "x", "y", "w", "h")})
        return table.to_csv(index=False).encode()
