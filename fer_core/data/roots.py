"""Data roots: the only folders whose datasets the app reads.

A visitor of the dashboard never types a path. The Dataset page offers the datasets found under the
roots (:func:`find_datasets`), and whatever path reaches the loader is checked again with
:func:`resolve_under_roots`: it is resolved first (symlinks, ``..``, relative to the server's working
folder), and a path outside every root gets :data:`OUTSIDE_MESSAGE`, the same sentence whether it
exists, is a file or a folder, or holds faces. An operator who wants another folder offers it when
starting the server: ``FER_DATA_ROOTS=/srv/fer:/data/extra streamlit run streamlit_app.py``.

The roots are ``FER_DATA_ROOTS`` (folders separated by ``os.pathsep``) when it is set, else the shipped
sample (``data/sample``) and the dataset named by ``$FER_DATA`` (that folder, or the folder of that
CSV file). Imports nothing of ``fer_core`` but :mod:`fer_core.data.faces` and :mod:`fer_core.labels`.
"""

from __future__ import annotations

import gzip
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from fer_core.data.faces import SPLITS, DataError, normalise_split
from fer_core.labels import canonical_label

ROOTS_ENV = "FER_DATA_ROOTS"
DATA_ENV = "FER_DATA"
SAMPLE_DATA = Path(__file__).resolve().parents[2] / "data" / "sample"
OUTSIDE_MESSAGE = "This path is not one of the datasets this server offers."
CSV_SUFFIXES = (".csv", ".csv.gz")
SEARCH_DEPTH = 3  # folders below a root searched for datasets
SEARCH_LIMIT = 2000  # folders looked into per root: a root holding a huge tree costs a bounded scan
HEADER_BYTES = 4096  # bytes of a CSV read to see whether its header is FER2013's


class OutsideRoots(DataError):
    """A path outside every data root. Its message is always :data:`OUTSIDE_MESSAGE`: it must not tell
    whether the path exists or what it holds."""

    def __init__(self) -> None:
        super().__init__(OUTSIDE_MESSAGE)


@dataclass(frozen=True)
class Dataset:
    """A dataset under a root: its resolved path and the name the app shows for it (the path from the
    root's parent, e.g. ``sample`` or ``data/fer2013/fer2013.csv``: never the server's full path)."""

    path: Path
    label: str

    def shown(self, text: str) -> str:
        """``text`` (a message, a file's path) with the dataset's full path replaced by its label."""
        return text.replace(str(self.path), self.label)


def data_roots(environ: Mapping[str, str] | None = None) -> list[Path]:
    """The resolved data roots (see the module's docstring); folders that do not exist are left out."""
    environ = os.environ if environ is None else environ
    configured = environ.get(ROOTS_ENV, "")
    if configured.strip():
        candidates = [Path(part) for part in configured.split(os.pathsep) if part.strip()]
    else:
        candidates = [SAMPLE_DATA]
        fer_data = environ.get(DATA_ENV, "").strip()
        if fer_data:
            candidates.append(Path(fer_data) if Path(fer_data).is_dir() else Path(fer_data).parent)
    roots: list[Path] = []
    for candidate in candidates:
        resolved = candidate.resolve()
        if resolved.is_dir() and resolved not in roots:
            roots.append(resolved)
    return roots


def resolve_under_roots(path: str | os.PathLike, roots: Sequence[Path]) -> Path:
    """``path`` resolved (symlinks followed, ``..`` collapsed) when it lies under one of ``roots``;
    :class:`OutsideRoots` otherwise, before anything about the path itself is looked at."""
    try:
        resolved = Path(path).resolve()
    except (OSError, RuntimeError, ValueError):  # a symlink loop, a NUL byte: no different from outside
        raise OutsideRoots() from None
    if not any(resolved == root or resolved.is_relative_to(root) for root in roots):
        raise OutsideRoots()
    return resolved


def dataset_label(path: Path, roots: Sequence[Path]) -> str:
    """How the app names a dataset: its path from the parent of the (innermost) root holding it."""
    holding = max((root for root in roots if path == root or path.is_relative_to(root)),
                  key=lambda root: len(root.parts), default=None)
    if holding is None:
        raise OutsideRoots()
    return str(path.relative_to(holding.parent)) if holding.parent != holding else str(path)


def find_datasets(roots: Sequence[Path]) -> list[Dataset]:
    """The datasets under ``roots``: image-folder trees (``<split>/<class>/`` or ``<class>/`` folders of
    images) and CSV files whose header is FER2013's (``emotion`` and ``pixels`` columns). A dataset's
    folder is not searched further; links leading outside the roots are not followed."""
    found: dict[Path, Dataset] = {}
    for root in roots:
        for path in _search(root, roots):
            found.setdefault(path, Dataset(path, dataset_label(path, roots)))
    return sorted(found.values(), key=lambda dataset: dataset.label)


def _search(root: Path, roots: Sequence[Path]) -> list[Path]:
    """Datasets under one root, breadth first, at most :data:`SEARCH_DEPTH` levels and
    :data:`SEARCH_LIMIT` folders deep."""
    datasets: list[Path] = []
    level, visited = [root], 0
    for _ in range(SEARCH_DEPTH + 1):
        below: list[Path] = []
        for folder in level:
            visited += 1
            if visited > SEARCH_LIMIT:
                return datasets
            if is_image_tree(folder):
                datasets.append(folder)
                continue
            for entry in _entries(folder):
                try:
                    inside = resolve_under_roots(entry, roots)
                except OutsideRoots:
                    continue
                if inside.is_dir():
                    below.append(inside)
                elif inside.is_file() and is_fer_csv(inside):
                    datasets.append(inside)
        level = below
    return datasets


def _entries(folder: Path) -> list[Path]:
    try:
        return sorted(entry for entry in folder.iterdir() if not entry.name.startswith("."))
    except OSError:
        return []


def _subfolders(folder: Path) -> list[Path]:
    try:
        return [entry for entry in folder.iterdir() if entry.is_dir()]
    except OSError:
        return []


def _is_class_folder_set(folder: Path) -> bool:
    """At least half of the folder's subfolders are emotion classes (as :mod:`fer_core.data.folders` reads)."""
    subfolders = _subfolders(folder)
    return bool(subfolders) and sum(canonical_label(d.name) is not None for d in subfolders) * 2 >= len(subfolders)


def is_image_tree(folder: Path) -> bool:
    """A folder of class folders, or of split folders (``train``, ``validation``…) of class folders."""
    if _is_class_folder_set(folder):
        return True
    return any(normalise_split(d.name) in SPLITS and _is_class_folder_set(d) for d in _subfolders(folder))


def is_fer_csv(path: Path) -> bool:
    """A ``.csv``/``.csv.gz`` file whose first line names the ``emotion`` and ``pixels`` columns."""
    if not path.name.lower().endswith(CSV_SUFFIXES):
        return False
    opener = gzip.open if path.name.lower().endswith(".gz") else open
    try:
        with opener(path, "rb") as f:
            first = f.read(HEADER_BYTES).split(b"\n", 1)[0]
    except (OSError, EOFError):
        return False
    columns = {name.strip().strip('"').lower() for name in first.decode("utf-8", "replace").split(",")}
    return {"emotion", "pixels"} <= columns
