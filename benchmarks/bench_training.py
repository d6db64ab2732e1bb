"""Benchmark: training throughput (images/s) of an architecture in float32 and bf16 mixed precision.

Times ``model.fit`` on random 48×48 faces (the speed does not depend on the pixels), after one
warm-up fit, and prints the network's size (parameters, multiply-adds per face), images/s, seconds
per training step and the implied seconds per FER2013 epoch (28,709 faces).

    python benchmarks/bench_training.py [--arch vgg_compact] [--crop 4] [--width 40] [--batches 20]
        [--batch-size 128] [--precisions float32 mixed_bfloat16]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
TRAIN_FACES = 28709


def network_size(arch: str, crop: int, width: int) -> str:
    """The network's parameters and multiply-adds per face (convolutions and dense layers)."""
    from fer_core.inference.speed import model_flops
    from fer_core.training.architectures import build_model

    model = build_model(arch, 7, crop, width)
    return (f"{model.name}: {model.count_params() / 1e6:.2f} M parameters, "
            f"{model_flops(model) / 2e6:.0f} M multiply-adds per face ({48 - 2 * crop}-pixel input)")


def measure(arch: str, crop: int, width: int, precision: str, batches: int, batch_size: int) -> float:
    """Images per second of ``fit`` for one precision policy (run in its own process by ``main``)."""
    import keras
    import numpy as np

    from fer_core.training.architectures import build_model

    keras.mixed_precision.set_global_policy(precision)
    model = build_model(arch, 7, crop, width)
    model.compile(optimizer=keras.optimizers.AdamW(1e-3), loss="categorical_crossentropy")
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (batches * batch_size, 48, 48, 1)).astype("float32")
    y = keras.utils.to_categorical(rng.integers(0, 7, len(x)), 7)
    model.fit(x[: 3 * batch_size], y[: 3 * batch_size], batch_size=batch_size, verbose=0)
    start = time.perf_counter()
    model.fit(x, y, batch_size=batch_size, verbose=0)
    return len(x) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", default="vgg_compact")
    parser.add_argument("--crop", type=int, default=0, help="pixels per side the net centre-crops (train --crop)")
    parser.add_argument("--width", type=int, default=0, help="first-stage channels (train --width; 0: default)")
    parser.add_argument("--batches", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--precisions", nargs="+", default=["float32", "mixed_bfloat16"],
                        choices=["float32", "mixed_bfloat16"])
    parser.add_argument("--precision", help=argparse.SUPPRESS)  # internal: measure one policy
    args = parser.parse_args()
    network = ["--arch", args.arch, "--crop", str(args.crop), "--width", str(args.width)]
    if args.precision:
        print(measure(args.arch, args.crop, args.width, args.precision, args.batches, args.batch_size))
        return
    from fer_core.machine import machine_info
    from fer_core.training.train import resolve_precision

    machine = machine_info()
    print(f"{args.arch}, batch {args.batch_size}, {args.batches} batches; {machine.describe()}")
    print(network_size(args.arch, args.crop, args.width))
    print(f"train --precision auto picks {resolve_precision('auto', [], machine.flags)} on this CPU (without a GPU)")
    for precision in args.precisions:
        # A fresh process per policy: the global policy and oneDNN kernels do not leak between runs.
        out = subprocess.run([sys.executable, __file__, *network, "--batches", str(args.batches),
                              "--batch-size", str(args.batch_size), "--precision", precision],
                             capture_output=True, text=True, check=True)
        rate = float(out.stdout.strip().splitlines()[-1])
        print(f"{precision:>15}: {rate:7.0f} images/s, {args.batch_size / rate:6.3f} s per step  "
              f"({TRAIN_FACES / rate:5.0f} s per FER2013 epoch)")
    print(f"load average at the end: {' '.join(f'{v:.2f}' for v in machine_info().load)}")


if __name__ == "__main__":
    main()
