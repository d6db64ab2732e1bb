"""Results of an image as tables, JSON and CSV: one format for the upload page's downloads and the CLI.

Faces are numbered from 1 as drawn on the annotated image (``FaceResult.index + 1``).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING

from .pipeline import FaceResult

if TYPE_CHECKING:
    import pandas


def face_record(result: FaceResult) -> dict:
    """``{"face", "box": [x, y, w, h], "label", "confidence", "probabilities": {label: p}}``."""
    return {"face": result.index + 1, "box": [int(v) for v in result.box], "label": result.label,
            "confidence": round(result.confidence, 6),
            "probabilities": {label: round(p, 6) for label, p in result.probabilities.items()}}


def image_record(path: str, results: Sequence[FaceResult]) -> dict:
    """``{"path": ..., "faces": [face_record, ...]}``: one image in the predict CLI's JSON list."""
    return {"path": path, "faces": [face_record(r) for r in results]}


def results_rows(results: Sequence[FaceResult], path: str | None = None) -> list[dict]:
    """Flat rows (``[path,] face, x, y, w, h, label, confidence``, then one column per label)."""
    rows = []
    for r in results:
        row = {"path": path} if path is not None else {}
        x, y, w, h = r.box
        row.update({"face": r.index + 1, "x": x, "y": y, "w": w, "h": h, "label": r.label,
                    "confidence": round(r.confidence, 6)})
        row.update({label: round(p, 6) for label, p in r.probabilities.items()})
        rows.append(row)
    return rows


def results_frame(results: Sequence[FaceResult], labels: Sequence[str], path: str | None = None) -> "pandas.DataFrame":
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
