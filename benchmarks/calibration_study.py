"""Temperature scaling on the validation faces: ECE and NLL against T, and which fitting objective
calibrates faces it was not fitted on.

Prints, for a model's TTA probabilities on PublicTest: ECE (15 bins) and NLL over a grid of T; the
T fitted by NLL and by ECE with their in-sample ECE; then, over ``--splits`` random half/half
splits, the ECE on one half of a T fitted on the other, for both objectives (mean over the splits,
both directions).

Usage: ``python benchmarks/calibration_study.py [--model M] [--data ../shared/data/fer2013] [--splits 10]``
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from fer_core.data import load_dataset
from fer_core.inference.recognizer import EmotionRecognizer, apply_temperature
from fer_core.model_card import PROJECT_ROOT, default_model_path
from fer_core.training.calibration import fit_temperature, negative_log_likelihood
from fer_core.training.metrics import expected_calibration_error

OBJECTIVES = ("nll", "ece")


def held_out_ece(probs: np.ndarray, y: np.ndarray, splits: int) -> dict[str, float]:
    """Mean ECE on one half of a T fitted on the other, per objective (and with no scaling)."""
    errors: dict[str, list[float]] = {name: [] for name in ("none", *OBJECTIVES)}
    for seed in range(splits):
        order = np.random.default_rng(seed).permutation(len(y))
        halves = order[: len(y) // 2], order[len(y) // 2 :]
        for fit, held in (halves, halves[::-1]):
            errors["none"].append(expected_calibration_error(probs[held], y[held]))
            for objective in OBJECTIVES:
                t = fit_temperature(probs[fit], y[fit], objective)
                errors[objective].append(expected_calibration_error(apply_temperature(probs[held], t), y[held]))
    return {name: float(np.mean(values)) for name, values in errors.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="a .keras model (default: the shipped model, or $FER_MODEL)")
    parser.add_argument("--data", type=Path, default=PROJECT_ROOT.parent / "shared" / "data" / "fer2013")
    parser.add_argument("--splits", type=int, default=10)
    args = parser.parse_args(argv)

    recognizer = EmotionRecognizer(args.model or default_model_path())
    data = load_dataset(args.data / "validation", skip_bad_rows=True).data
    y = recognizer.scheme.map_fer(data.labels)
    probs = recognizer.raw_probabilities(data.images[y >= 0], tta=True)
    y = y[y >= 0]
    accuracy = np.mean(probs.argmax(1) == y)
    print(f"model {recognizer.model_path}, {len(y)} validation faces, TTA, accuracy {accuracy:.2%}")
    print(f"{'T':>5} {'ECE':>7} {'NLL':>7}")
    for t in np.round(np.arange(0.7, 1.81, 0.05), 2):
        scaled = apply_temperature(probs, t)
        print(f"{t:>5.2f} {expected_calibration_error(scaled, y):>7.2%} {negative_log_likelihood(scaled, y):>7.4f}")
    print(f"no scaling: ECE {expected_calibration_error(probs, y):.2%}")
    for objective in OBJECTIVES:
        t = fit_temperature(probs, y, objective)
        ece = expected_calibration_error(apply_temperature(probs, t), y)
        print(f"fitted on {objective.upper()}: T {t:.3f}, ECE {ece:.2%}"
              " (in-sample)")
    held = held_out_ece(probs, y, args.splits)
    print(f"held-out halves ({2 * args.splits} fits): ECE without scaling {held['none']:.2%}, "
          f"T fitted on NLL {held['nll']:.2%}, T fitted on ECE {held['ece']:.2%}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
