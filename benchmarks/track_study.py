"""How well does the video tracker follow each person? Synthetic clips with known paths, the default
detector, and the tracker's settings compared on identity switches, fragments and frames followed.

Each clip is made here from real FER2013 faces (validation, or the bundled ``data/sample``) enlarged
to ``--side`` pixels and pasted on a blurred-noise background along known paths,
one frame per analysed video frame (``--step`` seconds apart: 0.2 is a 25-fps clip analysed every
5th frame). Faces pasted later cover earlier ones where they overlap. Scenes:

* ``crossing``: two people walk across the frame in opposite directions and pass each other, the
  one in front hiding the other;
* ``leave-return``: one person stays (swaying a little) while the other walks out of the frame,
  stays out for ``--away`` seconds and comes back the same way;
* ``three``: three people on crossing diagonal and sideways paths, bouncing off the frame's edges.

Only faces the detector finds when pasted alone are used, so misses come from the motion, the
overlaps and the edges. The detector runs once per frame; every tracker setting is then replayed on
the same boxes. A detection belongs to a person when it overlaps the person's pasted box (IoU ≥
0.3), and per person the study counts:

* switches: times the track id on the person changes between two frames where it was found;
* fragments: distinct track ids on the person (1 is ideal);
* followed: share of the frames where the person is in view (at least half of the face visible and
  not covered) in which the detection on them carries their main id (the id on them most often);
* detected: share of those frames with any detection on them (the ceiling of *followed*);
* shared ids (in the totals): ids that were on more than one person, i.e. one person's emotions
  reported under another's number.

``live`` is the live camera's setting (its clock counts the analysed frames); the others are video
settings clocked in seconds (``gap``: seconds a person may go unseen, ``jump``: face widths a face
may move between two sightings without overlapping, ``predict``: velocity prediction).

Usage: ``python benchmarks/track_study.py [--data ../shared/data/fer2013] [--clips 4] [--step 0.2 0.4]``
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from fer_core.inference.detect import Box, Detector, detector_for
from fer_core.inference.tracking import LIVE_TRACKER, VIDEO_TRACKER, FaceTracker, TrackerSettings, iou
from fer_core.machine import machine_info
from fer_core.model_card import PROJECT_ROOT
from fer_core.settings import default_detector

CANVAS = (480, 640)  # height, width
DURATION_S = 12.0
MATCH_IOU = 0.3
IN_VIEW = 0.5  # share of a face that must be visible (inside the frame, not covered) for it to count
SCENES = ("crossing", "leave-return", "three")
DEFAULT_DATA = PROJECT_ROOT.parent / "shared" / "data" / "fer2013"
SAMPLE_DATA = PROJECT_ROOT / "data" / "sample"

PREDICTIONS = {"": (False, math.inf), ", predict 1 s": (True, 1.0), ", predict": (True, math.inf)}


def candidate_name(settings: TrackerSettings) -> str:
    """``gap 2 s, jump 1, predict 1 s``: how the table names a video setting."""
    predict = next(name for name, value in PREDICTIONS.items() if value == (settings.predict, settings.predict_for))
    return f"gap {settings.max_gap:g} s, jump {settings.max_jump:g}{predict}"


# (name, settings, clocked in seconds); the live camera's setting counts analysed frames.
CANDIDATES: list[tuple[str, TrackerSettings, bool]] = [
    ("live (IoU 0.1, 3 missed)", LIVE_TRACKER, False),
    *[(candidate_name(settings), settings, True) for settings in (
        TrackerSettings(min_iou=0.1, max_gap=gap, predict=predict, predict_for=predict_for, max_jump=jump)
        for predict, predict_for in PREDICTIONS.values() for gap in (1.0, 2.0, 4.0, 8.0) for jump in (0.0, 1.0, 2.5))],
]


# --------------------------------------------------------------------------- clips


@dataclass
class Clip:
    """Frames of one synthetic clip and where each person's face is in each (``None``: out of view)."""

    scene: str
    times: list[float]
    frames: list[np.ndarray]
    truth: list[list[Box | None]]  # frame → person → box in view, or None


def face_files(data: Path) -> list[Path]:
    """Validation faces of every class, sorted by name (``<data>/validation/<class>/*.jpg``)."""
    files = sorted((data / "validation").glob("*/*.jpg"), key=lambda p: p.name)
    if not files:
        raise SystemExit(f"no faces under {data / 'validation'}")
    return files


def background(rng: np.random.Generator) -> np.ndarray:
    """A textured gray BGR canvas without a face (blurred noise, smooth enough to hold no face)."""
    import cv2

    noise = rng.integers(40, 220, (CANVAS[0] // 8, CANVAS[1] // 8), dtype=np.uint8)
    gray = cv2.GaussianBlur(cv2.resize(noise, CANVAS[::-1], interpolation=cv2.INTER_CUBIC), (0, 0), 6)
    return cv2.cvtColor(gray, cv2.COLOR_GRAY2BGR)


def detectable_faces(files: list[Path], side: int, detector: Detector, count: int,
                     rng: np.random.Generator) -> list[np.ndarray]:
    """``count`` faces (gray, ``side`` px) that ``detector`` finds when pasted alone on a background."""
    import cv2

    chosen = []
    for index in rng.permutation(len(files)):
        face = cv2.resize(cv2.imread(str(files[index]), cv2.IMREAD_GRAYSCALE), (side, side),
                          interpolation=cv2.INTER_CUBIC)
        frame = background(rng)
        box = (CANVAS[1] // 2 - side // 2, CANVAS[0] // 2 - side // 2, side, side)
        paste(frame, face, box)
        if any(iou(found, box) >= MATCH_IOU for found in detector.detect(frame)):
            chosen.append(face)
            if len(chosen) == count:
                return chosen
    raise SystemExit(f"the detector found only {len(chosen)} of the faces pasted alone; need {count}")


def paste(frame: np.ndarray, face: np.ndarray, box: Box) -> None:
    """Paste a gray face into a BGR frame at ``box`` (the part inside the frame)."""
    x, y, side, _ = box
    height, width = frame.shape[:2]
    x0, y0, x1, y1 = max(0, x), max(0, y), min(width, x + side), min(height, y + side)
    if x0 < x1 and y0 < y1:
        frame[y0:y1, x0:x1] = face[y0 - y:y1 - y, x0 - x:x1 - x, None]


def visible_share(box: Box, covering: list[Box]) -> float:
    """Share of ``box`` inside the canvas and under none of the ``covering`` boxes."""
    x, y, side, _ = box
    mask = np.zeros(CANVAS, bool)
    mask[max(0, y):max(0, y + side), max(0, x):max(0, x + side)] = True
    for cx, cy, cs, _ in covering:
        mask[max(0, cy):max(0, cy + cs), max(0, cx):max(0, cx + cs)] = False
    return float(mask.sum()) / side**2


def paths(scene: str, times: np.ndarray, side: int, rng: np.random.Generator, away_s: float) -> list[np.ndarray]:
    """Per person, the top-left corner of the face at each time (``len(times) × 2``, may leave the frame)."""
    height, width = CANVAS
    span = width - side
    if scene == "crossing":
        y = rng.uniform(0.25, 0.4) * height
        dy = rng.uniform(0, 0.15) * side  # walking at nearly the same height
        start, end = rng.uniform(0.05, 0.15) * span, rng.uniform(0.85, 0.95) * span
        share = np.clip((times - 1.0) / (DURATION_S - 2.0), 0, 1)
        left_to_right = np.stack([start + (end - start) * share, np.full_like(times, y)], 1)
        right_to_left = np.stack([end - (end - start) * share, np.full_like(times, y + dy)], 1)
        return [left_to_right, right_to_left]
    if scene == "leave-return":
        stay = np.stack([0.15 * span + 20 * np.sin(times * 1.3), 0.3 * height + 10 * np.sin(times * 0.7)], 1)
        walk_s = 3.0  # from the middle to outside the right edge, then back
        out_x = width + 10
        middle = 0.6 * span
        leave_at, back_at = 1.5, 1.5 + walk_s + away_s
        x = np.where(times < leave_at, middle,
                     np.where(times < leave_at + walk_s, middle + (out_x - middle) * (times - leave_at) / walk_s,
                              np.where(times < back_at, out_x,
                                       np.maximum(middle, out_x - (out_x - middle) * (times - back_at) / walk_s))))
        walker = np.stack([x, np.full_like(times, 0.35 * height)], 1)
        return [stay, walker]
    if scene == "three":
        starts = [(0.0, 0.05), (0.9, 0.2), (0.45, 0.5)]
        velocities = [(1.0, 0.35), (-0.8, 0.45), (0.6, -0.5)]
        result = []
        for (sx, sy), (vx, vy) in zip(starts, velocities):
            speed = rng.uniform(60, 110)  # pixels per second
            x = bounce(sx * span + vx * speed * times, span)
            y = bounce(sy * (height - side) + vy * speed * times, height - side)
            result.append(np.stack([x, y], 1))
        return result
    raise ValueError(f"unknown scene {scene!r}")


def bounce(position: np.ndarray, limit: float) -> np.ndarray:
    """A position moving freely, reflected to stay within ``0..limit``."""
    folded = np.mod(position, 2 * limit)
    return np.where(folded > limit, 2 * limit - folded, folded)


def make_clip(scene: str, faces: list[np.ndarray], step_s: float, rng: np.random.Generator,
              away_s: float = 2.0) -> Clip:
    """One clip of ``scene`` (frames ``step_s`` apart) with the given faces, person ``i`` = ``faces[i]``."""
    side = faces[0].shape[0]
    times = np.round(np.arange(0, DURATION_S, step_s), 3)
    corners = paths(scene, times, side, rng, away_s)
    canvas = background(rng)
    frames, truth = [], []
    for t in range(len(times)):
        boxes = [(round(c[t, 0]), round(c[t, 1]), side, side) for c in corners]
        frame = canvas.copy()
        for face, box in zip(faces, boxes):
            paste(frame, face, box)
        frames.append(frame)
        truth.append([box if visible_share(box, boxes[i + 1:]) >= IN_VIEW else None for i, box in enumerate(boxes)])
    return Clip(scene, [float(t) for t in times], frames, truth)


# --------------------------------------------------------------------------- measuring


@dataclass
class Score:
    """Per-person counts of a tracker on clips, summed over persons and clips."""

    persons: int = 0
    switches: int = 0
    fragments: int = 0
    in_view: int = 0
    followed: int = 0
    detected: int = 0
    shared_ids: int = 0
    per_person: list[tuple[int, int, float]] = field(default_factory=list)  # (switches, fragments, followed)

    def add(self, other: Score) -> None:
        for name in ("persons", "switches", "fragments", "in_view", "followed", "detected", "shared_ids"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.per_person += other.per_person


def track_ids(boxes: list[list[Box]], times: list[float], settings: TrackerSettings, seconds: bool) -> list[list[int]]:
    """The track id of each box of each frame, with the tracker clocked in seconds or in frames."""
    tracker = FaceTracker(settings)
    return [[t.id for t in tracker.update(frame_boxes, at=at if seconds else None)]
            for frame_boxes, at in zip(boxes, times)]


def person_ids(truth: list[list[Box | None]], boxes: list[list[Box]], ids: list[list[int]]) -> list[list[int | None]]:
    """Per frame and person in view, the id of the detection on them (best IoU ≥ 0.3), else ``None``."""
    found = []
    for frame_truth, frame_boxes, frame_ids in zip(truth, boxes, ids):
        row = []
        for box in frame_truth:
            overlaps = [(iou(box, d), i) for d, i in zip(frame_boxes, frame_ids)] if box is not None else []
            best = max(overlaps, default=(0.0, None))
            row.append(best[1] if best[0] >= MATCH_IOU else None)
        found.append(row)
    return found


def score(truth: list[list[Box | None]], found: list[list[int | None]]) -> Score:
    """Switches, fragments and frames followed per person (see the module's docstring)."""
    result = Score()
    owners: dict[int, set[int]] = {}
    for person in range(len(truth[0])):
        seen = [frame[person] for frame, visible in zip(found, truth) if visible[person] is not None]
        ids = [i for i in seen if i is not None]
        switches = sum(a != b for a, b in zip(ids, ids[1:]))
        main = Counter(ids).most_common(1)[0][0] if ids else None
        followed = sum(i == main for i in ids) if ids else 0
        result.persons += 1
        result.switches += switches
        result.fragments += len(set(ids))
        result.in_view += len(seen)
        result.detected += len(ids)
        result.followed += followed
        result.per_person.append((switches, len(set(ids)), followed / len(seen) if seen else 0.0))
        for i in set(ids):
            owners.setdefault(i, set()).add(person)
    result.shared_ids = sum(len(people) > 1 for people in owners.values())
    return result


def subsample(clip: Clip, boxes: list[list[Box]], every: int) -> tuple[Clip, list[list[Box]]]:
    """Every ``every``-th frame of a clip and its detections (a longer step between analysed frames)."""
    return (Clip(clip.scene, clip.times[::every], clip.frames[::every], clip.truth[::every]), boxes[::every])


# --------------------------------------------------------------------------- the study


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    data = DEFAULT_DATA if (DEFAULT_DATA / "validation").is_dir() else SAMPLE_DATA
    parser.add_argument("--data", type=Path, default=data, help=f"FER2013 image folders (default {data})")
    parser.add_argument("--clips", type=int, default=4, help="clips per scene, each with other faces and paths")
    parser.add_argument("--side", type=int, default=112, help="face size in pixels")
    parser.add_argument("--step", type=float, nargs="+", default=[0.2, 0.4],
                        help="seconds between analysed frames (clips are made at the first, the others keep "
                             "every Nth of its frames)")
    parser.add_argument("--away", type=float, default=2.0, help="seconds the walker of leave-return is out of view")
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args(argv)


def detect_clips(args: argparse.Namespace, detector: Detector) -> list[tuple[Clip, list[list[Box]]]]:
    rng = np.random.default_rng(args.seed)
    files = face_files(args.data)
    clips = []
    for scene in SCENES:
        for _ in range(args.clips):
            faces = detectable_faces(files, args.side, detector, 3 if scene == "three" else 2, rng)
            clip = make_clip(scene, faces, args.step[0], rng, args.away)
            clips.append((clip, [detector.detect(frame) for frame in clip.frames]))
    return clips


def print_table(results: dict[tuple[str, float, str], Score], steps: list[float]) -> None:
    """One line per candidate and step: per scene switches / fragments per person / followed, then totals."""
    header = f"{'settings':<36} {'step':>5}"
    for scene in SCENES:
        header += f" | {scene:^24}"
    header += f" | {'all':^30}"
    print(header)
    print(f"{'':<36} {'s':>5}" + " | switch frag/p  followed" * len(SCENES) + " | switch frag/p followed shared")
    for name, _, _ in CANDIDATES:
        for step in steps:
            line = f"{name:<36} {step:>5.2f}"
            total = Score()
            for scene in SCENES:
                s = results[(name, step, scene)]
                total.add(s)
                line += f" | {s.switches:>6} {s.fragments / s.persons:>6.2f} {s.followed / s.in_view:>8.1%}"
            line += (f" | {total.switches:>6} {total.fragments / total.persons:>6.2f} "
                     f"{total.followed / total.in_view:>8.1%} {total.shared_ids:>6}")
            print(line)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    info = machine_info()
    detector_name = default_detector("video")
    detector = detector_for(detector_name, "photo")  # as analyze_video detects
    started = time.perf_counter()
    clips = detect_clips(args, detector)
    detect_s = time.perf_counter() - started
    frames = sum(len(clip.frames) for clip, _ in clips)
    print(f"track_study: {len(clips)} clips ({args.clips} per scene) of {DURATION_S:g} s, faces {args.side} px from "
          f"{args.data}, detector {detector_name} (photo settings), {frames} frames detected in {detect_s:.1f} s")
    print(f"cpu: {info.cpu}, {info.cores} cores, flags {' '.join(info.flags)}, "
          f"load={info.load[0]:.2f} {info.load[1]:.2f} {info.load[2]:.2f}")
    results: dict[tuple[str, float, str], Score] = {}
    detection_share: dict[str, list[int]] = {scene: [0, 0] for scene in SCENES}
    for step in args.step:
        every = max(1, round(step / args.step[0]))
        for clip, boxes in clips:
            clip_at, boxes_at = subsample(clip, boxes, every)
            for name, settings, seconds in CANDIDATES:
                found = person_ids(clip_at.truth, boxes_at, track_ids(boxes_at, clip_at.times, settings, seconds))
                s = score(clip_at.truth, found)
                results.setdefault((name, step, clip.scene), Score()).add(s)
                if step == args.step[0] and name == CANDIDATES[0][0]:
                    detection_share[clip.scene][0] += s.detected
                    detection_share[clip.scene][1] += s.in_view
    print("detected (a detection on a person in view, the ceiling of 'followed'): "
          + ", ".join(f"{scene} {d / v:.1%}" for scene, (d, v) in detection_share.items()))
    print_table(results, args.step)
    print(f"video setting (fer_core.inference.tracking.VIDEO_TRACKER): {candidate_name(VIDEO_TRACKER)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
