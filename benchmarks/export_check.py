"""The shipped exported files against their ``.keras`` models on every validation (PublicTest) face:
the full check that the test suite runs on a fixed sample only (``tests/test_export.py``).

Prints, per model, the largest probability difference, both accuracies, their gap and the share of
faces whose decision differs, on all faces and on the suite's sample, so the sample's tolerance can be
judged against the whole split. ``publish`` and ``export`` run the same comparison (with the mirror
images too) before they ship a file.

Usage: ``python benchmarks/export_check.py [MODEL ...] [--data ../shared/data/fer2013]`` (default: the
two shipped models).
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from fer_core.machine import machine_info
from fer_core.model_card import PROJECT_ROOT, ModelCard, shipped_models
from fer_core.training.export import recheck_export, sample_indices, validation_faces


def report(name: str, figures: dict) -> str:
    gap = abs(figures["accuracy_exported"] - figures["accuracy_keras"])
    return (f"  {name:<8} n={figures['n']:<5} max |diff| {figures['max_abs_diff']:.2e}  accuracy keras "
            f"{figures['accuracy_keras']:.2%} exported {figures['accuracy_exported']:.2%} (gap {gap:.2%})  "
            f"decisions differ on {figures['decisions_differ']:.2%}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("models", nargs="*", type=Path, default=shipped_models())
    parser.add_argument("--data", type=Path, default=PROJECT_ROOT.parent / "shared" / "data" / "fer2013")
    args = parser.parse_args(argv)
    print(machine_info().describe())
    for path in args.models:
        faces, y = validation_faces(args.data, ModelCard.load(path))
        start = time.perf_counter()
        full = recheck_export(path, faces, y)
        seconds = time.perf_counter() - start
        sample = sample_indices(len(y))
        print(f"{path.name} ({full['precision']} export, {seconds:.0f} s for all faces)")
        print(report("all", full))
        print(report("sample", recheck_export(path, faces[sample], y[sample])))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
