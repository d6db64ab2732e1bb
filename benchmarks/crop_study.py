"""Which margin around a detector's box makes detect → crop → classify match FER2013's framing?

Validation faces (48×48, tightly framed) are enlarged to several sizes and pasted at random places
into 640×480 canvases (blurred noise as background, so the canvas has texture but no face of its
own). The full pipeline then runs on each canvas: the detector (``--detector``, at its photo
settings), then the crop with each margin, then the recognizer. Because we know where each face was
pasted, we measure per face size and margin:

* detection rate: a box overlapping the pasted face (IoU ≥ 0.3) was found;
* frame IoU: overlap of the cropped square with the pasted face's true frame (1 = FER's framing);
* accuracy of the pipeline on the detected faces, next to the accuracy of the same faces classified
  directly as 48×48 images (the ceiling the crop can reach).

The margin is chosen on validation (PublicTest) faces only, per detector, and stored in the shipped
cards' ``face_crop.margins``.

Usage: ``python benchmarks/crop_study.py [--data ../shared/data/fer2013] [--per-class 50] [--model M]
[--detector haar|blazeface]``
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from fer_core.data import FaceData, load_dataset
from fer_core.inference.crop import crop_face, square_around
from fer_core.inference.detect import DETECTOR_NAMES, Box, Detector, detector_for
from fer_core.inference.recognizer import EmotionRecognizer
from fer_core.model_card import PROJECT_ROOT, default_model_path
from fer_core.model_format import FACE_MARGINS

CANVAS = (480, 640)  # height, width
MARGINS = (-0.1, -0.05, 0.0, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3)
FACE_SIDES = (64, 96, 160, 256)


@dataclass
class Trial:
    label: int  # class index of the recognizer's scheme
    truth: Box  # where the face was pasted
    box: Box | None  # the matched detection


def iou(a: Box, b: Box) -> float:
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    iw = max(0, min(ax + aw, bx + bw) - max(ax, bx))
    ih = max(0, min(ay + ah, by + bh) - max(ay, by))
    inter = iw * ih
    return inter / (aw * ah + bw * bh - inter)


def crop_square(box: Box, margin: float) -> Box:
    x, y, side = square_around(box, margin)
    return x, y, side, side


def background(rng: np.random.Generator) -> np.ndarray:
    """A textured gray canvas without a face: blurred noise, the same on every checkout for a seed.

    Not a blurred photo: the one at hand (the astronaut) is a portrait, and blurred it still reads as one
    large face (YuNet's frame settings box the whole canvas under uneven light), which the studies then
    counted as false boxes; and a photo found beside the checkout made the scenes depend on where it lives."""
    import cv2

    canvas = rng.integers(40, 220, CANVAS, dtype=np.uint8)
    return cv2.GaussianBlur(canvas, (0, 0), 12)


def sample_faces(data: FaceData, recognizer: EmotionRecognizer, per_class: int,
                 seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Up to ``per_class`` faces of each class of the recognizer's scheme, and their class indices."""
    rng = np.random.default_rng(seed)
    y = recognizer.scheme.map_fer(data.labels)
    picks = []
    for c in range(len(recognizer.labels)):
        idx = np.flatnonzero(y == c)
        picks.append(rng.choice(idx, min(per_class, len(idx)), replace=False))
    picks = np.concatenate(picks)
    return data.images[picks], y[picks]


def paste(face: np.ndarray, side: int, rng: np.random.Generator, canvas: np.ndarray) -> tuple[np.ndarray, Box]:
    import cv2

    height, width = canvas.shape
    x, y = int(rng.integers(0, width - side)), int(rng.integers(0, height - side))
    out = canvas.copy()
    out[y : y + side, x : x + side] = cv2.resize(face, (side, side), interpolation=cv2.INTER_CUBIC)
    return out, (x, y, side, side)


def run_trials(faces: np.ndarray, labels: np.ndarray, side: int, detector: Detector,
               rng: np.random.Generator, canvas: np.ndarray) -> tuple[list[Trial], list[np.ndarray]]:
    trials, images = [], []
    for face, label in zip(faces, labels):
        image, truth = paste(face, side, rng, canvas)
        boxes = detector.detect(image)
        best = max(boxes, key=lambda b: iou(b, truth), default=None)
        matched = best if best is not None and iou(best, truth) >= 0.3 else None
        trials.append(Trial(int(label), truth, matched))
        images.append(image)
    return trials, images


def box_offsets(trials: list[Trial]) -> str:
    """Median position of the detected box inside the true frame, as fractions of the frame side."""
    hits = [t for t in trials if t.box]
    if not hits:
        return "no detections"
    left = np.median([(t.box[0] - t.truth[0]) / t.truth[2] for t in hits])
    top = np.median([(t.box[1] - t.truth[1]) / t.truth[2] for t in hits])
    size = np.median([t.box[2] / t.truth[2] for t in hits])
    ideal = np.median([(t.truth[2] / t.box[2] - 1) / 2 for t in hits])
    return f"box/frame size {size:.2f}, left {left:+.2f}, top {top:+.2f}, ideal margin {ideal:+.3f}"


def margin_rows(trials: list[Trial], images: list[np.ndarray], direct_correct: np.ndarray,
                recognizer: EmotionRecognizer, tta: bool) -> list[dict]:
    """One row per margin. The crops of all canvases go to the recognizer in one batch: the same
    crop → classify steps as :func:`fer_core.inference.pipeline.classify_boxes`, without a call per canvas."""
    hit = np.array([t.box is not None for t in trials])
    detected = [(t, image) for t, image in zip(trials, images) if t.box is not None]
    labels = np.array([t.label for t, _ in detected])
    rows = []
    for margin in MARGINS:
        row = {"margin": margin, "detected": hit.mean(), "n": len(detected), "frame_iou": float("nan"),
               "pipeline_acc": float("nan"), "direct_acc_detected": float("nan")}
        if detected:
            crops = np.stack([crop_face(image, t.box, margin) for t, image in detected])
            row["pipeline_acc"] = float(np.mean(recognizer.predict_proba(crops, tta=tta).argmax(axis=1) == labels))
            row["frame_iou"] = float(np.mean([iou(crop_square(t.box, margin), t.truth) for t, _ in detected]))
            row["direct_acc_detected"] = float(direct_correct[hit].mean())
        rows.append(row)
    return rows


def print_table(title: str, rows: list[dict], current: float) -> None:
    print(title)
    print(f"  {'margin':>7} {'detected':>9} {'frame IoU':>10} {'pipeline acc':>13} {'direct acc':>11} {'faces':>6}")
    for r in rows:
        mark = "  <- FACE_MARGINS" if abs(r["margin"] - current) < 1e-9 else ""
        print(f"  {r['margin']:>+7.3f} {r['detected']:>9.1%} {r['frame_iou']:>10.3f} {r['pipeline_acc']:>13.1%}"
              f" {r['direct_acc_detected']:>11.1%} {r['n']:>6}{mark}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=str(PROJECT_ROOT.parent / "shared" / "data" / "fer2013"),
                        help="FER2013 image-folder tree with a validation/ folder")
    parser.add_argument("--model", help="a .keras model (default: the shipped model, or $FER_MODEL)")
    parser.add_argument("--per-class", type=int, default=50, help="validation faces per class")
    parser.add_argument("--no-tta", action="store_true")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--detector", choices=DETECTOR_NAMES, default="haar")
    args = parser.parse_args(argv)

    recognizer = EmotionRecognizer(args.model or default_model_path())
    data = load_dataset(Path(args.data) / "validation", skip_bad_rows=True).data
    faces, labels = sample_faces(data, recognizer, args.per_class, args.seed)
    tta = not args.no_tta
    direct = recognizer.predict_proba(faces, tta=tta).argmax(axis=1) == labels
    detector = detector_for(args.detector, "photo")
    current = FACE_MARGINS[args.detector]
    print(f"model {recognizer.model_path}  faces {len(faces)}  tta {tta}  detector {args.detector} {detector.settings}")
    print(f"direct 48x48 accuracy on all {len(faces)} sampled faces: {direct.mean():.1%}")
    if not recognizer.card.is_published:
        print("note: this model has no published card with metrics; if it is untrained, the accuracy "
              "columns mean nothing (the frame IoU does not depend on the model)")
    print()

    rng = np.random.default_rng(args.seed)
    canvas = background(rng)
    all_rows: dict[float, list[dict]] = {m: [] for m in MARGINS}
    for side in FACE_SIDES:
        start = time.perf_counter()
        trials, images = run_trials(faces, labels, side, detector, rng, canvas)
        rows = margin_rows(trials, images, direct, recognizer, tta)
        elapsed = time.perf_counter() - start
        print_table(f"face pasted at {side}x{side} px ({box_offsets(trials)}; {elapsed:.0f} s)", rows, current)
        for row in rows:
            all_rows[row["margin"]].append(row)
        print()
    summary = []
    for margin, rows in all_rows.items():
        weights = np.array([r["n"] for r in rows], float)
        summary.append({"margin": margin, "detected": np.mean([r["detected"] for r in rows]),
                        **{k: float(np.average([r[k] for r in rows], weights=weights))
                           for k in ("frame_iou", "pipeline_acc", "direct_acc_detected")},
                        "n": int(weights.sum())})
    print_table("all sizes together", summary, current)
    best_iou = max(summary, key=lambda r: r["frame_iou"])["margin"]
    best_acc = max(summary, key=lambda r: r["pipeline_acc"])["margin"]
    print(f"\nbest frame IoU at margin {best_iou:+.3f}; best pipeline accuracy at margin {best_acc:+.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
