"""Benchmark: load time of a full-size Kaggle ``fer2013.csv`` (35,887 rows).

Prints the project's vectorised parser (``fer_core.data.load_csv``) next to a naive parse that calls
``float()`` per pixel, as seconds and ratio. Target on the 2-core machine: <= 2 s and >= 20x naive.

    python benchmarks/bench_csv.py [--rows 35887] [--csv existing.csv]
"""

from __future__ import annotations

import argparse
import csv
import tempfile
import time
from pathlib import Path

import numpy as np

from fer_core.data import FaceData, load_csv, write_csv


def build_csv(path: Path, rows: int, seed: int = 0) -> None:
    """A CSV of ``rows`` random faces with the official split sizes' proportions."""
    rng = np.random.default_rng(seed)
    usage = np.array(["Training"] * 28709 + ["PublicTest"] * 3589 + ["PrivateTest"] * 3589)
    data = FaceData(
        rng.integers(0, 256, (rows, 48, 48), dtype=np.uint8),
        rng.integers(0, 7, rows),
        usage[np.arange(rows) % len(usage)],
        np.array([""] * rows),
    )
    write_csv(data, path)


def naive_parse(path: Path) -> np.ndarray:
    """The textbook loop: ``float()`` on every pixel."""
    faces = []
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            faces.append([float(v) for v in row["pixels"].split()])
    return np.array(faces, dtype=np.float32).reshape(-1, 48, 48)


def best_of(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=35887)
    parser.add_argument("--csv", type=Path, help="time this CSV instead of a generated one")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = args.csv or Path(tmp) / "fer2013.csv"
        if args.csv is None:
            build_csv(path, args.rows)
        n = len(load_csv(path).data)
        ours = best_of(lambda: load_csv(path), repeats=3)
        naive = best_of(lambda: naive_parse(path), repeats=1)
    print(f"rows: {n}")
    print(f"fer_core.data.load_csv: {ours:.2f} s")
    print(f"naive float() parse:    {naive:.2f} s")
    print(f"speed-up:               {naive / ours:.1f}x")


if __name__ == "__main__":
    main()
