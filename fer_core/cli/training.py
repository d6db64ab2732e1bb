"""Making models: ``train``, ``sweep``, ``publish``, ``remeasure``, ``export`` and ``ensemble``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from fer_core.cli.common import Parents
from fer_core.tensorflow_start import import_tensorflow

VALIDATION_DATA_HELP = "data with the PublicTest (validation) faces"
MODELS_HELP = "published .keras models"
PROGRESS_CHOICES = [0, 1, 2]


def cmd_train(args: argparse.Namespace) -> int:
    from fer_core.training.options import config_options
    from fer_core.training.train import TrainConfig, run_is_complete, start_fresh, train

    values = {name: opt.value(args) for name, opt in config_options(TrainConfig).items()}
    config = TrainConfig(**values, command=["python", "-m", "fer_core", *sys.argv[1:]])
    if args.fresh:
        start_fresh(args.out)
    elif run_is_complete(args.out):
        print(f"{args.out} holds a completed run; use --fresh to train again")
    best = train(config, verbose=args.progress)
    print(f"best model: {best}")
    return 0


def add_config_options(parser: argparse.ArgumentParser, names: tuple[str, ...] | None = None,
                       helps: dict[str, str] | None = None) -> None:
    """``TrainConfig``'s options (those named in ``names``, default all) on ``parser``, in field order;
    ``helps`` replaces the help of some (a sweep's ``--epochs`` are each trial's)."""
    from fer_core.training.options import config_options
    from fer_core.training.train import TrainConfig

    for name, opt in config_options(TrainConfig).items():
        if names is None or name in names:
            parser.add_argument(opt.flag, **opt.argparse_kwargs((helps or {}).get(name)))


def add_train(sub: argparse._SubParsersAction, parents: Parents) -> None:
    p = sub.add_parser("train", help="train a model (run the same command again to resume)")
    add_config_options(p)
    p.add_argument("--fresh", action="store_true", help="discard a previous run in --out instead of resuming it")
    p.add_argument("--progress", type=int, default=2, choices=PROGRESS_CHOICES,
                   help="Keras output while training: 0 silent, 1 progress bar, 2 a line per epoch (default)")
    # ``train --verbose N`` was the name of --progress before the top-level --verbose existed.
    p.add_argument("--verbose", dest="progress", type=int, choices=PROGRESS_CHOICES, help=argparse.SUPPRESS)
    p.set_defaults(func=cmd_train)


def cmd_sweep(args: argparse.Namespace) -> int:
    """Train one run per grid point, print the summary table and the commands that ensemble the best."""
    from fer_core.training.sweep import GridError, ensemble_commands, read_grid, run_sweep, summary_frame

    try:
        grid = read_grid(args.grid)
    except GridError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.address and args.engine != "ray":
        print("error: --address joins a Ray cluster: add --engine ray", file=sys.stderr)
        return 2
    if args.engine == "local":  # Ray trials import TensorFlow in their own processes
        import_tensorflow()
    outcomes = run_sweep(args.data, args.out, grid, epochs=args.epochs, limit=args.limit, engine=args.engine,
                         address=args.address, max_concurrent=args.max_concurrent,
                         cpus_per_trial=args.cpus_per_trial, gpus_per_trial=args.gpus_per_trial,
                         grace_epochs=args.grace_epochs, num_cpus=args.num_cpus, progress=args.progress)
    print(summary_frame(outcomes).to_string(index=False, max_colwidth=80))
    print(f"wrote {Path(args.out) / 'sweep.csv'} and sweep.json")
    commands = ensemble_commands(outcomes, args.data, args.top, Path(args.out).name)
    if commands:
        print(f"to publish the best (at most {args.top}, --top) and average them into one model:")
        print("\n".join(f"  {c}" for c in commands))
    return 1 if any(o.status.startswith("failed") for o in outcomes) else 0


def add_sweep(sub: argparse._SubParsersAction, parents: Parents) -> None:
    p = sub.add_parser("sweep", parents=[parents.verbose],
                       help="train many runs over a grid of train options (Ray Tune with early stopping, or in turn)")
    add_config_options(p, ("data", "out"),
                       {"out": "sweep folder: one run folder per trial, sweep.csv, sweep.json"})
    p.add_argument("--grid", required=True, metavar="FILE",
                   help="YAML or JSON mapping train options (seed, arch, learning_rate, augmentation, ...) to a "
                        "value or a list of values; every combination is one trial")
    p.add_argument("--engine", default="local", choices=["local", "ray"],
                   help="local: trials one after another in this process, no early stopping (default); "
                        "ray: Ray Tune runs them side by side and ASHA stops the weak ones")
    p.add_argument("--address", help="ray: join this running Ray cluster (e.g. HEAD:6379) instead of an embedded one")
    add_config_options(p, ("epochs", "limit"), {"epochs": "epochs per trial (ASHA's budget)",
                                                "limit": "use at most this many faces per split (quick sweeps)"})
    p.add_argument("--max-concurrent", type=int,
                   help="ray: at most this many trials at once (default: as resources allow)")
    p.add_argument("--cpus-per-trial", type=float, default=1,
                   help="ray: cores reserved per trial; TensorFlow gets as many threads (default 1)")
    p.add_argument("--gpus-per-trial", type=float, default=0, help="ray: GPUs reserved per trial (default 0)")
    p.add_argument("--grace-epochs", type=int, default=1,
                   help="ray: epochs every trial runs before ASHA may stop it (default 1)")
    p.add_argument("--num-cpus", type=int, help="ray without --address: cores the embedded Ray may use (default: all)")
    p.add_argument("--top", type=int, default=3, help="how many of the best trials the printed ensemble commands use")
    p.add_argument("--progress", type=int, default=2, choices=PROGRESS_CHOICES,
                   help="local: Keras output while training (0 silent, 1 progress bar, 2 a line per epoch)")
    p.set_defaults(func=cmd_sweep, uses_tensorflow=False)


def cmd_publish(args: argparse.Namespace) -> int:
    from fer_core.inference.crop import face_crop_card
    from fer_core.training.publish import publish

    dest = publish(args.run, args.data, args.name, face_crop=face_crop_card(), blur_candidates=tuple(args.input_blur))
    print(f"published {dest} with its card, history and evaluation")
    return 0


def add_publish(sub: argparse._SubParsersAction, parents: Parents) -> None:
    from fer_core.training.publish import BLUR_CANDIDATES

    p = sub.add_parser("publish", parents=[parents.verbose],
                       help="ship a training run: models/NAME.keras + card, history, validation evaluation")
    p.add_argument("--run", required=True, help="training run folder (holds best.keras, history.csv)")
    p.add_argument("--data", required=True, help=VALIDATION_DATA_HELP)
    p.add_argument("--name", required=True, help="model name in models/")
    p.add_argument("--input-blur", type=float, nargs="+", default=list(BLUR_CANDIDATES), metavar="SIGMA",
                   help="input-blur sigmas to try on the validation faces (0 = none; the best is kept; "
                        f"default: {' '.join(f'{v:g}' for v in BLUR_CANDIDATES)})")
    p.set_defaults(func=cmd_publish)


def cmd_remeasure(args: argparse.Namespace) -> int:
    from fer_core.training.publish import remeasure

    for model in args.models:
        print(f"measured {remeasure(model, args.data)} again: card, evaluation and views rewritten")
    return 0


def add_remeasure(sub: argparse._SubParsersAction, parents: Parents) -> None:
    p = sub.add_parser("remeasure", parents=[parents.verbose],
                       help="measure published models again on the validation faces (keeps training records)")
    p.add_argument("models", nargs="+", metavar="MODEL", help=MODELS_HELP)
    p.add_argument("--data", required=True, help=VALIDATION_DATA_HELP)
    p.set_defaults(func=cmd_remeasure)


def cmd_export(args: argparse.Namespace) -> int:
    from fer_core.training.export import ExportRejected, export_published

    failed = 0
    for model in args.models:
        try:
            record = export_published(model, args.data, precision=args.precision)
        except ExportRejected as exc:
            print(f"error: {exc}", file=sys.stderr)
            failed += 1
            continue
        print(f"exported {model} → {record.file} ({record.precision}, {record.runtime} {record.runtime_version}): "
              f"max probability difference {record.max_abs_diff:.2e} on {record.n} validation faces, accuracy "
              f"{record.accuracy_exported:.4f} (Keras float32 {record.accuracy_keras:.4f}); card updated")
    return 1 if failed else 0


def add_export(sub: argparse._SubParsersAction, parents: Parents) -> None:
    p = sub.add_parser("export", parents=[parents.verbose],
                       help="export published models to ONNX beside them, shipped only if they match on the "
                            "validation faces")
    p.add_argument("models", nargs="+", metavar="MODEL", help=MODELS_HELP)
    p.add_argument("--data", required=True,
                   help="data with the PublicTest (validation) faces, and Training faces for int8 calibration")
    p.add_argument("--precision", choices=("float32", "int8"), default="float32",
                   help="float32: probabilities within 1e-3 of Keras; int8: static quantisation calibrated on "
                        "training faces, accuracy within 0.3 points (default: float32)")
    p.set_defaults(func=cmd_export)


def cmd_ensemble(args: argparse.Namespace) -> int:
    from fer_core.inference.crop import face_crop_card
    from fer_core.training.publish import publish_ensemble

    dest = publish_ensemble(args.members, args.data, args.name, face_crop=face_crop_card(), tta=args.tta,
                            weights=args.weights)
    print(f"published {dest}: {len(args.members)} members averaged, with its card and evaluation")
    return 0


def add_ensemble(sub: argparse._SubParsersAction, parents: Parents) -> None:
    from fer_core.model_card import ENSEMBLE_TTA
    from fer_core.training.architectures import WEIGHT_DTYPES

    p = sub.add_parser("ensemble", parents=[parents.verbose],
                       help="average published models into one model file (models/NAME.keras + card, evaluation)")
    p.add_argument("members", nargs="+", metavar="MODEL", help="published .keras models with the same classes")
    p.add_argument("--data", required=True, help=VALIDATION_DATA_HELP)
    p.add_argument("--name", required=True, help="model name in models/")
    p.add_argument("--tta", choices=ENSEMBLE_TTA, default="auto",
                   help="auto (default): ten crops when every member was trained on crops of the same size, "
                        "else the mirror image; hflip: the mirror image always (a fifth of ten crops' time); "
                        "none: one view per member (half the mirror image's time)")
    p.add_argument("--weights", choices=WEIGHT_DTYPES, default="float32",
                   help="how the file stores the members' weights: float32 (default), or float16 (half the "
                        "bytes, for many members; still computed in float32)")
    p.set_defaults(func=cmd_ensemble)
