"""Which shipped models make the best ensemble, and how much of the best subset's lead is luck?

Every model classifies the validation faces once; every subset of them (of ``--min-size`` members
or more) is then scored as the ensemble ``python -m fer_core ensemble`` would build from it: the
mean of its members' probabilities, with ten-crop test-time augmentation when every member was
trained on crops of the same size and the mirror image otherwise (``publish.ensemble_tta``).
The script prints the best subsets by accuracy, with macro F1 and the exact McNemar p-value
against the best single member.

Picking the best of many subsets on the faces that score them flatters the winner. The last
lines measure by how much: the validation faces are split in two halves (stratified by class),
the best subset is chosen on one half and scored on the other, both ways round. The figure on the
unseen half is the one to expect of that choice on new faces.

Usage: ``python benchmarks/ensemble_study.py MODEL... [--data ../shared/data/fer2013]
[--split PublicTest] [--min-size 2] [--max-size N] [--tta auto hflip none] [--top 10] [--keras]``
"""

from __future__ import annotations

import argparse
import itertools
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from compare_models import labelled_faces

from fer_core.inference.recognizer import EmotionRecognizer
from fer_core.model_card import ENSEMBLE_TTA, PROJECT_ROOT
from fer_core.training.metrics import paired_comparison, summarise_predictions


@dataclass
class MemberProbs:
    """One model's raw validation probabilities under each test-time augmentation it can take."""

    name: str
    crop: int
    plain: np.ndarray
    hflip: np.ndarray
    ten_crop: np.ndarray | None  # only for a model trained on crops


def member_probs(path: Path, images: np.ndarray, use_export: bool) -> MemberProbs:
    recognizer = EmotionRecognizer(path, use_export=use_export)
    crop = recognizer.card.tta_crop if recognizer.card.tta == "ten_crop" else 0
    ten_crop = recognizer.raw_probabilities(images, "ten_crop") if crop else None
    return MemberProbs(path.stem, crop, recognizer.raw_probabilities(images, tta=False),
                       recognizer.raw_probabilities(images, "hflip"), ten_crop)


def ensemble_probs(members: tuple[MemberProbs, ...], tta: str = "auto") -> np.ndarray:
    """The subset's averaged probabilities: with ``auto`` under the TTA ``publish.ensemble_tta``
    would give it, else with the mirror image (``hflip``) or one view per member (``none``), the
    cheaper choices when a frame's time budget is tight."""
    if tta == "auto":
        crops = {m.crop for m in members}
        tta = "ten_crop" if len(crops) == 1 and crops.pop() > 0 else "hflip"
    return np.mean([{"ten_crop": m.ten_crop, "hflip": m.hflip, "none": m.plain}[tta] for m in members], axis=0)


def subsets(members: list[MemberProbs], min_size: int, max_size: int | None = None) -> list[tuple[MemberProbs, ...]]:
    largest = len(members) if max_size is None else min(max_size, len(members))
    return [combo for size in range(min_size, largest + 1) for combo in itertools.combinations(members, size)]


def stratified_halves(y: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Two boolean masks splitting the faces in halves with the same class mix."""
    rng = np.random.default_rng(seed)
    first = np.zeros(len(y), bool)
    for c in np.unique(y):
        idx = rng.permutation(np.flatnonzero(y == c))
        first[idx[: len(idx) // 2]] = True
    return first, ~first


def subset_name(combo: tuple[MemberProbs, ...]) -> str:
    return " + ".join(m.name for m in combo)


def report(members: list[MemberProbs], y: np.ndarray, labels: list[str], tta: str,
           args: argparse.Namespace) -> None:
    """The singles, the best subsets and the split-half check, all under test-time augmentation ``tta``."""
    print(f"\ntest-time augmentation: {tta}")
    for member in members:
        single = summarise_predictions(ensemble_probs((member,), tta), y, labels)
        print(f"  {member.name}: {single['accuracy']:.2%}, macro F1 {single['macro_f1']:.3f}")
    best_single = max(members, key=lambda m: (ensemble_probs((m,), tta).argmax(1) == y).mean())
    single_right = ensemble_probs((best_single,), tta).argmax(1) == y

    combos = subsets(members, args.min_size, args.max_size)
    right = np.array([ensemble_probs(combo, tta).argmax(1) == y for combo in combos])
    order = np.argsort(-right.mean(axis=1), kind="stable")
    print(f"{len(combos)} subsets; the {min(args.top, len(combos))} most accurate "
          f"(p: exact McNemar against the best single member, {best_single.name}):")
    for i in order[: args.top]:
        figures = summarise_predictions(ensemble_probs(combos[i], tta), y, labels)
        p = paired_comparison(right[i], single_right)["p_value"]
        print(f"  {figures['accuracy']:.2%}  F1 {figures['macro_f1']:.3f}  p {p:.3f}  {subset_name(combos[i])}")
    everyone = summarise_predictions(ensemble_probs(tuple(members), tta), y, labels)
    print(f"all {len(members)} members: {everyone['accuracy']:.2%}, macro F1 {everyone['macro_f1']:.3f}")

    print("chosen on one half, scored on the other (the lead that survives new faces):")
    halves = stratified_halves(y, args.seed)
    for chosen_on, scored_on in ((0, 1), (1, 0)):
        pick = int(np.argmax(right[:, halves[chosen_on]].mean(axis=1)))  # ties: the fewest members
        seen, unseen = right[pick, halves[chosen_on]].mean(), right[pick, halves[scored_on]].mean()
        best_there = right[:, halves[scored_on]].mean(axis=1).max()
        print(f"  half {chosen_on + 1} picks {subset_name(combos[pick])}: {seen:.2%} there, {unseen:.2%} on "
              f"half {scored_on + 1} (whose own best is {best_there:.2%}; best single there "
              f"{single_right[halves[scored_on]].mean():.2%})")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("models", type=Path, nargs="+")
    parser.add_argument("--data", type=Path, default=PROJECT_ROOT.parent / "shared" / "data" / "fer2013")
    parser.add_argument("--split", default="PublicTest")
    parser.add_argument("--min-size", type=int, default=2)
    parser.add_argument("--max-size", type=int, default=None, help="largest subset scored (default: all)")
    parser.add_argument("--tta", choices=ENSEMBLE_TTA, nargs="+", default=["auto"],
                        help="one report per choice: auto, the ensemble command's TTA (ten crops when every "
                             "member shares its crop, else the mirror image); hflip or none for a tighter "
                             "time budget")
    parser.add_argument("--top", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0, help="seed of the split into halves")
    parser.add_argument("--keras", action="store_true", help="classify through Keras, not the exported files")
    args = parser.parse_args(argv)
    if len(args.models) < args.min_size:
        print(f"error: {len(args.models)} models cannot make a subset of {args.min_size}", file=sys.stderr)
        return 2

    try:
        (first, *_), images, y = labelled_faces(args.models, args.data, args.split)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"{len(y)} {args.split} faces, {len(args.models)} models")

    members = [member_probs(path, images, use_export=not args.keras) for path in args.models]
    for tta in args.tta:
        report(members, y, first.labels, tta, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
