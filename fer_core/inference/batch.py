"""Batch analysis: many images and videos into one Parquet table, resumable, on one machine or on Ray.

Every row comes from the functions the ``predict`` and ``video`` commands use
(:func:`fer_core.inference.pipeline.analyze_image` and :func:`fer_core.inference.video.analyze_video`),
so a face gets the same numbers whichever command analysed it.

The work is planned as *items* (an image, or a segment of a video's frames) grouped into *units*
(a handful of images, or one segment). A finished unit's rows become one Parquet part file in the
results folder, renamed into place, and only then are its items appended to the manifest
``_manifest.jsonl``. A run started again on the same folder skips the items in the manifest and
deletes part files the manifest does not name (written by a run killed before it could record them),
so every row is in the table exactly once however often the job is interrupted. Files starting with
``_`` or ``.`` are ignored by Parquet readers, so ``pyarrow.parquet.read_table(RESULTS)`` or
``pandas.read_parquet(RESULTS)`` read the parts as one table.

A video's ``person`` numbers run through the whole clip, as ``video`` gives them, although its
segments are analysed apart and finish in any order: the driver writes a video's segments in frame
order, holding a segment that finishes early until those before it are written, and numbers each
segment's faces by following the tracker on from the segments before (:class:`PersonNumbering`;
on a resumed run, from the rows already in the folder). A kill loses the segments held back, which
the next run analyses again.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from fer_core.inference.inputs import MISSING_REASON, Input, expand_inputs, input_failure
from fer_core.outputs import display_path
from fer_core.settings import AnalysisSettings

if TYPE_CHECKING:
    import pyarrow

    from fer_core.inference.pipeline import FaceResult

SETTINGS_FILE = "_batch.json"
MANIFEST_FILE = "_manifest.jsonl"
IMAGES_PER_UNIT = 16  # images per part file: fewer files than one per image, little lost to a kill
SEGMENT_FRAMES = 1500  # video frames per segment (a minute at 25 fps): the unit of work and of resuming


class BatchError(ValueError):
    """A batch that cannot start (a results folder of another run, no inputs); the message says why."""


# --------------------------------------------------------------------------- the plan


@dataclass(frozen=True)
class WorkItem:
    """An input, or for a video the frames ``start`` to ``stop`` (``None``: to the end) of it."""

    source: str
    kind: str
    start: int = 0
    stop: int | None = None

    @property
    def key(self) -> str:
        """How the manifest names the item: the path, and a video's frame span."""
        if self.kind != "video":
            return self.source
        return f"{self.source}#frames={self.start}-{'end' if self.stop is None else self.stop}"


@dataclass(frozen=True)
class WorkUnit:
    """Items analysed together and written as one part file."""

    items: tuple[WorkItem, ...]


def video_items(source: str, segment_frames: int) -> list[WorkItem]:
    """A video as segments of ``segment_frames`` frames by the frame count in its header; the last
    segment runs to the end (headers may be short by a few frames). One item when the header states
    no count or the file cannot be opened (the analysis then reports why)."""
    from fer_core.inference.video import VideoError, frame_count

    try:
        frames = frame_count(source)
    except VideoError:
        frames = 0
    starts = list(range(0, frames, segment_frames)) or [0]
    return [WorkItem(source, "video", start, stop) for start, stop in zip(starts, [*starts[1:], None])]


def plan_items(inputs: Sequence[Input], segment_frames: int = SEGMENT_FRAMES) -> list[WorkItem]:
    """Every input as work items (videos split into segments), in input order."""
    items: list[WorkItem] = []
    for one in inputs:
        if one.kind == "video":
            items += video_items(one.path, segment_frames)
        else:
            items.append(WorkItem(one.path, one.kind))
    return items


def plan_units(items: Sequence[WorkItem], images_per_unit: int = IMAGES_PER_UNIT) -> list[WorkUnit]:
    """Video segments one unit each, first (the longest units start early, so workers finish
    together); then images and missing inputs in groups of ``images_per_unit``."""
    units = [WorkUnit((item,)) for item in items if item.kind == "video"]
    others = [item for item in items if item.kind != "video"]
    units += [WorkUnit(tuple(others[i:i + images_per_unit])) for i in range(0, len(others), images_per_unit)]
    return units


# --------------------------------------------------------------------------- rows


@dataclass(frozen=True)
class BatchSettings:
    """What the rows depend on: the analysis (model, detector, test-time augmentation, label view),
    every how many video frames, and the frames per video segment. A results folder holds the rows of
    one set of settings, recorded in its ``_batch.json`` (:meth:`record`)."""

    analysis: AnalysisSettings
    every: int = 5
    segment_frames: int = SEGMENT_FRAMES

    def record(self) -> dict:
        """The settings as ``_batch.json`` holds them: one flat object, ``model, every, tta, scheme,
        segment_frames, detector``, the format every results folder has been written in, so an earlier
        run's folder resumes. The budgets are left out: they bound the work, they do not change a row."""
        analysis = self.analysis
        return {"model": analysis.model, "every": self.every, "tta": analysis.tta, "scheme": analysis.scheme,
                "segment_frames": self.segment_frames, "detector": analysis.detector}


def batch_schema(labels: Sequence[str]) -> pyarrow.Schema:
    """The table's columns: ``source, kind, status, error, frame, time_s, face, person, x, y, w, h,
    label, confidence``, one probability column per label, then ``model``; ``frame``/``time_s``/``person``
    are null for images, the face columns null in the row of a failed input or of an image without a
    face."""
    import pyarrow as pa

    return pa.schema(
        [("source", pa.string()), ("kind", pa.string()), ("status", pa.string()), ("error", pa.string()),
         ("frame", pa.int64()), ("time_s", pa.float64()), ("face", pa.int64()), ("person", pa.int64()),
         *[(name, pa.int64()) for name in ("x", "y", "w", "h")], ("label", pa.string()),
         ("confidence", pa.float64()), *[(label, pa.float64()) for label in labels], ("model", pa.string())])


class BatchAnalyzer:
    """The recognizer of a batch, loaded once (per process, or per Ray worker), and the rows of work
    items through it. Any failure of an item becomes that item's error row; the others go on."""

    def __init__(self, settings: BatchSettings):
        from fer_core.inference.pipeline import recognizer_for, settings_detector

        self.settings = settings
        self.recognizer = recognizer_for(settings.analysis)
        self.detector = settings_detector(settings.analysis, "photo")  # as predict and video detect
        self.model_name = self.recognizer.card.name

    def analyze(self, unit: WorkUnit) -> list[dict]:
        """The rows of every item of ``unit``, in order."""
        return [row for item in unit.items for row in self.item_rows(item)]

    def item_rows(self, item: WorkItem) -> list[dict]:
        try:
            if item.kind == "missing":
                return [self.error_row(item, MISSING_REASON)]
            if item.kind == "video":
                return self.video_rows(item)
            return self.image_rows(item)
        except Exception as exc:  # noqa: BLE001 - one bad input must not cost the others their rows
            return [self.error_row(item, input_failure(item.source, exc))]

    def image_rows(self, item: WorkItem) -> list[dict]:
        """One row per face (numbered left to right, as ``predict``), or one row without a face."""
        from fer_core.inference.images import read_image
        from fer_core.inference.pipeline import analyze_image

        results = analyze_image(read_image(item.source), self.recognizer, detector=self.detector,
                                tta=self.settings.analysis.tta)
        return [self.face_row(item, face) for face in results] or [self.head(item, "ok")]

    def video_rows(self, item: WorkItem) -> list[dict]:
        """The rows ``video`` gives the item's frames, and one error row where the clip stopped early."""
        from fer_core.inference.video import analyze_video

        frames = range(item.start, sys.maxsize if item.stop is None else item.stop)
        analysis = analyze_video(item.source, self.recognizer, every=self.settings.every,
                                 tta=self.settings.analysis.tta, detector=self.detector, frames=frames)
        rows = [self.head(item, "ok") | row | {"model": self.model_name} for row in analysis.rows]
        if analysis.error:
            rows.append(self.error_row(item, analysis.error) | {"frame": analysis.frames_read})
        return rows

    def head(self, item: WorkItem, status: str) -> dict:
        return item_row(item, self.model_name, status)

    def face_row(self, item: WorkItem, face: FaceResult) -> dict:
        from fer_core.inference.results import face_row

        return self.head(item, "ok") | face_row(face, digits=None)

    def error_row(self, item: WorkItem, reason: str) -> dict:
        return item_row(item, self.model_name, "error", reason)


def item_row(item: WorkItem, model_name: str, status: str, error: str | None = None) -> dict:
    """The columns every row of ``item`` has: ``source, kind, status, error, model``. A name that is not
    UTF-8 (which Parquet cannot hold) is stored escaped, as :func:`fer_core.outputs.display_path` writes it."""
    return {"source": display_path(item.source), "kind": item.kind, "status": status,
            "error": None if error is None else display_path(error), "model": model_name}


# --------------------------------------------------------------------------- the results folder


class ResultsFolder:
    """Part files and the manifest of finished items in one folder (see the module's docstring)."""

    def __init__(self, folder: str | os.PathLike, settings: BatchSettings, labels: Sequence[str]):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.schema = batch_schema(labels)
        self._check_settings(settings)
        self.done: set[str] = set()
        parts = self._read_manifest()
        self._remove_unrecorded_parts(parts)
        self.next_part = 1 + max((int(name[5:11]) for name in parts), default=0)

    def _check_settings(self, settings: BatchSettings) -> None:
        path = self.folder / SETTINGS_FILE
        wanted = settings.record()
        if path.is_file():
            previous = json.loads(path.read_text())
            if previous != wanted:
                changed = ", ".join(f"{k} {previous.get(k)!r} → {v!r}" for k, v in wanted.items()
                                    if previous.get(k) != v)
                raise BatchError(f"{self.folder} holds the results of a batch with other settings ({changed}); "
                                 "give another --out, or the same settings to resume it")
        elif any(self.folder.iterdir()):
            raise BatchError(f"{self.folder} is not empty and holds no batch results; give an empty or new folder")
        else:
            _write_atomically(path, json.dumps(wanted, indent=2).encode())

    def _read_manifest(self) -> set[str]:
        """Items and part names recorded so far; a last line cut short by a kill is dropped."""
        path = self.folder / MANIFEST_FILE
        if not path.is_file():
            return set()
        data = path.read_bytes()
        complete = data[: data.rfind(b"\n") + 1]
        if len(complete) != len(data):
            with open(path, "r+b") as f:
                f.truncate(len(complete))
        parts = set()
        for line in complete.decode().splitlines():
            entry = json.loads(line)
            parts.add(entry["part"])
            self.done.update(entry["items"])
        return parts

    def _remove_unrecorded_parts(self, recorded: set[str]) -> None:
        for path in self.folder.iterdir():
            if (path.name.startswith("part-") and path.name not in recorded) or path.name.startswith(".part-"):
                path.unlink()

    def pending(self, units: Iterable[WorkUnit]) -> list[WorkUnit]:
        """``units`` without the items already recorded (a unit left empty is dropped)."""
        remaining = (WorkUnit(tuple(i for i in unit.items if i.key not in self.done)) for unit in units)
        return [unit for unit in remaining if unit.items]

    def write(self, unit: WorkUnit, rows: list[dict]) -> None:
        """The unit's rows as the next part file, then its items in the manifest (in that order)."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        name = f"part-{self.next_part:06d}.parquet"
        self.next_part += 1
        tmp = self.folder / f".{name}.tmp"
        pq.write_table(pa.Table.from_pylist(rows, schema=self.schema), tmp)
        _fsync(tmp)
        os.replace(tmp, self.folder / name)
        line = json.dumps({"part": name, "items": [item.key for item in unit.items]}) + "\n"
        fd = os.open(self.folder / MANIFEST_FILE, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line.encode())
            os.fsync(fd)
        finally:
            os.close(fd)
        self.done.update(item.key for item in unit.items)

    def failures(self) -> list[tuple[str, str]]:
        """``(source, reason)`` of every error row the folder holds, in part order."""
        import pyarrow.parquet as pq

        parts = sorted(self.folder.glob("part-*.parquet"))
        if not parts:
            return []
        rows = pq.read_table(parts, schema=self.schema, columns=["source", "status", "error"]).to_pylist()
        return [(row["source"], row["error"]) for row in rows if row["status"] == "error"]

    def read(self, source: str | None = None) -> pyarrow.Table:
        """Every row written to the folder so far (of the input ``source`` only, if given), as one table."""
        import pyarrow.parquet as pq

        parts = sorted(self.folder.glob("part-*.parquet"))
        if not parts:
            return self.schema.empty_table()
        return pq.read_table(parts, schema=self.schema, filters=None if source is None else [("source", "==", source)])


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_atomically(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


# --------------------------------------------------------------------------- person numbers


class PersonNumbering:
    """Writes each video's segments in frame order with ``person`` numbers continued across them.

    :meth:`finished` takes a unit as it comes back and gives the units that can be written now: an
    image unit at once, a video segment once every segment before it is written (the tracker has then
    followed the faces up to its first frame). The numbers equal those of one pass over the clip
    (:func:`fer_core.inference.video.retrack_rows`).
    """

    def __init__(self, items: Sequence[WorkItem], results: ResultsFolder):
        self.segments: dict[str, list[WorkItem]] = {}  # video → its segments, in frame order
        for item in items:
            if item.kind == "video":
                self.segments.setdefault(item.source, []).append(item)
        self.results = results
        self.written: dict[str, int] = {}  # video → how many of its segments are written
        self.trackers: dict = {}  # video → its FaceTracker, past the segments written
        self.waiting: dict[str, tuple[WorkUnit, list[dict]]] = {}  # segment's key → its unit and rows

    def finished(self, unit: WorkUnit, rows: list[dict]) -> list[tuple[WorkUnit, list[dict]]]:
        """The units (with their rows) that can be written now that ``unit`` is done, in order."""
        if len(unit.items) != 1 or unit.items[0].kind != "video":
            return [(unit, rows)]
        source = unit.items[0].source
        self.waiting[unit.items[0].key] = (unit, rows)
        ready = []
        while (segment := self._next_segment(source)) is not None and segment.key in self.waiting:
            unit, rows = self.waiting.pop(segment.key)
            self._number(source, rows)
            self.written[source] += 1
            ready.append((unit, rows))
        return ready

    def _next_segment(self, source: str) -> WorkItem | None:
        if source not in self.written:
            self._resume(source)
        segments, index = self.segments[source], self.written[source]
        return segments[index] if index < len(segments) else None

    def _resume(self, source: str) -> None:
        """Count the segments an earlier run wrote (a prefix: they are written in order) and follow
        the tracker over their rows."""
        done = [segment for segment in self.segments[source] if segment.key in self.results.done]
        self.written[source] = len(done)
        if done:
            table = self.results.read(source).to_pandas()
            table = table[table["x"].notna()].sort_values(["frame", "face"], kind="stable")
            self._number(source, table.to_dict("records"))

    def _number(self, source: str, rows: list[dict]) -> None:
        from fer_core.inference.tracking import VIDEO_TRACKER, FaceTracker
        from fer_core.inference.video import retrack_rows

        retrack_rows(rows, self.trackers.setdefault(source, FaceTracker(VIDEO_TRACKER)))


# --------------------------------------------------------------------------- running a batch


@dataclass
class BatchSummary:
    """What a run did: items and rows written, faces found, items that failed."""

    units: int = 0
    items: int = 0
    rows: int = 0
    faces: int = 0
    failed: int = 0
    skipped: int = 0  # items finished by an earlier run
    seconds: float = 0.0
    # (source, reason) of the inputs that failed in earlier runs into the same folder (they are skipped)
    earlier_failures: list[tuple[str, str]] = field(default_factory=list)

    def add(self, unit: WorkUnit, rows: list[dict]) -> None:
        self.units += 1
        self.items += len(unit.items)
        self.rows += len(rows)
        self.faces += sum(row.get("face") is not None for row in rows)
        self.failed += sum(row["status"] == "error" for row in rows)


Progress = Callable[[BatchSummary, int], None]  # (the summary so far, units in the run)


def progress_line(stream=sys.stderr) -> Progress:
    """A progress callback on ``stream``: one rewritten line on a terminal, a line per 10% otherwise."""
    last = {"decile": -1}

    def report(summary: BatchSummary, total: int) -> None:
        percent = 100 * summary.units // total if total else 100
        text = (f"batch: {summary.units}/{total} units ({percent}%), {summary.faces} faces, "
                f"{summary.failed} failed, {summary.seconds:.0f} s")
        if stream.isatty():
            print("\r" + text, end="\n" if summary.units == total else "", file=stream, flush=True)
        elif percent // 10 != last["decile"]:
            print(text, file=stream, flush=True)
        last["decile"] = percent // 10

    return report


Engine = Callable[[list[WorkUnit], Callable[[WorkUnit, list[dict]], None]], None]


def run_local(settings: BatchSettings) -> Engine:
    """The in-process engine: one recognizer, the units one after another."""

    def engine(units: list[WorkUnit], done: Callable[[WorkUnit, list[dict]], None]) -> None:
        analyzer = BatchAnalyzer(settings)
        for unit in units:
            done(unit, analyzer.analyze(unit))

    return engine


def run_batch(paths: Sequence[str | os.PathLike], out: str | os.PathLike, settings: BatchSettings,
              engine: Engine | None = None, progress: Progress | None = None) -> BatchSummary:
    """Analyse ``paths`` into the results folder ``out``, skipping what an earlier run there finished.

    ``engine`` runs the units and hands each one's rows back (the local engine by default;
    :func:`fer_core.inference.batch_ray.ray_engine` spreads them over Ray workers); rows are
    written here, in the calling process, as each unit comes back.
    """
    from fer_core.labels import get_scheme
    from fer_core.model_card import ModelCard

    analysis = settings.analysis
    if not Path(analysis.model).is_file():
        raise FileNotFoundError(f"{analysis.model}: no such model file")
    card = ModelCard.load(analysis.model)
    labels = get_scheme(analysis.scheme).labels if analysis.scheme else card.labels
    results = ResultsFolder(out, settings, labels)
    inputs = expand_inputs(paths)
    if not inputs:
        raise BatchError("no image or video files among the inputs")
    items = plan_items(inputs, settings.segment_frames)
    units = results.pending(plan_units(items))
    summary = BatchSummary(skipped=len(items) - sum(len(unit.items) for unit in units),
                           earlier_failures=results.failures())
    numbering = PersonNumbering(items, results)
    started = time.perf_counter()

    def done(unit: WorkUnit, rows: list[dict]) -> None:
        for ready, ready_rows in numbering.finished(unit, rows):
            results.write(ready, ready_rows)
            summary.add(ready, ready_rows)
        summary.seconds = time.perf_counter() - started
        if progress:
            progress(summary, len(units))

    (engine or run_local(settings))(units, done)
    summary.seconds = time.perf_counter() - started
    return summary
