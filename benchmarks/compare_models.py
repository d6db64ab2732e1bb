"""Is one model really better than another? Both classify the same validation faces; the script
prints each one's accuracy and how many faces only one of them gets right, with the exact McNemar
p-value, without and with test-time augmentation.

Accuracy differences of a few tenths of a point between two FER2013 models are common and mostly
noise: this is the check to run before a new model replaces a shipped one. The models classify
through Keras (the figures in their cards).

Usage: ``python benchmarks/compare_models.py MODEL_A MODEL_B [--data ../shared/data/fer2013]
[--split PublicTest]``
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from fer_core.data import load_dataset, normalise_split
from fer_core.inference.recognizer import EmotionRecognizer
from fer_core.model_card import PROJECT_ROOT
from fer_core.training.metrics import paired_comparison


def labelled_faces(models: list[Path], data: Path,
                   split: str) -> tuple[list[EmotionRecognizer], np.ndarray, np.ndarray]:
    """The models' Keras recognizers, and the faces of ``split`` their classes cover with their labels;
    ``ValueError`` naming two models whose classes differ (their probabilities cannot be compared)."""
    recognizers = [EmotionRecognizer(path, use_export=False) for path in models]
    for path, recognizer in zip(models[1:], recognizers[1:]):
        if recognizer.labels != recognizers[0].labels:
            raise ValueError(f"{path} and {models[0]} have different classes")
    faces = load_dataset(data, skip_bad_rows=True).data.split(normalise_split(split))
    y = recognizers[0].scheme.map_fer(faces.labels)
    keep = y >= 0
    return recognizers, faces.images[keep], y[keep]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("first", type=Path)
    parser.add_argument("second", type=Path)
    parser.add_argument("--data", type=Path, default=PROJECT_ROOT.parent / "shared" / "data" / "fer2013")
    parser.add_argument("--split", default="PublicTest")
    args = parser.parse_args(argv)

    try:
        (first, second), images, y = labelled_faces([args.first, args.second], args.data, args.split)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"{len(y)} {args.split} faces; A = {args.first.name}, B = {args.second.name}")
    for tta in (False, True):
        result = paired_comparison(first.predict_proba(images, tta).argmax(1) == y,
                                   second.predict_proba(images, tta).argmax(1) == y)
        print(f"{'with' if tta else 'without'} TTA: A {result['first_accuracy']:.2%}, "
              f"B {result['second_accuracy']:.2%};"
              f" only A right {result['only_first_right']}, only B right {result['only_second_right']};"
              f" exact McNemar p = {result['p_value']:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
