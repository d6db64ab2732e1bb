"""Results of an image as tables, JSON and CSV: one format for the upload page's downloads and the CLI.

Faces are numbered from 1 as drawn on the annotated image (``FaceResult.index + 1``). Every image
record carries a ``status``: ``"ok"`` (analysed, possibly without a face) or ``"error"`` with the
reason, so that one unreadable file among many is reported in place instead of ending the batch.
The record writers emit each record as soon as it is made: an interrupted run over a large folder
keeps everything it did.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from typing import IO, TYPE_CHECKING, Protocol

from fer_core.inference.pipeline import FaceResult

if TYPE_CHECKING:
    import pandas


def face_record(result: FaceResult) -> dict:
    """``{"face", "box": [x, y, w, h], "label", "confidence", "probabilities": {label: p}}``."""
    return {"face": result.index + 1, "box": [int(v) for v in result.box], "label": result.label,
            "confidence": round(result.confidence, 6),
            "probabilities": {label: round(p, 6) for label, p in result.probabilities.items()}}


def image_record(path: str, results: Sequence[FaceResult]) -> dict:
    """``{"path", "status": "ok", "error": None, "faces": [face_record, ...]}``: one analysed image."""
    return {"path": path, "status": "ok", "error": None, "faces": [face_record(r) for r in results]}


def error_record(path: str, reason: str) -> dict:
    """``{"path", "status": "error", "error": reason, "faces": []}``: one input that could not be used."""
    return {"path": path, "status": "error", "error": reason, "faces": []}


def face_row(face: FaceResult, digits: int | None = 6) -> dict:
    """One face as a flat row: ``face, x, y, w, h, label, confidence``, then one column per label;
    confidence and probabilities rounded to ``digits`` (``None``: as computed)."""
    x, y, w, h = face.box

    def value(p: float) -> float:
        return p if digits is None else round(p, digits)

    return {"face": face.index + 1, "x": x, "y": y, "w": w, "h": h, "label": face.label,
            "confidence": value(face.confidence), **{label: value(p) for label, p in face.probabilities.items()}}


def results_rows(results: Sequence[FaceResult], path: str | None = None) -> list[dict]:
    """Flat rows (``[path,] face, x, y, w, h, label, confidence``, then one column per label)."""
    return [({"path": path} if path is not None else {}) | face_row(r) for r in results]


def results_frame(results: Sequence[FaceResult], labels: Sequence[str], path: str | None = None) -> pandas.DataFrame:
    """:func:`results_rows` as a DataFrame, with every column present even when there is no face."""
    import pandas as pd

    columns = (["path"] if path is not None else []) + ["face", "x", "y", "w", "h", "label", "confidence", *labels]
    return pd.DataFrame(results_rows(results, path), columns=columns)


def results_csv(results: Sequence[FaceResult], labels: Sequence[str]) -> bytes:
    """CSV download of one image's faces."""
    return results_frame(results, labels).to_csv(index=False).encode()


def results_json(path: str, results: Sequence[FaceResult]) -> bytes:
    """JSON download of one image's faces (the same object as one item of the predict CLI's list)."""
    return (json.dumps(image_record(path, results), indent=2) + "\n").encode()


# --------------------------------------------------------------------------- streaming record writers


class RecordWriter(Protocol):
    """Where the predict CLI sends one record per input (:func:`image_record` or :func:`error_record`)."""

    def write(self, record: dict) -> None: ...

    def close(self) -> None: ...


class JsonLinesWriter:
    """One JSON object per line, flushed per record: a partial file is still valid JSON Lines."""

    def __init__(self, stream: IO[str]):
        self.stream = stream

    def write(self, record: dict) -> None:
        self.stream.write(json.dumps(record) + "\n")
        self.stream.flush()

    def close(self) -> None:
        self.stream.flush()


class JsonListWriter:
    """One JSON list, written at :meth:`close` (a list cannot be valid before its last item)."""

    def __init__(self, stream: IO[str]):
        self.stream = stream
        self.records: list[dict] = []

    def write(self, record: dict) -> None:
        self.records.append(record)

    def close(self) -> None:
        self.stream.write(json.dumps(self.records, indent=2) + "\n")
        self.stream.flush()


def csv_columns(labels: Sequence[str]) -> list[str]:
    """``path, status, error, face, x, y, w, h, label, confidence`` and one column per label."""
    return ["path", "status", "error", "face", "x", "y", "w", "h", "label", "confidence", *labels]


def record_rows(record: dict) -> list[dict]:
    """CSV rows of one record: one per face, or a single row (no face columns) for a faceless or
    failed input, so that every input shows up in the table."""
    head = {"path": record["path"], "status": record["status"], "error": record["error"] or ""}
    if not record["faces"]:
        return [head]
    rows = []
    for face in record["faces"]:
        x, y, w, h = face["box"]
        rows.append({**head, "face": face["face"], "x": x, "y": y, "w": w, "h": h, "label": face["label"],
                     "confidence": face["confidence"], **face["probabilities"]})
    return rows


class CsvWriter:
    """CSV with :func:`csv_columns`, the header first and the rows of each record flushed as they come."""

    def __init__(self, stream: IO[str], labels: Sequence[str]):
        self.stream = stream
        self.writer = csv.DictWriter(stream, fieldnames=csv_columns(labels), lineterminator="\n")
        self.writer.writeheader()

    def write(self, record: dict) -> None:
        self.writer.writerows(record_rows(record))
        self.stream.flush()

    def close(self) -> None:
        self.stream.flush()
