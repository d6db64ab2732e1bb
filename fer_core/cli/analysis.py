"""Analysing faces with a published model: ``evaluate``, ``predict``, ``video`` and ``batch``."""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import traceback
from pathlib import Path
from typing import TYPE_CHECKING

from fer_core.cli.common import (
    Parents,
    add_detector_option,
    analysis_settings,
    positive_float,
    positive_int,
)
from fer_core.outputs import OutputError, display_path, replacing, write_output

if TYPE_CHECKING:
    from fer_core.inference.results import RecordWriter


def cmd_evaluate(args: argparse.Namespace) -> int:
    from fer_core.data import load_dataset, normalise_split
    from fer_core.inference.pipeline import recognizer_for
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
            print(f"error: no {normalise_split(args.usage)} faces in {display_path(args.data)}", file=sys.stderr)
            return 2
    result = evaluate_faces(recognizer, data, tta=settings.tta)
    result["data"] = display_path(args.data)
    result["usage"] = normalise_split(args.usage) if args.usage else "all"
    print(report_text(result), end="")
    if args.json:
        write_output(args.json, json.dumps(result, indent=2))
        print(f"wrote {display_path(args.json)}")
    return 0


def add_evaluate(sub: argparse._SubParsersAction, parents: Parents) -> None:
    p = sub.add_parser("evaluate", parents=[parents.verbose, parents.classify],
                       help="accuracy, per-class figures and confusion matrix of a model on labelled faces")
    p.add_argument("--data", required=True, help="Kaggle CSV or image-folder tree")
    p.add_argument("--usage", help="only this split: Training, PublicTest (validation) or PrivateTest")
    p.add_argument("--json", metavar="OUT", help="write the full result as JSON")
    p.set_defaults(func=cmd_evaluate, uses_tensorflow=False, output_files=("json",))


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


class PredictRun:
    """One ``predict`` command's images through the recognizer into its record writer, counting what
    failed; an annotated copy that cannot be written is reported without costing the image its record."""

    def __init__(self, args: argparse.Namespace, recognizer, detector, writer: RecordWriter):
        self.args, self.recognizer, self.detector, self.writer = args, recognizer, detector, writer
        self.annotate_dir = Path(args.annotate) if args.annotate else None
        self.annotated_names: set[str] = set()
        self.failed = self.faceless = self.unwritten = self.done = 0

    def fail(self, path: str | Path, reason: str) -> None:
        from fer_core.inference.results import error_record

        self.failed += 1
        shown, reason = display_path(path), display_path(reason)
        print(f"error: {shown}: {reason}", file=sys.stderr, flush=True)
        self.writer.write(error_record(shown, reason))

    def analyse(self, path: Path) -> None:
        """One image's record (its faces, or why it could not be used), then its annotated copy."""
        from fer_core.inference.inputs import input_failure
        from fer_core.inference.results import image_record

        try:
            image, results = self._faces(path)
            png = self._annotated_png(image, results) if self.annotate_dir else None
        except Exception as exc:  # noqa: BLE001 - one bad input must not cost the others their results
            if self.args.verbose:
                traceback.print_exc()
            self.fail(path, input_failure(str(path), exc))
        else:
            self.faceless += not results
            self.writer.write(image_record(display_path(path), results))
            if png is not None:
                self._write_annotated(path, png)
        self.done += 1

    def _faces(self, path: Path) -> tuple:
        """The image and its faces (the whole image as one face with ``--whole-image``), through the
        functions of every surface (``batch`` and the pages call :func:`analyze_image` too)."""
        from fer_core.inference.images import read_image
        from fer_core.inference.pipeline import analyze_image, classify_whole_image

        image, tta = read_image(path), not self.args.no_tta
        if self.args.whole_image:
            return image, [classify_whole_image(image, self.recognizer, tta=tta)]
        return image, analyze_image(image, self.recognizer, self.detector, tta=tta)

    def _annotated_png(self, image, results) -> bytes:
        from fer_core.inference.draw import annotate
        from fer_core.inference.images import encode_png

        return encode_png(annotate(image, results, emoji=self.args.emoji, bars=self.args.bars))

    def _write_annotated(self, source: Path, png: bytes) -> None:
        try:
            write_output(_annotated_path(self.annotate_dir, source, self.annotated_names), png)
        except OutputError as exc:
            self.unwritten += 1
            print(f"error: {exc}", file=sys.stderr, flush=True)

    def report(self, inputs: int) -> int:
        """The closing lines on stderr; the exit code (1 when an input failed or a copy was not written)."""
        if self.faceless:
            print(f"{self.faceless} image(s) without a detected face; for pictures that are already a cropped face "
                  "use --whole-image", file=sys.stderr)
        if self.failed:
            print(f"{self.failed} of {inputs} input(s) could not be used", file=sys.stderr)
        if self.unwritten:
            print(f"{self.unwritten} annotated image(s) could not be written to {display_path(self.annotate_dir)}",
                  file=sys.stderr)
        return 1 if self.failed or self.unwritten else 0


def cmd_predict(args: argparse.Namespace) -> int:
    """Every input gets a record (paths that do not exist first, then the files found, in order):
    the faces found, or the reason it could not be used.

    A failure of one file, whatever it is, is reported (``error: FILE: reason`` on stderr and a
    record with ``status: error``) and the run goes on; the exit code is 1 when any input failed.
    ``--annotate``'s folder is checked before the first image is analysed (:func:`check_outputs`).
    """
    from fer_core.inference.inputs import MISSING_REASON, find_images
    from fer_core.inference.pipeline import recognizer_for, settings_detector

    files, missing = find_images(args.paths)
    settings = analysis_settings(args)
    recognizer = recognizer_for(settings)
    detector = None if args.whole_image else settings_detector(settings, "photo")
    run = PredictRun(args, recognizer, detector, _record_writer(args, recognizer.labels))
    try:
        for path in missing:
            run.fail(path, MISSING_REASON)
        for path in files:
            run.analyse(path)
    except KeyboardInterrupt:
        print(f"interrupted after {run.done} of {len(files)} file(s); the results printed so far are complete",
              file=sys.stderr)
        return 130
    finally:
        run.writer.close()  # the JSON list is printed even when the run is interrupted
    return run.report(len(files) + len(missing))


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
    add_detector_option(p, "photo")
    p.set_defaults(func=cmd_predict, uses_tensorflow=False, output_folders=("annotate",))


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
    """The clip's faces over time; ``--csv``, ``--people-csv`` and ``--annotate`` are checked before the first frame
    (:func:`check_outputs`) and written whole (the annotated copy through a temporary file renamed when the
    analysis ends)."""
    from fer_core.inference.people import person_summary
    from fer_core.inference.pipeline import recognizer_for, settings_detector
    from fer_core.inference.video import VideoError, VideoTooLarge, analyze_video

    settings = analysis_settings(args)
    recognizer = recognizer_for(settings)
    detector = settings_detector(settings, "photo")
    try:
        with _annotated_copy(args.annotate) as annotate_path:
            analysis = analyze_video(args.input, recognizer, every=args.every, annotate_path=annotate_path,
                                     progress=_progress_printer(), tta=settings.tta, max_seconds=args.max_seconds,
                                     emoji=args.emoji, detector=detector, budgets=settings.budgets)
    except VideoError as exc:  # a clip refused by a budget is an input that cannot be used, as in predict
        print(f"\nerror: {exc}", file=sys.stderr)
        return 1 if isinstance(exc, VideoTooLarge) else 2
    if sys.stderr.isatty():
        print(file=sys.stderr)
    summary = person_summary(analysis.to_frame(), analysis.labels, args.every / analysis.fps if analysis.fps else 0.0)
    _print_video_summary(args.input, analysis, summary)
    if args.csv:
        write_output(args.csv, analysis.to_frame().to_csv(index=False))
        print(f"wrote {display_path(args.csv)}")
    if args.people_csv:
        write_output(args.people_csv, summary.to_csv(index=False))
        print(f"wrote {display_path(args.people_csv)}")
    if args.annotate:
        print(f"wrote {display_path(args.annotate)}")
    return 1 if analysis.error else 0


def _annotated_copy(path: str | None):
    """A context giving ``analyze_video`` a temporary file beside ``path`` (renamed over ``path`` when the
    block ends, removed when it raises); ``None`` without ``--annotate``."""
    if not path:
        return contextlib.nullcontext(None)
    return replacing(path, suffix=Path(path).suffix)


def _print_video_summary(source: str, analysis, summary) -> None:
    """What was read and analysed, and each person's time seen and share of each top emotion."""
    from fer_core.inference.people import summary_lines

    shown = display_path(source)
    if analysis.error:
        print(f"error: {shown}: {analysis.error}", file=sys.stderr)
    if analysis.cut_short:
        print(f"note: {shown}: {analysis.cut_short} (a budget: docs/security.md)", file=sys.stderr)
    table = analysis.to_frame()
    print(f"{shown}: {analysis.frames_read} frames at {analysis.fps:.2f} fps, "
          f"{analysis.frames_analyzed} analysed, {len(table)} face detections"
          + (" (stopped early: the frames before the error)" if analysis.error else ""))
    for line in summary_lines(summary, analysis.labels):
        print(line)


ANNOTATED_VIDEO_TYPES = (".mp4", ".m4v", ".mov", ".mkv")  # containers that hold the H.264 or MPEG-4 copy


def annotated_video_path(text: str) -> str:
    """An argparse type: a path whose extension names a container the annotated copy can be written in."""
    if Path(text).suffix.lower() not in ANNOTATED_VIDEO_TYPES:
        raise argparse.ArgumentTypeError(f"{display_path(text)}: the annotated copy is a video file: end its name "
                                         f"in {', '.join(ANNOTATED_VIDEO_TYPES)}")
    return text


def add_video(sub: argparse._SubParsersAction, parents: Parents) -> None:
    p = sub.add_parser("video", parents=[parents.verbose, parents.classify],
                       help="emotions over time in a video clip (every Nth frame)")
    p.add_argument("input", metavar="IN", help="a video file (mp4, mov, webm, avi, ...)")
    p.add_argument("--csv", metavar="OUT", help="write one row per face per analysed frame (with its person)")
    p.add_argument("--people-csv", metavar="OUT", help="write one row per person: time seen, share of each emotion")
    p.add_argument("--annotate", metavar="OUT.mp4", type=annotated_video_path,
                   help="write an annotated copy of the clip")
    p.add_argument("--emoji", action="store_true", help="annotated copy: an emoji over each face")
    p.add_argument("--every", type=positive_int, default=5, metavar="N", help="analyse every Nth frame (default 5)")
    p.add_argument("--max-seconds", type=positive_float, help="stop after this many seconds of the clip")
    add_detector_option(p, "video")
    p.set_defaults(func=cmd_video, uses_tensorflow=False, output_files=("csv", "people_csv", "annotate"))


def cmd_batch(args: argparse.Namespace) -> int:
    """Every input into the Parquet folder ``--out``; run again to resume. Exit 1 when any input failed,
    in this run or in an earlier one into the same folder."""
    from fer_core.inference.batch import BatchError, BatchSettings, progress_line, run_batch

    analysis = analysis_settings(args)
    settings = BatchSettings(analysis.with_changes(model=str(Path(analysis.model).resolve())), every=args.every,
                             segment_frames=args.segment_frames)
    engine = None
    if args.engine == "ray":  # the workers load the model; this process only writes their rows
        from fer_core.inference.batch_ray import ray_engine

        engine = ray_engine(settings, workers=args.workers, address=args.address)
    try:
        summary = run_batch(args.inputs, args.out, settings, engine=engine, progress=progress_line(sys.stderr))
    except BatchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    shown = display_path(args.out)
    if summary.skipped:
        print(f"{summary.skipped} item(s) finished by an earlier run were skipped")
    _print_earlier_failures(shown, summary.earlier_failures)
    print(f"{shown}: {summary.items} item(s) analysed in {summary.seconds:.1f} s, {summary.faces} faces "
          f"({summary.faces / summary.seconds if summary.seconds else 0:.1f} faces/s), {summary.failed} failed")
    return 1 if summary.failed or summary.earlier_failures else 0


EARLIER_FAILURES_LISTED = 20


def _print_earlier_failures(folder: str, failures: list[tuple[str, str]]) -> None:
    """The inputs that failed in earlier runs into ``folder`` (skipped by this one), on stderr."""
    for source, reason in failures[:EARLIER_FAILURES_LISTED]:
        print(f"error: {source}: {reason} (an earlier run)", file=sys.stderr)
    if len(failures) > EARLIER_FAILURES_LISTED:
        print(f"... and {len(failures) - EARLIER_FAILURES_LISTED} more", file=sys.stderr)
    if failures:
        print(f"{len(failures)} input(s) failed in an earlier run into {folder}: their rows have status 'error'",
              file=sys.stderr)


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
    add_detector_option(p, "batch")
    p.set_defaults(func=cmd_batch, uses_tensorflow=False, output_folders=("out",))
