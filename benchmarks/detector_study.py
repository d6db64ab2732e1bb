"""Speed against recall of the frame detector's settings (live camera, video).

Recall: validation faces enlarged to 64–256 px and pasted into 640×480 canvases, as in
``crop_study.py``; a face counts as found when a box overlaps it with IoU ≥ 0.3. Speed: the median
time of ``detect`` on the benchmark's 640×480 webcam frame (``bench_inference.py``), every setting
timed in turn so that a change in the machine's load affects all alike.

Usage: ``python benchmarks/detector_study.py [--data ../shared/data/fer2013] [--per-class 30]``
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np
from bench_inference import detector_frame_ms
from crop_study import FACE_SIDES, background, iou, paste

from fer_core.data import load_dataset
from fer_core.inference.detect import FRAME_SETTINGS, DetectorSettings, FaceDetector
from fer_core.model_card import PROJECT_ROOT

CANDIDATES = [
    FRAME_SETTINGS,
    *(DetectorSettings(max_side=side, min_face=64, scale_factor=sf, min_neighbors=5)
      for side, sf in ((288, 1.2), (256, 1.2), (256, 1.15), (240, 1.15), (320, 1.25), (256, 1.25))),
]


def sample_faces(per_class: int, data_root: Path, seed: int) -> np.ndarray:
    """Up to ``per_class`` validation faces of each FER2013 class."""
    data = load_dataset(data_root / "validation", skip_bad_rows=True).data
    rng = np.random.default_rng(seed)
    picks = [rng.choice(np.flatnonzero(data.labels == c), min(per_class, int((data.labels == c).sum())), replace=False)
             for c in np.unique(data.labels)]
    return data.images[np.concatenate(picks)]


def recall(detector: FaceDetector, faces: np.ndarray, seed: int) -> dict[int, float]:
    """Share of faces found per pasted size (the same canvases for every detector: same seed)."""
    rng = np.random.default_rng(seed)
    canvas = background(rng)
    found = {}
    for side in FACE_SIDES:
        hits = 0
        for face in faces:
            image, truth = paste(face, side, rng, canvas)
            hits += any(iou(box, truth) >= 0.3 for box in detector.detect(image))
        found[side] = hits / len(faces)
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=PROJECT_ROOT.parent / "shared" / "data" / "fer2013")
    parser.add_argument("--per-class", type=int, default=30)
    parser.add_argument("--repeats", type=int, default=60)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    faces = sample_faces(args.per_class, args.data, args.seed)
    detectors = [FaceDetector(s) for s in CANDIDATES]
    print(f"{len(faces)} validation faces per size, cpus {os.cpu_count()}, "
          f"load average {', '.join(f'{v:.1f}' for v in os.getloadavg())}")
    ms = detector_frame_ms(detectors, args.repeats)
    header = "".join(f"{side:>7}px" for side in FACE_SIDES)
    print(f"{'max_side':>8} {'scale':>5} {'min_face':>8} {'ms/frame':>9} {header} {'all':>8}")
    for settings, detector, t in zip(CANDIDATES, detectors, ms):
        found = recall(detector, faces, args.seed)
        cells = "".join(f"{found[side]:>9.1%}" for side in FACE_SIDES)
        current = "  (current FRAME_SETTINGS)" if settings == FRAME_SETTINGS else ""
        print(f"{settings.max_side:>8} {settings.scale_factor:>5} {settings.min_face:>8} {t:>9.2f} {cells}"
              f" {np.mean(list(found.values())):>8.1%}{current}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
