"""Many users at once on one shared recognizer: faces/s and p95 latency for 1, 2, 4 and 8 threads.

The Streamlit server runs every session on its own thread and shares one cached EmotionRecognizer
and one face detector between them, so this is what N users uploading photos at the same moment
get. Each thread analyses photos (detect → crop → classify with test-time augmentation, as the
Upload page does) one after another; the latency is one photo's ``analyze_image`` call. The model
call itself is serialised by the recognizer's lock; detection and cropping run in parallel.

The CPU model, its vector/matrix extensions and the load average are printed beside the figures:
on a busy machine (a training run, say) every figure drops.

Usage: ``python benchmarks/bench_concurrency.py [--model M] [--photos-per-thread 24]``
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from fer_core.inference.pipeline import analyze_image
from fer_core.inference.recognizer import EmotionRecognizer
from fer_core.machine import machine_info
from fer_core.model_card import PROJECT_ROOT, default_model_path

SHARED_DATA = Path(os.environ.get("FER_SHARED_DATA", PROJECT_ROOT.parent / "shared" / "data"))
PHOTO = SHARED_DATA / "photos" / "astronaut.png"
THREAD_COUNTS = (1, 2, 4, 8)
def load_average() -> str:
    return ", ".join(f"{v:.2f}" for v in os.getloadavg())


def photos() -> list[np.ndarray]:
    """The astronaut photo and variants (mirrored, smaller on a canvas, larger), one face each."""
    import cv2

    if not PHOTO.is_file():
        sys.exit(f"{PHOTO} not found: set FER_SHARED_DATA to the folder holding photos/astronaut.png")
    photo = cv2.imread(str(PHOTO))
    canvas = np.full((600, 900, 3), 120, np.uint8)
    small = cv2.resize(photo, None, fx=0.8, fy=0.8, interpolation=cv2.INTER_AREA)
    canvas[60 : 60 + small.shape[0], 300 : 300 + small.shape[1]] = small
    large = cv2.resize(photo, None, fx=1.5, fy=1.5, interpolation=cv2.INTER_LINEAR)
    return [photo, np.ascontiguousarray(photo[:, ::-1]), canvas, large]


def run(recognizer: EmotionRecognizer, images: list[np.ndarray], threads: int, per_thread: int) -> dict:
    """``threads`` threads analyse ``per_thread`` photos each, all starting together."""
    start = threading.Barrier(threads + 1)

    def one_user(thread: int) -> tuple[list[float], int]:
        latencies, faces = [], 0
        start.wait()
        for k in range(per_thread):
            began = time.perf_counter()
            faces += len(analyze_image(images[(thread + k) % len(images)], recognizer))
            latencies.append(time.perf_counter() - began)
        return latencies, faces

    with ThreadPoolExecutor(threads) as pool:
        futures = [pool.submit(one_user, t) for t in range(threads)]
        start.wait()
        began = time.perf_counter()
        outcomes = [f.result() for f in futures]
        wall = time.perf_counter() - began
    latencies = np.concatenate([o[0] for o in outcomes]) * 1000
    faces = sum(o[1] for o in outcomes)
    return {"faces_per_s": faces / wall, "photos_per_s": len(latencies) / wall,
            "p50_ms": float(np.percentile(latencies, 50)), "p95_ms": float(np.percentile(latencies, 95))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=str(default_model_path()))
    parser.add_argument("--photos-per-thread", type=int, default=40)
    args = parser.parse_args()

    recognizer = EmotionRecognizer(args.model)
    images = photos()
    for image in images:  # warm-up: the first calls trace the model and fill OpenCV's buffers
        analyze_image(image, recognizer)
    print(f"model {recognizer.model_path.name}; {machine_info().describe()}")
    print(f"load average at the start {load_average()}")
    print(f"{'threads':>7} {'faces/s':>8} {'photos/s':>9} {'p50 ms':>8} {'p95 ms':>8}  load average (1, 5, 15 min)")
    for threads in THREAD_COUNTS:
        figures = run(recognizer, images, threads, args.photos_per_thread)
        print(f"{threads:>7} {figures['faces_per_s']:>8.1f} {figures['photos_per_s']:>9.1f} "
              f"{figures['p50_ms']:>8.1f} {figures['p95_ms']:>8.1f}  {load_average()}")


if __name__ == "__main__":
    main()
