"""Dataset exploration: filters, counts and shares, random samples, mosaics and mean faces.

Pure NumPy/pandas helpers behind the Dataset page, so the page only lays out widgets and charts and
everything it shows can be tested without Streamlit.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from fer_core.data import FaceData
from fer_core.labels import FER_LABELS


def filter_faces(data: FaceData, splits: Sequence[str] | None = None, labels: Sequence[int] | None = None) -> FaceData:
    """Faces whose split is in ``splits`` and whose FER label index is in ``labels``; ``None`` keeps all."""
    keep = np.ones(len(data), bool)
    if splits is not None:
        keep &= np.isin(data.splits, list(splits))
    if labels is not None:
        keep &= np.isin(data.labels, list(labels))
    return data.subset(keep)


def class_counts(data: FaceData) -> pd.DataFrame:
    """One row per split × emotion (zeros included): ``split``, ``emotion``, ``count``, ``share``.

    ``share`` is the emotion's fraction of its split (0 for an empty split), so splits of very
    different sizes can be compared for class balance.
    """
    rows = []
    for split in data.split_names():
        hist = np.bincount(data.labels[data.splits == split], minlength=len(FER_LABELS))
        total = hist.sum()
        for name, n in zip(FER_LABELS, hist):
            rows.append({"split": split, "emotion": name, "count": int(n), "share": n / total if total else 0.0})
    return pd.DataFrame(rows, columns=["split", "emotion", "count", "share"])


def counts_table(counts: pd.DataFrame) -> pd.DataFrame:
    """:func:`class_counts` as a split × emotion table (emotions in FER order) with a ``total`` column."""
    table = counts.pivot(index="split", columns="emotion", values="count")
    table = table.reindex(index=counts["split"].unique(), columns=list(FER_LABELS))
    table["total"] = table.sum(axis=1)
    table.columns.name = None
    return table


def sample_per_class(data: FaceData, per_class: int, seed: int) -> dict[int, np.ndarray]:
    """Up to ``per_class`` random face indices for each label present, in FER label order.

    The same ``seed`` gives the same faces, so a page can redraw without reshuffling.
    """
    rng = np.random.default_rng(seed)
    out: dict[int, np.ndarray] = {}
    for label in np.unique(data.labels):
        indices = np.flatnonzero(data.labels == label)
        out[int(label)] = rng.choice(indices, size=min(per_class, len(indices)), replace=False)
    return out


def face_mosaic(images: np.ndarray, columns: int, scale: int = 1, gap: int = 2) -> np.ndarray:
    """Tile ``(N, H, W)`` uint8 faces row by row into one gray image, ``gap`` white pixels apart.

    ``scale`` enlarges every face by pixel repetition, which keeps the faces sharp where a browser
    would blur a small image it stretches. Unused cells of the last row stay white.
    """
    if len(images) == 0:
        raise ValueError("face_mosaic needs at least one face")
    if columns < 1 or scale < 1:
        raise ValueError("columns and scale must be at least 1")
    faces = images.repeat(scale, axis=1).repeat(scale, axis=2)
    n, h, w = faces.shape
    columns = min(columns, n)
    rows = -(-n // columns)
    mosaic = np.full((rows * h + (rows - 1) * gap, columns * w + (columns - 1) * gap), 255, np.uint8)
    for i, face in enumerate(faces):
        top, left = (i // columns) * (h + gap), (i % columns) * (w + gap)
        mosaic[top : top + h, left : left + w] = face
    return mosaic


def enlarge(image: np.ndarray, scale: int) -> np.ndarray:
    """One face enlarged by pixel repetition (sharp pixels, no smoothing)."""
    return face_mosaic(image[np.newaxis], columns=1, scale=scale)


def mean_faces(data: FaceData) -> dict[int, np.ndarray]:
    """The pixel-wise mean face (rounded to uint8) of each label present, in FER label order."""
    out: dict[int, np.ndarray] = {}
    for label in np.unique(data.labels):
        mean = data.images[data.labels == label].mean(axis=0, dtype=np.float64)
        out[int(label)] = np.round(mean).astype(np.uint8)
    return out


def describe_source(source: str, data_path: str) -> str:
    """Where a face came from, for people: ``fer2013.csv, row 17`` for a CSV row, else the file path."""
    if source.startswith("row "):
        return f"{Path(data_path).name}, {source}"
    return source
