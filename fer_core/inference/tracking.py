"""Faces followed from frame to frame, by position: each detected face keeps its number (a track)
while it moves, for the live camera and for every video analysis.

A detection continues the track whose box it overlaps most (IoU); the video settings also move each
track along its recent velocity before matching, and let a detection that overlaps no track continue
one whose centre is close enough (a face the detector lost for a few frames while it moved on).
Tracks are matched on boxes alone, never on how a face looks: two people who swap places while
both are hidden, or a person who comes back after the track was dropped, get other numbers.

The tracker's clock is whatever the caller updates it with: the live camera counts detections, a
video passes each analysed frame's time in seconds (so a setting means the same whatever share of
the frames is analysed). A track is dropped once it has gone unseen for longer than
``max_missed`` clock units; that is decided from the clock alone, so skipping an update without
boxes changes nothing, and a video's tracks can be replayed from its rows (``batch`` does).

Each face's probabilities are an exponential moving average over time (the live camera's labels).
The average uses a time constant in seconds rather than a weight per frame, so the smoothing feels
the same at 5 and at 25 frames per second."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from fer_core.inference.detect import Box
from fer_core.inference.pipeline import FaceResult

# Boxes of one face in successive detections overlap at least this much (IoU). Low on purpose: with
# detection every few frames a face may move most of its width in between, while the faces of two
# people next to each other hardly ever overlap at all.
MIN_IOU = 0.1
MAX_MISSED = 3  # detections a tracked face may be missed in before it is dropped (it stays drawn meanwhile)
VELOCITY_WEIGHT = 0.5  # weight of the latest displacement in a track's velocity (a moving average)
MAX_JUMP_SCALE = 2.0  # a jump continues a track only from a box at most this many times larger or smaller


@dataclass(frozen=True)
class TrackerSettings:
    """How detections continue tracks.

    ``min_iou``: least overlap of a detection with a track's (predicted) box. ``max_gap``: the most the
    clock may advance between two sightings of a face for it to keep its track, in the caller's clock
    units (detections for the live camera, seconds for a video); a track unseen that long is
    dropped. ``predict``: move each track's box along its velocity before matching, for at most
    ``predict_for`` clock units after its last sighting (a face that left the frame is looked for
    near where it left, not far beyond the edge it walked through). ``max_jump``: a
    detection that overlaps no track may continue the nearest one whose box centre is within this
    many face widths (0: overlap only).
    """

    min_iou: float = MIN_IOU
    max_gap: float = MAX_MISSED + 1
    predict: bool = False
    predict_for: float = math.inf
    max_jump: float = 0.0


# The live camera: detections a few frames apart, so overlap alone follows a face.
LIVE_TRACKER = TrackerSettings()  # a face missed in 3 detections in a row is dropped at the 4th
# Videos, clocked in seconds: chosen on benchmarks/track_study.py (docs/video.md has its table).
VIDEO_TRACKER = TrackerSettings(min_iou=0.1, max_gap=8.0, predict=True, predict_for=1.0, max_jump=2.5)


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


def centre(box: Box) -> tuple[float, float]:
    x, y, w, h = box
    return x + w / 2, y + h / 2


def jump(a: Box, b: Box) -> float:
    """Distance between two boxes' centres in widths of the larger box; ``inf`` when one box is more
    than :data:`MAX_JUMP_SCALE` times the other's width (not the same face at another place)."""
    wider, narrower = max(a[2], b[2]), min(a[2], b[2])
    if wider > MAX_JUMP_SCALE * narrower:
        return math.inf
    (ax, ay), (bx, by) = centre(a), centre(b)
    return math.hypot(ax - bx, ay - by) / wider


def match_boxes(tracked: Sequence[Box], detected: Sequence[Box], min_iou: float = MIN_IOU,
                max_jump: float = 0.0) -> list[tuple[int, int]]:
    """``(tracked index, detected index)`` pairs, each box used at most once: best overlaps first,
    then (with ``max_jump``) the shortest jumps among the boxes left."""
    overlaps = [((0, -overlap), ti, di) for ti, t in enumerate(tracked) for di, d in enumerate(detected)
                if (overlap := iou(t, d)) >= min_iou]
    jumps = [((1, distance), ti, di) for ti, t in enumerate(tracked) for di, d in enumerate(detected)
             if max_jump > 0 and (distance := jump(t, d)) <= max_jump]
    used_tracked: set[int] = set()
    used_detected: set[int] = set()
    pairs = []
    for _, ti, di in sorted(overlaps + jumps):
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
    """One face followed across frames: its number, latest box, where it was last seen and how fast
    it moved, and its smoothed probabilities."""

    id: int
    box: Box
    probabilities: np.ndarray | None = None
    updated_at: float = 0.0  # seconds, of the probabilities' average
    seen_at: float = 0.0  # tracker clock of the latest detection of this face
    missed: float = 0.0  # tracker clock since then, as of the latest update (0: seen in it)
    velocity: tuple[float, float] | None = None  # box centre's movement per clock unit (None: not yet known)

    def predicted(self, at: float, limit: float = math.inf) -> Box:
        """Where the box should be at clock ``at``: moved along the velocity since it was last seen,
        for at most ``limit`` clock units."""
        if self.velocity is None:
            return self.box
        x, y, w, h = self.box
        elapsed = min(at - self.seen_at, limit)
        return (round(x + self.velocity[0] * elapsed), round(y + self.velocity[1] * elapsed), w, h)

    def see(self, box: Box, at: float) -> None:
        """The face was detected at ``box`` at clock ``at``: update the box and the velocity."""
        elapsed = at - self.seen_at
        if elapsed > 0:
            (old_x, old_y), (new_x, new_y) = centre(self.box), centre(box)
            step = ((new_x - old_x) / elapsed, (new_y - old_y) / elapsed)
            self.velocity = step if self.velocity is None else tuple(
                VELOCITY_WEIGHT * s + (1 - VELOCITY_WEIGHT) * v for s, v in zip(step, self.velocity))
        self.box, self.seen_at, self.missed = tuple(box), at, 0.0

    def smooth(self, probabilities: np.ndarray, now: float, time_constant_s: float) -> None:
        """Blend a new classification into the average (the first one is taken as it is)."""
        if self.probabilities is None:
            self.probabilities = np.asarray(probabilities, np.float64)
        else:
            weight = ema_weight(now - self.updated_at, time_constant_s)
            self.probabilities = (1 - weight) * self.probabilities + weight * np.asarray(probabilities)
        self.updated_at = now


class FaceTracker:
    """Gives each detected face a number that it keeps while it moves (see the module's docstring)."""

    def __init__(self, settings: TrackerSettings = LIVE_TRACKER):
        self.settings = settings
        self.tracks: list[Track] = []
        self._next_id = 1
        self._updates = 0

    def update(self, boxes: Sequence[Box], at: float | None = None) -> list[Track]:
        """Match one detection's boxes to the tracks; the track of each box, in the order of ``boxes``.

        ``at`` is the clock (a video's time in seconds); without it the clock counts the updates.
        A track may be continued up to ``max_gap`` clock units after it was last seen and is dropped
        once unseen that long; whether it is depends on the clock alone, so leaving out an update
        without boxes changes no number. Boxes that continue no track start a new one, numbered in
        the order of ``boxes``.
        """
        self._updates += 1
        at = float(self._updates if at is None else at)
        settings = self.settings
        for track in self.tracks:
            track.missed = at - track.seen_at
        live = [t for t in self.tracks if t.missed <= settings.max_gap]
        predicted = [t.predicted(at, settings.predict_for) if settings.predict else t.box for t in live]
        found: list[Track | None] = [None] * len(boxes)
        for ti, bi in match_boxes(predicted, boxes, settings.min_iou, settings.max_jump):
            live[ti].see(boxes[bi], at)
            found[bi] = live[ti]
        self.tracks = [t for t in live if t.missed < settings.max_gap]
        for bi, box in enumerate(boxes):
            if found[bi] is None:
                found[bi] = Track(self._next_id, tuple(box), seen_at=at)
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
