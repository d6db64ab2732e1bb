"""FER2013 faces as arrays: :class:`FaceData` (48×48 ``uint8`` faces, FER2013 label indices, the
split of each face and where it came from), :class:`LoadResult` (the data and what was skipped, with
the reason: nothing is dropped silently) and the split names."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from fer_core.labels import FER_LABELS

FACE_SIZE = 48
N_PIXELS = FACE_SIZE * FACE_SIZE
SPLITS = ("Training", "PublicTest", "PrivateTest")
_SPLIT_ALIASES = {
    "training": "Training",
    "train": "Training",
    "publictest": "PublicTest",
    "validation": "PublicTest",
    "val": "PublicTest",
    "valid": "PublicTest",
    "privatetest": "PrivateTest",
    "test": "PrivateTest",
}


class DataError(ValueError):
    """The data source cannot be read at all (missing path, wrong columns, nothing usable)."""


@dataclass(frozen=True)
class Skipped:
    """One input that was left out, and why."""

    source: str
    reason: str

    def __str__(self) -> str:
        return f"{self.source}: {self.reason}"


@dataclass
class FaceData:
    """Faces as arrays. ``labels`` are FER2013 indices (see :data:`fer_core.labels.FER_LABELS`)."""

    images: np.ndarray  # (N, 48, 48) uint8
    labels: np.ndarray  # (N,) int64
    splits: np.ndarray  # (N,) str
    sources: np.ndarray  # (N,) str: file path, or "row K" of a CSV

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, mask: np.ndarray) -> FaceData:
        return FaceData(self.images[mask], self.labels[mask], self.splits[mask], self.sources[mask])

    def split(self, name: str) -> FaceData:
        """Faces of one split; ``name`` may be an alias such as ``validation``."""
        return self.subset(self.splits == normalise_split(name))

    def split_names(self) -> list[str]:
        present = set(self.splits.tolist())
        return [s for s in SPLITS if s in present] + sorted(present - set(SPLITS))


@dataclass
class LoadResult:
    data: FaceData
    skipped: list[Skipped] = field(default_factory=list)

    def counts(self) -> dict[str, dict[str, int]]:
        """``{split: {label: count}}`` with every FER label present (zeros included)."""
        out: dict[str, dict[str, int]] = {}
        for split in self.data.split_names():
            labels = self.data.labels[self.data.splits == split]
            hist = np.bincount(labels, minlength=len(FER_LABELS))
            out[split] = {name: int(n) for name, n in zip(FER_LABELS, hist)}
        return out


def normalise_split(name: str) -> str:
    """``Training`` / ``PublicTest`` / ``PrivateTest`` for their usual names; other names unchanged."""
    return _SPLIT_ALIASES.get(name.strip().lower(), name.strip())


def empty_data() -> FaceData:
    return FaceData(
        np.zeros((0, FACE_SIZE, FACE_SIZE), np.uint8),
        np.zeros(0, np.int64),
        np.zeros(0, dtype="<U1"),
        np.zeros(0, dtype="<U1"),
    )
