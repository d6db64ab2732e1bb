"""The shipped models side by side on this machine, each through Keras and through its exported file
(ONNX Runtime) where it ships one: batched faces/s (batches of 32 and 256), single-face latency and
a full 640×480 frame with one face (detect with the live camera's default detector → crop → classify, no TTA).

Each repeat times every model in turn, so a change in the machine's load touches them alike; the
CPU's vector flags and the load average are printed beside the figures, which compare only within
one run. Usage: ``python benchmarks/bench_models.py [MODEL ...] [--repeats 30]`` (default: every
model in models/).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from bench_inference import interleaved_ms, recognizers_to_compare, webcam_frame

from fer_core.inference.detect import detector_for
from fer_core.inference.pipeline import analyze_image
from fer_core.machine import machine_info
from fer_core.model_card import list_models

BATCH_SIZES = (32, 256)


def model_labels(paths: list[Path]) -> list[str]:
    """Each model's file stem, or its path as given where two stems are the same (a model against
    an earlier version of itself), so that no row replaces another."""
    stems = [p.stem for p in paths]
    return [str(p.with_suffix("")) if stems.count(p.stem) > 1 else p.stem for p in paths]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("models", nargs="*", help="models to compare (default: every model in models/)")
    parser.add_argument("--repeats", type=int, default=30)
    args = parser.parse_args(argv)

    paths = [Path(p) for p in args.models] or list_models()
    recognizers = {f"{label} {path}": r for label, p in zip(model_labels(paths), paths)
                   for path, r in recognizers_to_compare(p).items()}
    faces = np.random.default_rng(0).integers(0, 256, (256, 48, 48), dtype=np.uint8)
    frame, detector = webcam_frame(), detector_for(use="frame")
    print(f"machine: {machine_info().describe()}")
    batched = {size: interleaved_ms({n: (lambda r=r: r.predict_proba(faces[:size], tta=False))
                                     for n, r in recognizers.items()}, max(5, args.repeats // 3))
               for size in BATCH_SIZES}
    single = interleaved_ms({n: (lambda r=r: r.predict_proba(faces[:1], tta=False)) for n, r in recognizers.items()},
                            args.repeats)
    frames = {n: (lambda r=r: analyze_image(frame, r, detector, tta=False)) for n, r in recognizers.items()}
    full = interleaved_ms(frames, args.repeats)
    print(f"{'model and path':<38}{'params':>10}" + "".join(f"{f'batch {size} faces/s':>19}" for size in BATCH_SIZES)
          + f"{'single face ms':>16}{'640x480 frame ms':>18}")
    for name, recognizer in recognizers.items():
        print(f"{name:<38}{recognizer.model.count_params():>10,}"
              + "".join(f"{size / batched[size][name] * 1000:>19,.0f}" for size in BATCH_SIZES)
              + f"{single[name]:>16.2f}{full[name]:>18.2f}")
    print(f"load average at the end: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
