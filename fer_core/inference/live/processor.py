"""Live camera frames without Streamlit: detect → track → classify → smooth → draw, one frame at a time.

:class:`LiveProcessor` turns a BGR frame into an annotated one with the same detector (frame
settings), crop, recognizer and drawing as the Upload page: detection frames go through
:func:`fer_core.inference.pipeline.analyze_image`, the frames in between re-classify the boxes of the last
detection with :func:`fer_core.inference.pipeline.classify_boxes`.

Labels would flicker if each frame were shown on its own: the classifier's top emotion can swap
between two close ones from one frame to the next. So faces are tracked between frames (boxes
matched by overlap, each face keeps its number while it moves) and each face's probabilities are an
exponential moving average over time. The average uses a time constant in seconds rather than a
weight per frame, so the smoothing feels the same at 5 and at 25 frames per second.

Each frame's result goes into a :class:`queue.Queue` as a :class:`FrameRecord`: the camera thread
never touches the page, the page drains the queue (:class:`LiveSession`) and charts it.
"""

from __future__ import annotations

import logging
import math
import queue
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from fer_core.inference.detect import Detector, to_gray
from fer_core.inference.draw import annotate
from fer_core.inference.pipeline import FaceResult, analyze_image, classify_boxes, crop_margin, settings_detector
from fer_core.inference.recognizer import EmotionRecognizer
from fer_core.inference.tracking import FaceTracker, track_result
from fer_core.model_card import fast_model_path
from fer_core.settings import AnalysisSettings, default_detector

LOGGER = logging.getLogger(__name__)

FPS_WINDOW = 30  # frames the fps is measured over
QUEUE_SIZE = 600  # records waiting for the page; the oldest is dropped when the page falls behind
ERROR_LOG_INTERVAL_S = 10.0  # the same frame error's traceback is logged at most this often


def live_analysis() -> AnalysisSettings:
    """What the live camera starts with: the fast model, the live detector and no test-time
    augmentation (a frame has milliseconds)."""
    return AnalysisSettings(model=str(fast_model_path()), detector=default_detector("live"), tta=False)


@dataclass(frozen=True)
class LiveSettings:
    """What the page's controls set; replaced as a whole (one attribute write) while frames flow.

    ``analysis``: the detector (at its frame settings) and the test-time augmentation used on each
    frame; its model and label view name the recognizer the processor was given.
    ``smoothing_s``: time constant of the probability average in seconds (0: no smoothing; after
    ``smoothing_s`` a change of expression is 63% shown). ``detect_every``: run the detector on every
    Nth frame and re-classify the last boxes in between (the detector is the slowest step).
    """

    analysis: AnalysisSettings = field(default_factory=live_analysis)
    smoothing_s: float = 0.5
    detect_every: int = 2
    emoji: bool = False
    bars: bool = False

    @property
    def tta(self) -> bool:
        """Whether each frame's faces are classified with test-time augmentation (the analysis's)."""
        return self.analysis.tta


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

    def __init__(self, recognizer: EmotionRecognizer, detector: Detector | None = None,
                 settings: LiveSettings | None = None, clock: Callable[[], float] = time.monotonic,
                 queue_size: int = QUEUE_SIZE):
        self.recognizer = recognizer
        self.detector = detector  # None: the one LiveSettings.analysis names, at frame settings
        self.settings = settings or LiveSettings()
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
        detector = self.detector or settings_detector(settings.analysis, "frame")
        tta = settings.tta
        if self.frames % max(1, settings.detect_every) == 0:
            results = analyze_image(frame_bgr, self.recognizer, detector, tta=tta)
            tracks = self.tracker.update([r.box for r in results])
        else:
            tracks = self.tracker.seen()
            results = classify_boxes(to_gray(frame_bgr), [t.box for t in tracks], self.recognizer,
                                     tta=tta, margin=crop_margin(self.recognizer, detector))
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
