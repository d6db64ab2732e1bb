"""Batch analysis throughput on this machine: faces/s of ``batch`` with the local engine, with Ray
and 1 worker, and with Ray and 2 workers, on the same inputs (photos and a clip made from the
astronaut photo, written to a temporary folder).

Two figures per engine: the whole job (starting the workers and loading the model included) and
the steady rate after the first unit came back (the faces of the later units over the time they
took). The CPU, its vector flags and the load average are printed beside them; figures compare
only within one run. Usage: ``python benchmarks/bench_batch.py [--images 48] [--clip-seconds 10]
[--model M]``; it needs ``../shared/data/photos/astronaut.png`` (or ``$FER_SHARED_DATA``) and Ray.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import av
import cv2
import numpy as np

from fer_core.inference.batch import BatchSettings, BatchSummary, Engine, run_batch
from fer_core.machine import machine_info
from fer_core.model_card import default_model_path
from fer_core.settings import AnalysisSettings, default_detector

ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = Path(os.environ.get("FER_SHARED_DATA", ROOT.parent / "shared" / "data"))
CLIP_FPS = 25


def make_inputs(photo: Path, folder: Path, images: int, clip_seconds: float) -> None:
    """``images`` copies of the photo and a 640×480 clip of it drifting across the frame."""
    for i in range(images):
        shutil.copy(photo, folder / f"photo_{i:04d}.png")
    face = cv2.resize(cv2.imread(str(photo)), (240, 240))
    with av.open(str(folder / "clip.mp4"), "w") as container:
        stream = container.add_stream("mpeg4", rate=CLIP_FPS)
        stream.width, stream.height, stream.pix_fmt = 640, 480, "yuv420p"
        for i in range(int(clip_seconds * CLIP_FPS)):
            frame = np.full((480, 640, 3), 90, np.uint8)
            x = 40 + (i * 2) % 320
            frame[120:360, x:x + 240] = face
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="bgr24")))
        container.mux(stream.encode(None))


def timed_run(inputs: Path, out: Path, settings: BatchSettings, engine: Engine | None) -> tuple[BatchSummary, str]:
    """The summary of one run and its steady rate (faces/s after the first unit)."""
    first: dict[str, float] = {}

    def progress(summary: BatchSummary, total: int) -> None:
        if not first:
            first.update(faces=summary.faces, at=time.perf_counter())

    summary = run_batch([inputs], out, settings, engine=engine, progress=progress)
    later = time.perf_counter() - first["at"]
    steady = f"{(summary.faces - first['faces']) / later:6.1f}" if later > 0 else "   n/a"
    return summary, steady


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=48)
    parser.add_argument("--clip-seconds", type=float, default=10.0)
    parser.add_argument("--every", type=int, default=5)
    parser.add_argument("--segment-frames", type=int, default=50)
    parser.add_argument("--model", default=str(default_model_path()))
    args = parser.parse_args(argv)
    photo = SHARED_DATA / "photos" / "astronaut.png"
    if not photo.is_file():
        print(f"{photo} not found", file=sys.stderr)
        return 2
    import ray

    from fer_core.inference.batch_ray import ray_engine, this_package_first

    analysis = AnalysisSettings(model=str(Path(args.model).resolve()), detector=default_detector("batch"))
    settings = BatchSettings(analysis, every=args.every, segment_frames=args.segment_frames)
    print(machine_info())
    print(f"model {Path(args.model).name}; {args.images} photos and a {args.clip_seconds:g} s clip "
          f"(640x480, {CLIP_FPS} fps, every {args.every}th frame, {args.segment_frames}-frame segments)")
    with tempfile.TemporaryDirectory() as tmp:
        inputs = Path(tmp) / "inputs"
        inputs.mkdir()
        make_inputs(photo, inputs, args.images, args.clip_seconds)
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, runtime_env=this_package_first())
        engines = {"local": None, "ray, 1 worker": ray_engine(settings, workers=1),
                   "ray, 2 workers": ray_engine(settings, workers=2)}
        print(f"{'engine':<16}{'faces':>7}{'job s':>8}{'faces/s job':>13}{'faces/s steady':>16}")
        for n, (name, engine) in enumerate(engines.items()):
            summary, steady = timed_run(inputs, Path(tmp) / f"out{n}", settings, engine)
            print(f"{name:<16}{summary.faces:>7}{summary.seconds:>8.1f}{summary.faces / summary.seconds:>13.1f}"
                  f"{steady:>16}")
        ray.shutdown()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
