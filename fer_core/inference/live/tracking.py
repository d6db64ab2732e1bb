"""Faces followed from frame to frame: boxes matched by overlap (each face keeps its number while it
moves) and each face's probabilities an exponential moving average over time. The average uses a
time constant in seconds rather than a weight per frame, so the smoothing feels the same at 5 and at
25 frames per second."""

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
