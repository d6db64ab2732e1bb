"""Command line: ``python -m fer_core {summary,train,sweep,evaluate,predict,video,batch,...} ...``."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from fer_core.inference.results import RecordWriter

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def import_tensorflow_quietly() -> None:
    """Import TensorFlow with file descriptor 2 pointed at /dev/null, then give stderr back.

    TensorFlow's native start-up lines ("All log messages before absl::InitializeLog()…", "Could not
    find cuda drivers…", the oneDNN notice) are written straight to fd 2 before its logging is set up,
    so neither ``TF_CPP_MIN_LOG_LEVEL`` nor Python's ``sys.stderr`` can hold them back. Only the import
    is muted: every later message, ours or TensorFlow's, reaches the terminal. ``--verbose`` skips this,
    and so does another Keras backend (``KERAS_BACKEND=jax train`` on a machine without TensorFlow).
    """
    if "tensorflow" in sys.modules or os.environ.get("KERAS_BACKEND", "tensorflow") != "tensorflow":
        return
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        import tensorflow  # noqa: F401
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def cmd_summary(args: argparse.Namespace) -> int:
    from fer_core.data import load_dataset, summary_text

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
    from fer_core.training.train import TrainConfig, train

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
        augmentation=args.augmentation,
        keep_unresampled=args.keep_unresampled,
        erasing=args.erasing,
        crop=args.crop,
        optimizer=args.optimizer,
        patience=args.patience,
        precision=args.precision,
        augment=not args.no_augment,
        limit=args.limit,
        teacher=args.teacher,
        teacher_weight=args.teacher_weight,
        teacher_temperature=args.teacher_temperature,
        seed=args.seed,
        command=["python", "-m", "fer_core", *sys.argv[1:]],
    )
    from fer_core.training.train import run_is_complete, start_fresh

    if args.fresh:
        start_fresh(args.out)
    elif run_is_complete(args.out):
        print(f"{args.out} holds a completed run; use --fresh to train again")
    best = train(config, verbose=args.progress)
    print(f"best model: {best}")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from fer_core.data import load_dataset, normalise_split
    from fer_core.inference.recognizer import EmotionRecognizer
    from fer_core.training.metrics import evaluate_faces, report_text

    recognizer = EmotionRecognizer(args.model).for_scheme(args.scheme)
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


class TextWriter:
    """The default ``predict`` output: a line per image and one per face, printed as they come
    (failures are on stderr already, so they print nothing here)."""

    def write(self, record: dict) -> None:
        if record["status"] != "ok":
            return
        faces = record["faces"]
        print(f"{record['path']}: {len(faces)} face{'s' if len(faces) != 1 else ''}")
        for face in faces:
            ranked = sorted(face["probabilities"].items(), key=lambda kv: -kv[1])[1:3]
            others = ", ".join(f"{label} {p:.0%}" for label, p in ranked)
            x, y, w, h = face["box"]
            print(f"  face {face['face']} at x={x} y={y} w={w} h={h}: {face['label']} {face['confidence']:.0%} "
                  f"({others})")
        sys.stdout.flush()

    def close(self) -> None:
        sys.stdout.flush()


def _record_writer(args: argparse.Namespace, labels: tuple[str, ...]) -> RecordWriter:
    from fer_core.inference.results import CsvWriter, JsonLinesWriter, JsonListWriter

    if args.jsonl:
        return JsonLinesWriter(sys.stdout)
    if args.json:
        return JsonListWriter(sys.stdout)
    if args.csv:
        return CsvWriter(sys.stdout, labels)
    return TextWriter()


def _annotated_path(folder: Path, source: Path, written: set[str]) -> Path:
    """``folder/<stem>_annotated.png``, numbered ``_2``, ``_3``… when two inputs share a stem."""
    stem, n = f"{source.stem}_annotated", 1
    while (name := stem + (f"_{n}" if n > 1 else "") + ".png") in written:
        n += 1
    written.add(name)
    return folder / name


def _predict_file(path: Path, recognizer, detector, args: argparse.Namespace, written: set[str]) -> list:
    """The faces of one image (the whole image as one face with ``--whole-image``), annotated copy
    written with ``--annotate``; raises whatever goes wrong, for the caller to report."""
    from fer_core.inference.draw import annotate
    from fer_core.inference.images import encode_png, read_image
    from fer_core.inference.pipeline import find_faces

    image = read_image(path)
    results = find_faces(image, recognizer, tta=not args.no_tta, whole_image=args.whole_image, detector=detector)
    if args.annotate:
        out = _annotated_path(Path(args.annotate), path, written)
        out.write_bytes(encode_png(annotate(image, results, emoji=args.emoji, bars=args.bars)))
    return results


def cmd_predict(args: argparse.Namespace) -> int:
    """Every input gets a record (paths that do not exist first, then the files found, in order):
    the faces found, or the reason it could not be used.

    A failure of one file, whatever it is, is reported (``error: FILE: reason`` on stderr and a
    record with ``status: error``) and the run goes on; the exit code is 1 when any input failed.
    """
    import traceback

    from fer_core.inference.detect import detector_for
    from fer_core.inference.images import failure_reason, find_images
    from fer_core.inference.recognizer import EmotionRecognizer
    from fer_core.inference.results import error_record, image_record

    files, missing = find_images(args.paths)
    recognizer = EmotionRecognizer(args.model).for_scheme(args.scheme)
    detector = None if args.whole_image else detector_for(args.detector, "photo")
    if args.annotate:
        Path(args.annotate).mkdir(parents=True, exist_ok=True)
    writer = _record_writer(args, recognizer.labels)
    failed = faceless = 0
    written: set[str] = set()

    def fail(path: str, reason: str) -> None:
        nonlocal failed
        failed += 1
        print(f"error: {path}: {reason}", file=sys.stderr, flush=True)
        writer.write(error_record(path, reason))

    done = 0
    try:
        for path in missing:
            fail(str(path), "no such file or folder")
        for path in files:
            try:
                results = _predict_file(path, recognizer, detector, args, written)
            except Exception as exc:  # noqa: BLE001 - one bad input must not cost the others their results
                if args.verbose:
                    traceback.print_exc()
                fail(str(path), failure_reason(str(path), exc))
            else:
                faceless += not results
                writer.write(image_record(str(path), results))
            done += 1
    except KeyboardInterrupt:
        print(f"interrupted after {done} of {len(files)} file(s); the results printed so far are complete",
              file=sys.stderr)
        return 130
    finally:
        writer.close()  # the JSON list is printed even when the run is interrupted
    if faceless:
        print(f"{faceless} image(s) without a detected face; for pictures that are already a cropped face use "
              "--whole-image", file=sys.stderr)
    if failed:
        print(f"{failed} of {len(files) + len(missing)} input(s) could not be used", file=sys.stderr)
    return 1 if failed else 0


def _progress_printer():
    """A progress callback on stderr: one rewritten line on a terminal, a line per 10% otherwise."""
    stream = sys.stderr
    last = {"percent": -1}

    def report(done: int, total: int) -> None:
        percent = int(100 * done / total) if total else -1
        if stream.isatty():
            print(f"\ranalysing: frame {done}" + (f"/{total} ({percent}%)" if total else ""), end="", file=stream,
                  flush=True)
        elif percent // 10 != last["percent"] // 10 or not total:
            print(f"analysing: frame {done}" + (f"/{total} ({percent}%)" if total else ""), file=stream, flush=True)
        last["percent"] = percent

    return report


def cmd_video(args: argparse.Namespace) -> int:
    from fer_core.inference.detect import detector_for
    from fer_core.inference.recognizer import EmotionRecognizer
    from fer_core.inference.video import VideoError, analyze_video

    recognizer = EmotionRecognizer(args.model).for_scheme(args.scheme)
    detector = detector_for(args.detector, "photo")
    try:
        analysis = analyze_video(args.input, recognizer, every=args.every, annotate_path=args.annotate,
                                 progress=_progress_printer(), tta=not args.no_tta, max_seconds=args.max_seconds,
                                 emoji=args.emoji, detector=detector)
    except VideoError as exc:
        print(f"\nerror: {exc}", file=sys.stderr)
        return 2
    if sys.stderr.isatty():
        print(file=sys.stderr)
    if analysis.error:
        print(f"error: {args.input}: {analysis.error}", file=sys.stderr)
    table = analysis.to_frame()
    print(f"{args.input}: {analysis.frames_read} frames at {analysis.fps:.2f} fps, "
          f"{analysis.frames_analyzed} analysed, {len(table)} face detections"
          + (" (stopped early: the frames before the error)" if analysis.error else ""))
    main_face = table[table["face"] == 1]
    if len(main_face):
        shares = main_face["label"].value_counts(normalize=True)
        print("main face (largest) top emotion over the analysed frames: "
              + ", ".join(f"{label} {share:.0%}" for label, share in shares.items()))
    if args.csv:
        table.to_csv(args.csv, index=False)
        print(f"wrote {args.csv}")
    if analysis.annotated_path:
        print(f"wrote {analysis.annotated_path}")
    return 1 if analysis.error else 0


def cmd_batch(args: argparse.Namespace) -> int:
    """Every input into the Parquet folder ``--out``; run again to resume. Exit 1 when any input failed."""
    from fer_core.inference.batch import BatchError, BatchSettings, progress_line, run_batch
    from fer_core.model_card import default_model_path

    model = str(Path(args.model or default_model_path()).resolve())
    settings = BatchSettings(model=model, every=args.every, tta=not args.no_tta, scheme=args.scheme,
                             segment_frames=args.segment_frames, detector=args.detector)
    engine = None
    if args.engine == "ray":  # the workers load TensorFlow; this process only writes their rows
        from fer_core.inference.batch_ray import ray_engine

        engine = ray_engine(settings, workers=args.workers, address=args.address)
    elif not args.verbose:
        import_tensorflow_quietly()
    try:
        summary = run_batch(args.inputs, args.out, settings, engine=engine, progress=progress_line())
    except BatchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if summary.skipped:
        print(f"{summary.skipped} item(s) finished by an earlier run were skipped")
    print(f"{args.out}: {summary.items} item(s) analysed in {summary.seconds:.1f} s, {summary.faces} faces "
          f"({summary.faces / summary.seconds if summary.seconds else 0:.1f} faces/s), {summary.failed} failed")
    return 1 if summary.failed else 0


def cmd_publish(args: argparse.Namespace) -> int:
    from fer_core.inference.crop import face_crop_card
    from fer_core.training.publish import publish

    dest = publish(args.run, args.data, args.name, face_crop=face_crop_card(), blur_candidates=tuple(args.input_blur))
    print(f"published {dest} with its card, history and evaluation")
    return 0


def cmd_remeasure(args: argparse.Namespace) -> int:
    from fer_core.training.publish import remeasure

    for model in args.models:
        print(f"measured {remeasure(model, args.data)} again: card, evaluation and views rewritten")
    return 0


def cmd_ensemble(args: argparse.Namespace) -> int:
    from fer_core.inference.crop import face_crop_card
    from fer_core.training.publish import publish_ensemble

    dest = publish_ensemble(args.members, args.data, args.name, face_crop=face_crop_card(), tta=args.tta,
                            weights=args.weights)
    print(f"published {dest}: {len(args.members)} members averaged, with its card and evaluation")
    return 0


def _add_detector_option(parser: argparse.ArgumentParser) -> None:
    from fer_core.inference.detect import DEFAULT_DETECTOR, DETECTOR_NAMES

    parser.add_argument("--detector", choices=DETECTOR_NAMES, default=DEFAULT_DETECTOR,
                        help=f"face detector: yunet or blazeface (CNNs: find tilted, turned and unevenly lit faces) "
                             f"or haar (OpenCV's 2001 cascade, frontal faces only); default {DEFAULT_DETECTOR}")


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
    if args.engine == "local" and not args.verbose:  # Ray trials import TensorFlow in their own processes
        import_tensorflow_quietly()
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


def positive_int(text: str) -> int:
    """An argparse type: an integer of at least 1."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text} is not a positive integer")
    return value


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


def build_parser() -> argparse.ArgumentParser:
    from fer_core.model_card import ENSEMBLE_TTA
    from fer_core.training.architectures import ARCHITECTURES, WEIGHT_DTYPES
    from fer_core.training.augment import AUGMENTATIONS
    from fer_core.training.publish import BLUR_CANDIDATES
    from fer_core.training.train import OPTIMIZERS, PRECISIONS, TrainConfig

    verbose_help = "show TensorFlow's start-up messages and the traceback of each failed input"
    parser = argparse.ArgumentParser(prog="python -m fer_core", description=__doc__)
    parser.add_argument("--verbose", action="store_true", help=verbose_help)
    parser.set_defaults(uses_tensorflow=True)
    # The same flag after the command name; SUPPRESS keeps a --verbose given before it.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--verbose", action="store_true", default=argparse.SUPPRESS, help=verbose_help)
    classify = argparse.ArgumentParser(add_help=False)  # the options of every command that classifies faces
    classify.add_argument("--model", help="a .keras model (default: the shipped model, or $FER_MODEL)")
    classify.add_argument("--no-tta", action="store_true", help="no test-time augmentation (mirrored copy)")
    classify.add_argument("--scheme", help="classes to report: the model's own (default) or a view of them, "
                                           "e.g. smile (happy vs. not, at the threshold chosen on validation)")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("summary", parents=[common],
                       help="faces per split and class in a Kaggle CSV or an image-folder tree")
    p.add_argument("path")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=cmd_summary, uses_tensorflow=False)

    p = sub.add_parser("train", help="train a model (run the same command again to resume)")
    recipe = TrainConfig(data="", out="")  # the defaults of a training run
    p.add_argument("--data", required=True, help="Kaggle CSV or image-folder tree with Training and PublicTest faces")
    p.add_argument("--out", required=True, help="run folder (model, history, backup)")
    p.add_argument("--scheme", default=recipe.scheme, help="fer7, fer6, smile or subset:happy,sad,neutral")
    p.add_argument("--arch", default=recipe.arch, choices=sorted(ARCHITECTURES))
    p.add_argument("--epochs", type=int, default=recipe.epochs)
    p.add_argument("--batch-size", type=int, default=recipe.batch_size)
    p.add_argument("--lr", type=float, default=recipe.learning_rate,
                   help="peak learning rate (cosine decay after warm-up)")
    p.add_argument("--weight-decay", type=float, default=recipe.weight_decay)
    p.add_argument("--label-smoothing", type=float, default=recipe.label_smoothing)
    p.add_argument("--class-weights", action="store_true", help="weigh classes by inverse frequency")
    p.add_argument("--patience", type=int, default=recipe.patience, help="early-stopping patience in epochs")
    p.add_argument("--precision", default=recipe.precision, choices=PRECISIONS,
                   help="auto (default): bf16 mixed precision on a GPU or a CPU with native bf16, else float32")
    p.add_argument("--no-augment", action="store_true")
    p.add_argument("--augmentation", default=recipe.augmentation, choices=AUGMENTATIONS,
                   help="one_pass: rotation, zoom and shift in a single resampling (default); "
                        "three_pass: the Keras layers of the first shipped model")
    p.add_argument("--keep-unresampled", type=float, default=recipe.keep_unresampled,
                   help=f"one_pass: share of faces only flipped, never resampled (default {recipe.keep_unresampled:g})")
    p.add_argument("--erasing", type=float, default=recipe.erasing,
                   help="probability of random erasing per face (e.g. 0.5)")
    p.add_argument("--crop", type=int, default=recipe.crop,
                   help="random crops: the net sees the central 48 - 2*CROP pixels and each training face is "
                        "shifted by up to CROP pixels; published with ten-crop test-time augmentation "
                        "(e.g. 4 for 40-pixel crops; default 0, the whole face)")
    p.add_argument("--optimizer", default=recipe.optimizer, choices=OPTIMIZERS,
                   help="sgd = Nesterov momentum 0.9")
    p.add_argument("--limit", type=int, help="use at most this many faces per split (quick runs)")
    p.add_argument("--teacher", help="distil a published model (e.g. models/vgg_ensemble6w_fer7.keras): its "
                                     "softened probabilities are mixed into each training target")
    p.add_argument("--teacher-weight", type=float, default=recipe.teacher_weight,
                   help=f"share of the teacher in the target (default {recipe.teacher_weight:g})")
    p.add_argument("--teacher-temperature", type=float, default=recipe.teacher_temperature,
                   help=f"softens the teacher's probabilities (default {recipe.teacher_temperature:g})")
    p.add_argument("--seed", type=int, default=recipe.seed)
    p.add_argument("--fresh", action="store_true", help="discard a previous run in --out instead of resuming it")
    p.add_argument("--progress", type=int, default=2, choices=[0, 1, 2],
                   help="Keras output while training: 0 silent, 1 progress bar, 2 a line per epoch (default)")
    # ``train --verbose N`` was the name of --progress before the top-level --verbose existed.
    p.add_argument("--verbose", dest="progress", type=int, choices=[0, 1, 2], help=argparse.SUPPRESS)
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("sweep", parents=[common],
                       help="train many runs over a grid of train options (Ray Tune with early stopping, or in turn)")
    p.add_argument("--data", required=True, help="Kaggle CSV or image-folder tree with Training and PublicTest faces")
    p.add_argument("--out", required=True, help="sweep folder: one run folder per trial, sweep.csv, sweep.json")
    p.add_argument("--grid", required=True, metavar="FILE",
                   help="YAML or JSON mapping train options (seed, arch, learning_rate, augmentation, ...) to a "
                        "value or a list of values; every combination is one trial")
    p.add_argument("--engine", default="local", choices=["local", "ray"],
                   help="local: trials one after another in this process, no early stopping (default); "
                        "ray: Ray Tune runs them side by side and ASHA stops the weak ones")
    p.add_argument("--address", help="ray: join this running Ray cluster (e.g. HEAD:6379) instead of an embedded one")
    p.add_argument("--epochs", type=int, default=recipe.epochs, help="epochs per trial (ASHA's budget)")
    p.add_argument("--limit", type=int, help="use at most this many faces per split (quick sweeps)")
    p.add_argument("--max-concurrent", type=int,
                   help="ray: at most this many trials at once (default: as resources allow)")
    p.add_argument("--cpus-per-trial", type=float, default=1,
                   help="ray: cores reserved per trial; TensorFlow gets as many threads (default 1)")
    p.add_argument("--gpus-per-trial", type=float, default=0, help="ray: GPUs reserved per trial (default 0)")
    p.add_argument("--grace-epochs", type=int, default=1,
                   help="ray: epochs every trial runs before ASHA may stop it (default 1)")
    p.add_argument("--num-cpus", type=int, help="ray without --address: cores the embedded Ray may use (default: all)")
    p.add_argument("--top", type=int, default=3, help="how many of the best trials the printed ensemble commands use")
    p.add_argument("--progress", type=int, default=2, choices=[0, 1, 2],
                   help="local: Keras output while training (0 silent, 1 progress bar, 2 a line per epoch)")
    p.set_defaults(func=cmd_sweep, uses_tensorflow=False)

    p = sub.add_parser("evaluate", parents=[common, classify],
                       help="accuracy, per-class figures and confusion matrix of a model on labelled faces")
    p.add_argument("--data", required=True, help="Kaggle CSV or image-folder tree")
    p.add_argument("--usage", help="only this split: Training, PublicTest (validation) or PrivateTest")
    p.add_argument("--json", metavar="OUT", help="write the full result as JSON")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("publish", parents=[common],
                       help="ship a training run: models/NAME.keras + card, history, validation evaluation")
    p.add_argument("--run", required=True, help="training run folder (holds best.keras, history.csv)")
    p.add_argument("--data", required=True, help="data with the PublicTest (validation) faces")
    p.add_argument("--name", required=True, help="model name in models/")
    p.add_argument("--input-blur", type=float, nargs="+", default=list(BLUR_CANDIDATES), metavar="SIGMA",
                   help="input-blur sigmas to try on the validation faces (0 = none; the best is kept; "
                        f"default: {' '.join(f'{v:g}' for v in BLUR_CANDIDATES)})")
    p.set_defaults(func=cmd_publish)

    p = sub.add_parser("remeasure", parents=[common],
                       help="measure published models again on the validation faces (keeps training records)")
    p.add_argument("models", nargs="+", metavar="MODEL", help="published .keras models")
    p.add_argument("--data", required=True, help="data with the PublicTest (validation) faces")
    p.set_defaults(func=cmd_remeasure)

    p = sub.add_parser("export", parents=[common],
                       help="export published models to ONNX beside them, shipped only if they match on the "
                            "validation faces")
    p.add_argument("models", nargs="+", metavar="MODEL", help="published .keras models")
    p.add_argument("--data", required=True,
                   help="data with the PublicTest (validation) faces, and Training faces for int8 calibration")
    p.add_argument("--precision", choices=("float32", "int8"), default="float32",
                   help="float32: probabilities within 1e-3 of Keras; int8: static quantisation calibrated on "
                        "training faces, accuracy within 0.3 points (default: float32)")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("ensemble", parents=[common],
                       help="average published models into one model file (models/NAME.keras + card, evaluation)")
    p.add_argument("members", nargs="+", metavar="MODEL", help="published .keras models with the same classes")
    p.add_argument("--data", required=True, help="data with the PublicTest (validation) faces")
    p.add_argument("--name", required=True, help="model name in models/")
    p.add_argument("--tta", choices=ENSEMBLE_TTA, default="auto",
                   help="auto (default): ten crops when every member was trained on crops of the same size, "
                        "else the mirror image; hflip: the mirror image always (a fifth of ten crops' time); "
                        "none: one view per member (half the mirror image's time)")
    p.add_argument("--weights", choices=WEIGHT_DTYPES, default="float32",
                   help="how the file stores the members' weights: float32 (default), or float16 (half the "
                        "bytes, for many members; still computed in float32)")
    p.set_defaults(func=cmd_ensemble)

    p = sub.add_parser("predict", parents=[common, classify],
                       help="find the faces in images and classify their emotions")
    p.add_argument("paths", nargs="+", metavar="PATH", help="image files, or folders (searched recursively)")
    fmt = p.add_mutually_exclusive_group()
    fmt.add_argument("--jsonl", action="store_true",
                     help="print JSON Lines: one object per input as soon as it is done (status ok or error)")
    fmt.add_argument("--json", action="store_true", help="print a JSON list at the end, one object per input")
    fmt.add_argument("--csv", action="store_true",
                     help="print CSV as it goes: one row per face, one row for an input without a face or in error")
    p.add_argument("--annotate", metavar="OUTDIR", help="write <name>_annotated.png of each image to OUTDIR")
    p.add_argument("--emoji", action="store_true", help="annotated images: an emoji over each face")
    p.add_argument("--bars", action="store_true", help="annotated images: probability bars beside each face")
    p.add_argument("--whole-image", action="store_true",
                   help="no face detection: classify each image as one face (for already cropped faces)")
    _add_detector_option(p)
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser("video", parents=[common, classify], help="emotions over time in a video clip (every Nth frame)")
    p.add_argument("input", metavar="IN", help="a video file (mp4, mov, webm, avi, ...)")
    p.add_argument("--csv", metavar="OUT", help="write one row per face per analysed frame")
    p.add_argument("--annotate", metavar="OUT.mp4", help="write an annotated copy of the clip")
    p.add_argument("--emoji", action="store_true", help="annotated copy: an emoji over each face")
    p.add_argument("--every", type=int, default=5, metavar="N", help="analyse every Nth frame (default 5)")
    p.add_argument("--max-seconds", type=float, help="stop after this many seconds of the clip")
    _add_detector_option(p)
    p.set_defaults(func=cmd_video)

    from fer_core.inference.batch import SEGMENT_FRAMES

    p = sub.add_parser("batch", parents=[common, classify],
                       help="images and videos into a Parquet table of faces (resumable; local or on Ray)")
    p.add_argument("inputs", nargs="+", metavar="INPUT",
                   help="image or video files, folders (searched recursively), or .txt files listing paths")
    p.add_argument("--out", required=True, metavar="RESULTS",
                   help="results folder of Parquet parts; run the same command again to resume")
    p.add_argument("--engine", choices=["local", "ray"], default="local",
                   help="local: in this process (default); ray: Ray workers, one model each")
    p.add_argument("--address", help="--engine ray: join the Ray cluster there (default: start a local Ray)")
    p.add_argument("--workers", type=positive_int, metavar="N",
                   help="--engine ray: worker count (default: one per CPU)")
    p.add_argument("--every", type=positive_int, default=5, metavar="N",
                   help="videos: analyse every Nth frame (default 5)")
    p.add_argument("--segment-frames", type=positive_int, default=SEGMENT_FRAMES, metavar="N",
                   help=f"videos: frames per unit of work and of resuming (default {SEGMENT_FRAMES})")
    _add_detector_option(p)
    p.set_defaults(func=cmd_batch, uses_tensorflow=False)
    return parser


def main(argv: list[str] | None = None) -> int:
    from fer_core.data import DataError
    from fer_core.inference.detect import DetectorError

    args = build_parser().parse_args(argv)
    if args.uses_tensorflow and not args.verbose:
        import_tensorflow_quietly()
    try:
        return args.func(args)
    except (DataError, DetectorError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2

