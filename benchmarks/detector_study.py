"""The face detectors on real photos and on pasted scenes, side by side, and the rule's pick per use.

Every candidate (a detector at some settings, or a union of two) runs on exactly the same images:

* real photos: the photos of ``--photos`` with the hand-checked boxes of its ``faces.json`` (the 1927
  Solvay group photo, 29 faces of about 80 px in 2,700 px; three portraits);
* pasted faces: validation faces enlarged to 64–256 px and pasted into 640×480 canvases, as in
  ``crop_study.py``, one face per canvas;
* hard scenes: three validation faces (72–144 px) per canvas, each turned by 15–30° either way, the
  whole scene under a random gamma (0.5–2) and a light falling off to one side;
* cost: the median CPU time of ``detect`` per real photo (the mean over the photos) and on the
  benchmark's 640×480 webcam frame (``bench_inference.py``), OpenCV on one thread, every candidate
  timed in turn.

A face counts as found when a box overlaps it with IoU ≥ 0.3; every other box is a false box. The
scene share is the faces found over all pasted and hard-scene faces.

The rule (docs/detectors.md), per use:

* photos, videos and batch (a detector at its photo settings, as Upload, Video, ``predict``, ``video``
  and ``batch`` run it): among the candidates with no more false boxes than Haar's photo settings on
  the real photos and on the scenes, no more CPU time per real photo than Haar's photo settings and
  at most :data:`VIDEO_FRAME_BUDGET_MS` per 640×480 frame (a video searched as fast as it plays at
  30 fps, on one core), the one with the highest mean of the real-photo and scene shares;
* live camera (a detector at its frame settings): among the candidates with no more false boxes than
  Haar's frame settings on either set and a 640×480 frame within :data:`LIVE_FRAME_BUDGET_MS`, the one
  with the highest mean of the two shares.

Ties go to fewer false boxes, then to the settings the product ships (a change needs a measured gain),
then to the cheaper (per photo; per frame for the live camera). Haar's own settings always qualify, so
Haar is the fallback. A pick must be a detector the product offers at its shipped settings to become a
default: the study says whether ``fer_core.settings.DEFAULT_DETECTORS`` matches the pick, and
``--check`` exits 1 where it does not.

``--candidates`` also measures older BlazeFace and YuNet settings and each CNN detector unioned with
Haar. The ceiling line gives, per size, the pasted faces that at least one candidate found.

Usage: ``python benchmarks/detector_study.py [--data ../shared/data/fer2013] [--photos
../shared/data/photos] [--per-class 30] [--scenes 100] [--sizes 64 96 160 256] [--candidates] [--check]``
(``--sizes 96``: pasted faces at one size, a quarter of their cost, for a quick run: the suite's).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from bench_inference import webcam_frame
from crop_study import CANVAS, FACE_SIDES, background, iou, paste

from fer_core.data import load_dataset
from fer_core.inference.detect import DETECTOR_NAMES, Box, Detector, blazeface, detector_for, yunet
from fer_core.machine import machine_info
from fer_core.model_card import PROJECT_ROOT
from fer_core.settings import DEFAULT_DETECTORS

SHARED_DATA = Path(os.environ.get("FER_SHARED_DATA", PROJECT_ROOT.parent / "shared" / "data"))  # as the tests
FACES_PER_SCENE = 3
SCENE_SIDES = (72, 144)  # smallest and largest face in a hard scene (a turned face fits its strip)
TILT_DEGREES = (15, 30)  # each face is turned by this much, either way
GAMMAS = (0.5, 2.0)
MATCH_IOU = 0.3
LIVE_FRAME_BUDGET_MS = 1000 / 60  # live camera: one 640×480 frame at 60 fps, on one core
VIDEO_FRAME_BUDGET_MS = 1000 / 30  # photos, videos, batch: a 640×480 frame as fast as a 30-fps video plays
# The uses of fer_core.settings.DEFAULT_DETECTORS and the settings each runs a detector at.
USE_SETTINGS = {"photo": "photo", "video": "photo", "batch": "photo", "live": "frame"}

# The rule's candidates beyond the shipped settings: YuNet searching larger copies, an enlarged copy
# (merged by NMS) and boxes down to 24 px; at frame settings, other search sizes within a frame's budget.
YUNET_RULE_CANDIDATES = {
    "photo": [yunet.YuNetSettings(max_side=side, min_face=min_face, min_score=0.6, scales=scales)
              for side, min_face, scales in ((640, 24, (1.0,)), (640, 40, (1.0,)), (1024, 24, (1.0,)),
                                             (1024, 40, (1.0,)), (1280, 24, (1.0,)), (640, 24, (1.0, 1.5)),
                                             (1024, 24, (1.0, 1.5)))],
    "frame": [yunet.YuNetSettings(max_side=side, min_face=min_face, min_score=0.6, scales=scales)
              for side, min_face, scales in ((320, 24, (1.0,)), (320, 48, (1.0,)), (480, 24, (1.0,)),
                                             (640, 24, (1.0,)), (320, 24, (1.0, 1.5)))],
}
BLAZEFACE_CANDIDATES = [blazeface.BlazeFaceSettings(max_sides=sides, min_face=min_face, min_score=score)
                        for sides, min_face, score in (((320,), 48, 0.5), ((320,), 48, 0.6), ((384, 192), 48, 0.6),
                                                       ((512, 256), 40, 0.5), ((640, 320), 40, 0.6))]
YUNET_OLD_CANDIDATES = [yunet.YuNetSettings(max_side=side, min_face=min_face, min_score=score)
                        for side, min_face, score in ((256, 48, 0.6), (320, 48, 0.5), (320, 48, 0.7), (480, 40, 0.6),
                                                      (640, 40, 0.5), (640, 40, 0.7), (800, 40, 0.6))]
CNN_DETECTORS = ("yunet", "blazeface")


def yunet_name(settings: yunet.YuNetSettings) -> str:
    """A candidate's row label: its search size, smallest box, score and (if several) copies."""
    copies = "" if settings.scales == (1.0,) else " x" + "+".join(f"{scale:g}" for scale in settings.scales)
    return f"yunet {settings.max_side}{copies} min {settings.min_face} score {settings.min_score:g}"


class UnionDetector:
    """The first detector's boxes, plus each box of the second that overlaps none of them (IoU below
    ``overlap``)."""

    def __init__(self, first: Detector, second: Detector, overlap: float = 0.2):
        self.first, self.second, self.overlap = first, second, overlap

    def detect(self, image: np.ndarray) -> list[Box]:
        boxes = list(self.first.detect(image))
        boxes += [b for b in self.second.detect(image) if all(iou(b, kept) < self.overlap for kept in boxes)]
        return boxes


@dataclass(frozen=True)
class Candidate:
    """A detector measured for one kind of use: ``settings`` is ``"photo"`` or ``"frame"``; ``offered``
    names the product's detector when this is exactly ``detector_for(offered, settings)``."""

    detector: Detector
    settings: str
    offered: str | None = None


@dataclass
class Tally:
    """Faces found and false boxes over a set of images."""

    found: int = 0
    faces: int = 0
    false_boxes: int = 0
    canvases: int = 0
    found_each: list[bool] = field(default_factory=list)  # per face, in order, to compare detectors

    def add(self, boxes: list[Box], truths: list[Box]) -> None:
        unmatched = list(boxes)
        for truth in truths:
            best = max(unmatched, key=lambda b: iou(b, truth), default=None)
            hit = best is not None and iou(best, truth) >= MATCH_IOU
            if hit:
                unmatched.remove(best)
            self.found += hit
            self.found_each.append(hit)
        self.faces += len(truths)
        self.false_boxes += len(unmatched)
        self.canvases += 1

    @property
    def recall(self) -> float:
        return self.found / max(1, self.faces)


@dataclass
class Measure:
    """One candidate's figures: real photos, pasted faces per size, hard scenes, and times."""

    real: Tally
    pasted: dict[int, Tally]
    hard: Tally
    ms_photo: float
    ms_frame: float

    @property
    def scene_faces(self) -> int:
        return sum(t.faces for t in self.pasted.values()) + self.hard.faces

    @property
    def scene_share(self) -> float:
        return (sum(t.found for t in self.pasted.values()) + self.hard.found) / max(1, self.scene_faces)

    @property
    def scene_false(self) -> int:
        return sum(t.false_boxes for t in self.pasted.values()) + self.hard.false_boxes

    @property
    def score(self) -> float:
        """The rule's figure of merit: the mean of the real-photo and the scene shares."""
        return (self.real.recall + self.scene_share) / 2


Scenes = list[tuple[np.ndarray, list[Box]]]


def real_photos(folder: Path) -> Scenes:
    """The photos named in ``folder/faces.json`` with their hand-checked boxes (BGR, as uploaded)."""
    import cv2

    truths = json.loads((folder / "faces.json").read_text())
    photos = []
    for name, boxes in truths.items():
        image = cv2.imread(str(folder / name))
        if image is None:
            raise FileNotFoundError(f"{folder / name} (named in faces.json) cannot be read")
        photos.append((image, [tuple(box) for box in boxes]))
    return photos


def sample_faces(per_class: int, data_root: Path, seed: int) -> np.ndarray:
    """Up to ``per_class`` validation faces of each FER2013 class."""
    data = load_dataset(data_root / "validation", skip_bad_rows=True).data
    rng = np.random.default_rng(seed)
    picks = [rng.choice(np.flatnonzero(data.labels == c), min(per_class, int((data.labels == c).sum())), replace=False)
             for c in np.unique(data.labels)]
    return data.images[np.concatenate(picks)]


def pasted_scenes(faces: np.ndarray, side: int, seed: int) -> Scenes:
    """One canvas per face, the face pasted at ``side`` pixels (the same canvases for every detector)."""
    rng = np.random.default_rng(seed + side)
    canvas = background(rng)
    scenes = []
    for face in faces:
        image, truth = paste(face, side, rng, canvas)
        scenes.append((image, [truth]))
    return scenes


def tilted_face(canvas: np.ndarray, face: np.ndarray, side: int, centre: tuple[int, int], angle: float) -> Box:
    """Paste ``face`` at ``side`` pixels turned by ``angle`` degrees around ``centre``; its upright box."""
    import cv2

    big = cv2.resize(face, (side, side), interpolation=cv2.INTER_CUBIC)
    cx, cy = centre
    shift = np.array([[0, 0, cx - side / 2], [0, 0, cy - side / 2]])
    matrix = cv2.getRotationMatrix2D((side / 2, side / 2), angle, 1.0) + shift
    height, width = canvas.shape
    warped = cv2.warpAffine(big, matrix, (width, height), flags=cv2.INTER_LINEAR)
    mask = cv2.warpAffine(np.full_like(big, 255), matrix, (width, height), flags=cv2.INTER_NEAREST)
    canvas[mask > 0] = warped[mask > 0]
    return (round(cx - side / 2), round(cy - side / 2), side, side)


def uneven_light(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A random gamma, and light falling to 35 % towards a random side."""
    height, width = image.shape
    gamma = float(np.exp(rng.uniform(*np.log(GAMMAS))))
    angle = rng.uniform(0, 2 * np.pi)
    ys, xs = np.mgrid[0:height, 0:width]
    along = (np.cos(angle) * (xs - width / 2) + np.sin(angle) * (ys - height / 2)) / (max(width, height) / 2)
    light = 0.35 + 0.65 * np.clip((along + 1) / 2, 0, 1)
    return np.clip(255 * (image / 255.0) ** gamma * light, 0, 255).astype(np.uint8)


def hard_scenes(faces: np.ndarray, count: int, seed: int) -> Scenes:
    """``count`` canvases with :data:`FACES_PER_SCENE` tilted faces each, in uneven light."""
    rng = np.random.default_rng(seed)
    base = background(rng)
    height, width = CANVAS
    slot = width // FACES_PER_SCENE  # one face per vertical strip, so faces never overlap
    scenes = []
    for _ in range(count):
        canvas, truths = base.copy(), []
        for k in range(FACES_PER_SCENE):
            side = int(rng.integers(SCENE_SIDES[0], SCENE_SIDES[1] + 1))
            diagonal = int(np.ceil(side * 1.42 / 2))
            centre = (int(rng.integers(k * slot + diagonal, (k + 1) * slot - diagonal + 1)),
                      int(rng.integers(diagonal, height - diagonal)))
            angle = float(rng.uniform(*TILT_DEGREES) * rng.choice([-1, 1]))
            truths.append(tilted_face(canvas, faces[rng.integers(len(faces))], side, centre, angle))
        scenes.append((uneven_light(canvas, rng), truths))
    return scenes


def tally(detector: Detector, scenes: Scenes) -> Tally:
    result = Tally()
    for image, truths in scenes:
        result.add(detector.detect(image), truths)
    return result


def cpu_ms(detectors: list[Detector], images: list[np.ndarray], repeats: int) -> list[float]:
    """Per detector, the mean over ``images`` of its median CPU ms per image, the detectors timed in
    turn. CPU time of the calling thread (OpenCV runs on it alone) is the work a detection costs, not
    the time it waits on a machine other processes share."""
    times = np.zeros((len(detectors), len(images), repeats))
    for detector in detectors:  # warm-up: first calls allocate buffers
        detector.detect(images[0])
    for r in range(repeats):
        for i, image in enumerate(images):
            for d, detector in enumerate(detectors):
                start = time.thread_time()
                detector.detect(image)
                times[d, i, r] = time.thread_time() - start
    return [float(v) for v in np.median(times, axis=2).mean(axis=1) * 1000]


def shipped_candidates() -> dict[str, Candidate]:
    """Every detector the product offers, at its photo and its frame settings."""
    return {f"{name} {use}": Candidate(detector_for(name, use), use, name)
            for use in ("photo", "frame") for name in DETECTOR_NAMES}


def rule_candidates(shipped: dict[str, Candidate]) -> dict[str, Candidate]:
    """The YuNet settings and the YuNet + BlazeFace union the rule weighs beside the shipped settings."""
    shipped_settings = {(c.settings, c.detector.settings) for c in shipped.values() if c.offered == "yunet"}
    found = {f"{yunet_name(s)} {use}": Candidate(yunet.YuNetDetector(s), use)
             for use, candidates in YUNET_RULE_CANDIDATES.items() for s in candidates
             if (use, s) not in shipped_settings}
    found |= {f"yunet + blazeface {use}": Candidate(UnionDetector(shipped[f"yunet {use}"].detector,
                                                                  shipped[f"blazeface {use}"].detector), use)
              for use in ("photo", "frame")}
    return found


def more_candidates(shipped: dict[str, Candidate]) -> dict[str, Candidate]:
    """Older BlazeFace and YuNet settings, and each CNN detector unioned with Haar (``--candidates``)."""
    found = {f"{yunet_name(s)}": Candidate(yunet.YuNetDetector(s), "photo") for s in YUNET_OLD_CANDIDATES}
    found |= {f"blazeface {s.max_sides} min {s.min_face} score {s.min_score:g}":
              Candidate(blazeface.BlazeFaceDetector(s), "photo") for s in BLAZEFACE_CANDIDATES}
    found |= {f"{cnn} + haar {use}": Candidate(UnionDetector(shipped[f"{cnn} {use}"].detector,
                                                             shipped[f"haar {use}"].detector), use)
              for cnn in CNN_DETECTORS for use in ("photo", "frame")}
    return found


def measure(candidates: dict[str, Candidate], photos: Scenes, pasted: dict[int, Scenes], hard: Scenes,
            repeats: int) -> Iterator[tuple[str, Measure]]:
    """Every candidate's :class:`Measure` on the same images, one candidate at a time (times taken first,
    the candidates in turn)."""
    detectors = [c.detector for c in candidates.values()]
    frame_ms = cpu_ms(detectors, [webcam_frame()], repeats)
    photos_ms = cpu_ms(detectors, [image for image, _ in photos], max(1, repeats // 20))
    for (name, c), ms_photo, ms_frame in zip(candidates.items(), photos_ms, frame_ms):
        yield name, Measure(tally(c.detector, photos), {side: tally(c.detector, s) for side, s in pasted.items()},
                            tally(c.detector, hard), ms_photo, ms_frame)


def qualifies(m: Measure, haar: Measure, use: str) -> bool:
    """The rule's conditions for ``use`` (see the module docstring)."""
    fewer_false = m.real.false_boxes <= haar.real.false_boxes and m.scene_false <= haar.scene_false
    if USE_SETTINGS[use] == "frame":
        return fewer_false and m.ms_frame <= LIVE_FRAME_BUDGET_MS
    return fewer_false and m.ms_photo <= haar.ms_photo and m.ms_frame <= VIDEO_FRAME_BUDGET_MS


def rule_pick(candidates: dict[str, Candidate], measures: dict[str, Measure], use: str) -> str:
    """The candidate the rule picks for ``use`` (a key of ``candidates``)."""
    settings = USE_SETTINGS[use]
    haar = measures[f"haar {settings}"]
    fallback = f"haar {settings}"  # Haar is the fallback: it stays eligible whatever its own cost
    eligible = [name for name, c in candidates.items()
                if c.settings == settings and (name == fallback or qualifies(measures[name], haar, use))]
    cost = (lambda m: m.ms_frame) if settings == "frame" else (lambda m: m.ms_photo)
    return max(eligible, key=lambda n: (measures[n].score, -measures[n].real.false_boxes - measures[n].scene_false,
                                        candidates[n].offered is not None, -cost(measures[n])))


def default_matches(candidate: Candidate, use: str) -> bool:
    """Whether ``DEFAULT_DETECTORS[use]`` at its shipped settings is ``candidate``."""
    return candidate.offered == DEFAULT_DETECTORS[use]


def print_header(n_real: int, n_scene: int, sides: list[int]) -> None:
    sizes = "".join(f"{side:>6}px" for side in sides)
    print(f"\nreal photos ({n_real} faces) | pasted faces found per size, hard scenes, all {n_scene} scene faces, "
          f"false boxes | CPU ms | mean share\n(CPU ms on one thread: photo, the mean over the photos of the median "
          f"per photo; frame, the median per 640x480 frame; frame budgets: photo use {VIDEO_FRAME_BUDGET_MS:.1f}, "
          f"live {LIVE_FRAME_BUDGET_MS:.1f})")
    print(f"{'candidate':<40} {'found':>6} {'false':>5} |{sizes} {'hard':>7} {'all':>7} {'false':>5} |"
          f" {'photo':>7} {'frame':>6} | {'mean':>6}")


def print_row(name: str, m: Measure) -> None:
    real = f"{m.real.found:>3}/{m.real.faces:<2} {m.real.false_boxes:>5}"
    cells = "".join(f"{tally.recall:>8.1%}" for tally in m.pasted.values())
    print(f"{name:<40} {real} |{cells} {m.hard.recall:>7.1%} {m.scene_share:>7.1%} {m.scene_false:>5} |"
          f" {m.ms_photo:>7.1f} {m.ms_frame:>6.2f} | {m.score:>6.1%}", flush=True)


def print_ceiling(measures: dict[str, Measure]) -> None:
    """What no candidate here can find: per size, the pasted faces at least one found."""
    sides = next(iter(measures.values())).pasted
    found_by_any = {side: np.logical_or.reduce([m.pasted[side].found_each for m in measures.values()])
                    for side in sides}
    cells = "".join(f"{found.mean():>8.1%}" for found in found_by_any.values())
    print(f"{'found by any of the ' + str(len(measures)):<52} |{cells}")
    never = ~np.logical_or.reduce(list(found_by_any.values()))
    print(f"faces found by no detector at any size: {int(never.sum())} of {never.size} ({never.mean():.1%})")


def print_picks(candidates: dict[str, Candidate], measures: dict[str, Measure]) -> bool:
    """The rule's pick per use beside ``DEFAULT_DETECTORS``; whether every default matches its pick."""
    print("\nthe rule's pick per use (docs/detectors.md):")
    all_match = True
    for use in USE_SETTINGS:
        pick = rule_pick(candidates, measures, use)
        matches = default_matches(candidates[pick], use)
        all_match &= matches
        m = measures[pick]
        print(f"  {use:<6} {pick:<40} real {m.real.found}/{m.real.faces} (false {m.real.false_boxes}), scenes "
              f"{m.scene_share:.1%} (false {m.scene_false}), {m.ms_photo:.0f} ms/photo, {m.ms_frame:.1f} ms/frame; "
              f"DEFAULT_DETECTORS[{use!r}] = {DEFAULT_DETECTORS[use]!r}: {'matches' if matches else 'DIFFERS'}")
    return all_match


def print_lost_to_haar(measures: dict[str, Measure]) -> None:
    print("\nhard-scene faces Haar found that a shipped CNN detector lost, at the same settings:")
    for name in (f"{cnn} {use}" for cnn in CNN_DETECTORS for use in ("photo", "frame")):
        haar, cnn = measures[f"haar {name.split()[1]}"].hard.found_each, measures[name].hard.found_each
        lost = sum(h and not c for h, c in zip(haar, cnn))
        gained = sum(c and not h for h, c in zip(haar, cnn))
        print(f"  {name}: lost {lost} of the {sum(haar)} Haar found; found {gained} Haar missed")


def main(argv: list[str] | None = None) -> int:
    import cv2

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=SHARED_DATA / "fer2013")
    parser.add_argument("--photos", type=Path, default=SHARED_DATA / "photos", help="photos and their faces.json")
    parser.add_argument("--per-class", type=int, default=30)
    parser.add_argument("--scenes", type=int, default=100, help="hard scenes (several tilted faces, uneven light)")
    parser.add_argument("--repeats", type=int, default=60, help="timed runs per frame (a twentieth of them per photo)")
    parser.add_argument("--sizes", type=int, nargs="+", default=list(FACE_SIDES), metavar="PX",
                        help="sides of the pasted faces (a single size for a quick run)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--candidates", action="store_true", help="also older settings and unions with Haar")
    parser.add_argument("--check", action="store_true", help="exit 1 unless DEFAULT_DETECTORS matches the picks")
    args = parser.parse_args(argv)

    cv2.setNumThreads(1)
    shipped = shipped_candidates()
    candidates = shipped | rule_candidates(shipped) | (more_candidates(shipped) if args.candidates else {})
    faces = sample_faces(args.per_class, args.data, args.seed)
    photos = real_photos(args.photos)
    print(machine_info().describe())
    print(f"{sum(len(t) for _, t in photos)} faces in {len(photos)} real photos; {len(faces)} validation faces "
          f"pasted per size; {args.scenes} hard scenes of {FACES_PER_SCENE} faces; OpenCV threads: "
          f"{cv2.getNumThreads()}")
    pasted = {side: pasted_scenes(faces, side, args.seed) for side in args.sizes}
    hard = hard_scenes(faces, args.scenes, args.seed)
    print_header(sum(len(t) for _, t in photos), len(faces) * len(args.sizes) + args.scenes * FACES_PER_SCENE,
                 args.sizes)
    measures = {}
    for name, measured in measure(candidates, photos, pasted, hard, args.repeats):
        print_row(name, measured)
        measures[name] = measured
    print_ceiling(measures)
    print_lost_to_haar(measures)
    all_match = print_picks(candidates, measures)
    print(machine_info().describe())
    return 1 if args.check and not all_match else 0


if __name__ == "__main__":
    sys.exit(main())
