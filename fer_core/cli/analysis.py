"""Analysing faces with a published model: ``evaluate``, ``predict``, ``video`` and ``batch``."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from fer_core.cli.common import (
    Parents,
    add_detector_option,
    analysis_settings,
    import_tensorflow_quietly,
    positive_int,
    recognizer_for,
)

if TYPE_CHECKING:
    from fer_core.inference.results import RecordWriter


def cmd_evaluate(args: argparse.Namespace) -> int:
    from fer_core.data import load_dataset, normalise_split
    from fer_core.training.metrics import evaluate_faces, report_text

    settings = analysis_settings(args)
    recognizer = recognizer_for(settings)
    loaded = load_dataset(args.data, skip_bad_rows=True)
    for s in loaded.skipped:
        print(f"skipped {s}", file=sys.stderr)
    data = loaded.data
    if args.usage:
        data = data.split(args.usage)
        if len(data) == 0:
            print(f"error: no {normalise_split(args.usage)} faces in {args.data}", file=sys.stderr)
            return 2
    result = evaluate_faces(recognizer, data, tta=settings.tta)
    result["data"] = str(args.data)
    result["usage"] = normalise_split(args.usage) if args.usage else "all"
    print(report_text(result), end="")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)
        print(f"wrote {args.json}")
    return 0


def add_evaluate(sub: argparse._SubParsersAction, parents: Parents) -> None:
    p = sub.add_parser("evaluate", parents=[parents.verbose, parents.classify],
                       help="accuracy, per-class figures and confusion matrix of a model on labelled faces")
    p.add_argument("--data", required=True, help="Kaggle CSV or image-folder tree")
    p.add_argument("--usage", help="only this split: Training, PublicTest (validation) or PrivateTest")
    p.add_argument("--json", metavar="OUT", help="write the full result as JSON")
    p.set_defaults(func=cmd_evaluate)


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
    from fer_core.inference.results import error_record, image_record

    files, missing = find_images(args.paths)
    settings = analysis_settings(args)
    recognizer = recognizer_for(settings)
    detector = None if args.whole_image else detector_for(settings.detector, "photo")
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


def add_predict(sub: argparse._SubParsersAction, parents: Parents) -> None:
    p = sub.add_parser("predict", parents=[parents.verbose, parents.classify],
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
    add_detector_option(p)
    p.set_defaults(func=cmd_predict)


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
    from fer_core.inference.video import VideoError, analyze_video

    settings = analysis_settings(args)
    recognizer = recognizer_for(settings)
    detector = detector_for(settings.detector, "photo")
    try:
        analysis = analyze_video(args.input, recognizer, every=args.every, annotate_path=args.annotate,
                                 progress=_progress_printer(), tta=settings.tta, max_seconds=args.max_seconds,
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


def add_video(sub: argparse._SubParsersAction, parents: Parents) -> None:
    p = sub.add_parser("video", parents=[parents.verbose, parents.classify],
                       help="emotions over time in a video clip (every Nth frame)")
    p.add_argument("input", metavar="IN", help="a video file (mp4, mov, webm, avi, ...)")
    p.add_argument("--csv", metavar="OUT", help="write one row per face per analysed frame")
    p.add_argument("--annotate", metavar="OUT.mp4", help="write an annotated copy of the clip")
    p.add_argument("--emoji", action="store_true", help="annotated copy: an emoji over each face")
    p.add_argument("--every", type=int, default=5, metavar="N", help="analyse every Nth frame (default 5)")
    p.add_argument("--max-seconds", type=float, help="stop after this many seconds of the clip")
    add_detector_option(p)
    p.set_defaults(func=cmd_video)


def cmd_batch(args: argparse.Namespace) -> int:
    """Every input into the Parquet folder ``--out``; run again to resume. Exit 1 when any input failed."""
    from fer_core.inference.batch import BatchError, BatchSettings, progress_line, run_batch

    analysis = analysis_settings(args)
    settings = BatchSettings(model=str(Path(analysis.model).resolve()), every=args.every, tta=analysis.tta,
                             scheme=analysis.scheme, segment_frames=args.segment_frames, detector=analysis.detector)
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


def add_batch(sub: argparse._SubParsersAction, parents: Parents) -> None:
    from fer_core.inference.batch import SEGMENT_FRAMES

    p = sub.add_parser("batch", parents=[parents.verbose, parents.classify],
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
    add_detector_option(p)
    p.set_defaults(func=cmd_batch, uses_tensorflow=False)
