"""Command line: ``python -m fer_core {summary,train,evaluate,predict,video} ...``."""

from __future__ import annotations

import argparse
import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def cmd_summary(args: argparse.Namespace) -> int:
    from .data import load_dataset, summary_text

    result = load_dataset(args.path, skip_bad_rows=True)
    if args.json:
        payload = {
            "path": str(args.path),
            "counts": result.counts(),
            "total": len(result.data),
            "skipped": [{"source": s.source, "reason": s.reason} for s in result.skipped],
        }
        print(json.dumps(payload, indent=2))
    else:
        print(summary_text(result), end="")
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from .train import TrainConfig, train

    config = TrainConfig(
        data=args.data,
        out=args.out,
        scheme=args.scheme,
        arch=args.arch,
        epochs=args.epochs,
        batch_size=args.batch_size,
        learning_rate=args.lr,
        weight_decay=args.weight_decay,
        label_smoothing=args.label_smoothing,
        class_weights=args.class_weights,
        patience=args.patience,
        precision=args.precision,
        augment=not args.no_augment,
        limit=args.limit,
        seed=args.seed,
        command=["python", "-m", "fer_core", *sys.argv[1:]],
    )
    best = train(config, verbose=args.verbose)
    print(f"best model: {best}")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from .data import load_dataset, normalise_split
    from .evaluate import evaluate_faces, report_text
    from .recognizer import EmotionRecognizer

    recognizer = EmotionRecognizer(args.model)
    loaded = load_dataset(args.data, skip_bad_rows=True)
    for s in loaded.skipped:
        print(f"skipped {s}", file=sys.stderr)
    data = loaded.data
    if args.usage:
        data = data.split(args.usage)
        if len(data) == 0:
            print(f"error: no {normalise_split(args.usage)} faces in {args.data}", file=sys.stderr)
            return 2
    result = evaluate_faces(recognizer, data, tta=not args.no_tta)
    result["data"] = str(args.data)
    result["usage"] = normalise_split(args.usage) if args.usage else "all"
    print(report_text(result), end="")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)
        print(f"wrote {args.json}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    from .models import ARCHITECTURES

    parser = argparse.ArgumentParser(prog="python -m fer_core", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("summary", help="faces per split and class in a Kaggle CSV or an image-folder tree")
    p.add_argument("path")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=cmd_summary)

    p = sub.add_parser("train", help="train a model (run the same command again to resume)")
    p.add_argument("--data", required=True, help="Kaggle CSV or image-folder tree with Training and PublicTest faces")
    p.add_argument("--out", required=True, help="run folder (model, history, backup)")
    p.add_argument("--scheme", default="fer7", help="fer7, fer6, smile or subset:happy,sad,neutral")
    p.add_argument("--arch", default="vgg_compact", choices=sorted(ARCHITECTURES))
    p.add_argument("--epochs", type=int, default=45)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=2e-3, help="peak learning rate (cosine decay after warm-up)")
    p.add_argument("--weight-decay", type=float, default=0.01)
    p.add_argument("--label-smoothing", type=float, default=0.1)
    p.add_argument("--class-weights", action="store_true", help="weigh classes by inverse frequency")
    p.add_argument("--patience", type=int, default=15, help="early-stopping patience in epochs")
    p.add_argument("--precision", default="mixed_bfloat16", choices=["float32", "mixed_bfloat16"])
    p.add_argument("--no-augment", action="store_true")
    p.add_argument("--limit", type=int, help="use at most this many faces per split (quick runs)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--verbose", type=int, default=2, choices=[0, 1, 2], help="0 silent, 1 progress bar, 2 a line per epoch")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("evaluate", help="accuracy, per-class figures and confusion matrix of a model on labelled faces")
    p.add_argument("--model", help="a .keras model (default: the shipped model, or $FER_MODEL)")
    p.add_argument("--data", required=True, help="Kaggle CSV or image-folder tree")
    p.add_argument("--usage", help="only this split: Training, PublicTest (validation) or PrivateTest")
    p.add_argument("--no-tta", action="store_true", help="no test-time augmentation (mirrored copy)")
    p.add_argument("--json", metavar="OUT", help="write the full result as JSON")
    p.set_defaults(func=cmd_evaluate)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
