"""Inference speed on this machine: batched faces/s, single-face latency, full 640×480 frame latency.

The full frame is what the live camera does per frame: detect (frame settings) → crop → classify →
draw. Targets: full frame ≤ 20 ms median, batched ≥ 1000 faces/s. Every figure is a median over
repeated runs after a warm-up; the load average is printed because other work on the machine (a
training run, say) slows everything down.

Usage: ``python benchmarks/bench_inference.py [--model M] [--repeats 50] [--sweep]``
(``--sweep`` also times the detector over a grid of settings on the same frame).
"""

from __future__ import annotations

import argparse
import itertools
import os
import sys
import time
from collections.abc import Callable

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from fer_core.inference.crop import crop_faces
from fer_core.inference.detect import (
    FRAME_SETTINGS,
    Detector,
    DetectorSettings,
    FaceDetector,
    to_gray,
)
from fer_core.inference.draw import annotate
from fer_core.inference.pipeline import analyze_image
from fer_core.inference.recognizer import EmotionRecognizer
from fer_core.inference.speed import machine_info
from fer_core.model_card import PROJECT_ROOT, default_model_path

PHOTO = PROJECT_ROOT.parent / "shared" / "data" / "photos" / "astronaut.png"


def median_ms(fn: Callable[[], object], repeats: int, warmup: int = 3) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times) * 1000)


def webcam_frame() -> np.ndarray:
    """640×480 BGR frame with one face about 130 px wide (the astronaut photo, or a drawn face)."""
    import cv2

    frame = np.full((480, 640, 3), 90, np.uint8)
    if PHOTO.is_file():
        frame[:, 80:560] = cv2.resize(cv2.imread(str(PHOTO)), (480, 480), interpolation=cv2.INTER_AREA)
    return frame


def bench_batches(recognizer: EmotionRecognizer, faces: np.ndarray, repeats: int) -> None:
    print("batched classification (faces/s, median of runs):")
    for tta in (False, True):
        for batch in (32, 256):
            x = faces[:batch]
            ms = median_ms(lambda: recognizer.predict_proba(x, tta=tta), max(3, repeats // 5))
            print(f"  batch {batch:>4}  tta {str(tta):<5}  {batch / ms * 1000:>8.0f} faces/s  ({ms:.1f} ms per batch)")


def bench_single(recognizer: EmotionRecognizer, faces: np.ndarray, repeats: int) -> None:
    print("single-face latency (median ms):")
    for tta in (False, True):
        ms = median_ms(lambda: recognizer.predict_proba(faces[:1], tta=tta), repeats)
        print(f"  tta {str(tta):<5}  {ms:6.2f} ms")


def bench_frame(recognizer: EmotionRecognizer, repeats: int) -> None:
    frame = webcam_frame()
    detector = FaceDetector(FRAME_SETTINGS)
    gray = to_gray(frame)
    boxes = detector.detect(gray)
    print(f"full 640x480 frame, {len(boxes)} face(s) found, detector {FRAME_SETTINGS}:")
    results = analyze_image(frame, recognizer, detector, tta=False)
    stages = {
        "to gray + detect": lambda: detector.detect(to_gray(frame)),
        "crop": lambda: crop_faces(gray, boxes),
        "classify (tta False)": lambda: recognizer.predict_proba(crop_faces(gray, boxes), tta=False),
        "draw (boxes + bars)": lambda: annotate(frame, results, bars=True),
    }
    for name, fn in stages.items():
        print(f"  {name:<26} {median_ms(fn, repeats):6.2f} ms")
    for tta in (False, True):
        ms = median_ms(lambda: annotate(frame, analyze_image(frame, recognizer, detector, tta=tta), bars=True), repeats)
        print(f"  {'total, tta ' + str(tta):<26} {ms:6.2f} ms  (target <= 20 ms)")


def detector_frame_ms(detectors: list[Detector], repeats: int) -> list[float]:
    """Median ms of each detector on the (colour) webcam frame, as the pipeline gives it, timed in
    turn so that a change in the machine's load affects every detector alike."""
    frame = webcam_frame()
    times: list[list[float]] = [[] for _ in detectors]
    for _ in range(repeats):
        for i, detector in enumerate(detectors):
            start = time.perf_counter()
            detector.detect(frame)
            times[i].append(time.perf_counter() - start)
    return [float(np.median(t) * 1000) for t in times]


def sweep_detector(repeats: int) -> None:
    """Time the detector over a grid of settings on the same frame."""
    frame = to_gray(webcam_frame())
    grid = [DetectorSettings(max_side=side, min_face=min_face, scale_factor=sf, min_neighbors=5)
            for side, sf, min_face in itertools.product((240, 320, 400, 640), (1.1, 1.15, 1.2, 1.3), (48, 64, 80))]
    detectors = [FaceDetector(s) for s in grid]
    ms = detector_frame_ms(detectors, repeats)
    print("detector sweep on the 640x480 frame (median ms, faces found):")
    for settings, detector, t in zip(grid, detectors, ms):
        print(f"  max_side {settings.max_side:>3}  scale_factor {settings.scale_factor:<4}"
              f"  min_face {settings.min_face:>2}"
              f"  {t:6.2f} ms  {len(detector.detect(frame))} face(s)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="a .keras model (default: the shipped model, or $FER_MODEL)")
    parser.add_argument("--repeats", type=int, default=50)
    parser.add_argument("--sweep", action="store_true", help="also time a grid of detector settings")
    args = parser.parse_args(argv)

    recognizer = EmotionRecognizer(args.model or default_model_path())
    print(f"model {recognizer.model_path}; {machine_info().describe()}")
    faces = np.random.default_rng(0).integers(0, 256, (256, 48, 48), dtype=np.uint8)
    bench_batches(recognizer, faces, args.repeats)
    bench_single(recognizer, faces, args.repeats)
    bench_frame(recognizer, args.repeats)
    if args.sweep:
        sweep_detector(max(5, args.repeats // 5))
    print(f"load average at the end {', '.join(f'{v:.1f}' for v in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
