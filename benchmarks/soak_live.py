"""Soak test of the live camera's frame processing: latency and memory over a long stream.

Feeds :meth:`fer_core.live.LiveProcessor.process` 640×480 frames of the astronaut photo drifting
around (a face that moves, as in front of a webcam) at a camera's pace (``--fps``, 30 by default;
0 feeds them as fast as they are taken), for ``--seconds`` of wall time, and drains the result queue
as the page does. It prints the per-frame latency (median,
p95, max) per minute and overall, and the resident memory at the start, each minute and the end: a
leak shows up as RSS that keeps growing after the first minute. Load average is printed too,
because other work on the machine (a training run) slows every figure down. The CPU used per stream
(this process's CPU time over wall time, in cores) and per frame (which, times the camera's fps, is
the cores one viewer needs even when a busy machine cannot keep up) size a server per concurrent viewer.

Usage: ``python benchmarks/soak_live.py [--seconds 600] [--fps 30] [--model M] [--detect-every 2]
[--tta] [--emoji] [--bars]``
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from fer_core.inference.live import LiveProcessor, LiveSession, LiveSettings
from fer_core.inference.recognizer import EmotionRecognizer
from fer_core.machine import machine_info
from fer_core.model_card import PROJECT_ROOT, default_model_path
from fer_core.settings import AnalysisSettings, default_detector

PHOTO = PROJECT_ROOT.parent / "shared" / "data" / "photos" / "astronaut.png"
FRAME_W, FRAME_H, PHOTO_SIDE = 640, 480, 400
REPORT_EVERY_S = 60


def rss_mb() -> float:
    """Resident memory of this process in MB (``VmRSS`` in /proc/self/status)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def load_photo() -> np.ndarray:
    import cv2

    if not PHOTO.is_file():
        sys.exit(f"{PHOTO} not found: the soak test needs a photo with a face")
    return cv2.resize(cv2.imread(str(PHOTO)), (PHOTO_SIDE, PHOTO_SIDE), interpolation=cv2.INTER_AREA)


def moving_frame(photo: np.ndarray, t: float) -> np.ndarray:
    """The photo on a gray 640×480 frame, drifting on a slow ellipse (one turn every 8 s) at time ``t``."""
    frame = np.full((FRAME_H, FRAME_W, 3), 90, np.uint8)
    room_x, room_y = FRAME_W - PHOTO_SIDE, FRAME_H - PHOTO_SIDE
    x = round(room_x / 2 * (1 + math.cos(2 * math.pi * t / 8)))
    y = round(room_y / 2 * (1 + math.sin(2 * math.pi * t / 8)))
    frame[y : y + PHOTO_SIDE, x : x + PHOTO_SIDE] = photo
    return frame


def latency_line(latencies_ms: list[float]) -> str:
    values = np.asarray(latencies_ms)
    return (f"{len(values)} frames, median {np.median(values):.1f} ms, p95 {np.percentile(values, 95):.1f} ms, "
            f"max {values.max():.1f} ms")


def cpu_seconds() -> float:
    """CPU time (user + system, all threads) this process has used so far."""
    times = os.times()
    return times.user + times.system


def load_average() -> str:
    return ", ".join(f"{v:.2f}" for v in os.getloadavg())


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=600, help="how long to feed frames (default 600)")
    parser.add_argument("--fps", type=float, default=30, help="frames offered per second; 0: as fast as possible")
    parser.add_argument("--model", default=None, help="model file (default: $FER_MODEL or the shipped one)")
    parser.add_argument("--detect-every", type=int, default=LiveSettings.detect_every)
    parser.add_argument("--smoothing", type=float, default=LiveSettings.smoothing_s)
    parser.add_argument("--tta", action="store_true")
    parser.add_argument("--emoji", action="store_true")
    parser.add_argument("--bars", action="store_true")
    args = parser.parse_args(argv)

    model = Path(args.model) if args.model else default_model_path()
    photo = load_photo()
    recognizer = EmotionRecognizer(model)
    analysis = AnalysisSettings(model=str(model), detector=default_detector("live"), tta=args.tta)
    settings = LiveSettings(analysis, smoothing_s=args.smoothing, detect_every=args.detect_every, emoji=args.emoji,
                            bars=args.bars)
    processor = LiveProcessor(recognizer, settings=settings)
    session = LiveSession(recognizer.labels)
    processor.process(moving_frame(photo, 0.0))  # warm-up: the first call traces the model
    processor.reset()
    pace = f"{args.fps:g} fps offered" if args.fps > 0 else "frames as fast as possible"
    print(f"model {model.name}, {settings}, {args.seconds:.0f} s, {pace}; load average {load_average()}")
    print(machine_info().describe())
    print(f"RSS at start: {rss_mb():.1f} MB")

    all_ms: list[float] = []
    window_ms: list[float] = []
    start, cpu_start = time.monotonic(), cpu_seconds()
    window_start, window_cpu = start, cpu_start
    next_report = start + REPORT_EVERY_S
    while (now := time.monotonic()) - start < args.seconds:
        frame = moving_frame(photo, now - start)
        began = time.perf_counter()
        processor.process(frame)
        window_ms.append((time.perf_counter() - began) * 1000)
        session.drain(processor.records)
        if args.fps > 0:  # a camera delivers the next frame 1/fps after this one (none if we are late)
            time.sleep(max(0.0, now + 1 / args.fps - time.monotonic()))
        if now >= next_report:
            cores = (cpu_seconds() - window_cpu) / (now - window_start)
            print(f"{now - start:5.0f} s: {latency_line(window_ms)}; CPU {cores:.2f} cores; RSS {rss_mb():.1f} MB; "
                  f"load {load_average()}", flush=True)
            window_start, window_cpu = now, cpu_seconds()
            all_ms += window_ms
            window_ms = []
            next_report += REPORT_EVERY_S
    all_ms += window_ms

    faces = sum(len(r.faces) for r in session.records)
    wall = time.monotonic() - start
    print(f"overall: {latency_line(all_ms)} ({len(all_ms) / wall:.1f} frames/s)")
    cpu = cpu_seconds() - cpu_start
    cpu_ms_per_frame = 1000 * cpu / max(1, len(all_ms))
    print(f"CPU per stream: {cpu / wall:.2f} cores at {len(all_ms) / wall:.1f} frames/s (process CPU time / wall "
          f"time); {cpu_ms_per_frame:.1f} ms of CPU per frame"
          + (f", so {cpu_ms_per_frame * args.fps / 1000:.2f} cores for {args.fps:g} fps" if args.fps > 0 else "")
          + f"; load average {load_average()}")
    print(f"faces drawn per frame: {faces / max(1, len(session.records)):.2f}; errors: {processor.errors}")
    print(f"RSS at end: {rss_mb():.1f} MB (session kept {len(session.records)} records, as the page would)")


if __name__ == "__main__":
    main()
