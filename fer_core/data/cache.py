"""Any data source (Kaggle CSV or image folders) loaded through an ``.npz`` cache keyed on the files' stats."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import warnings
from pathlib import Path

import numpy as np

from fer_core.data.faces import DataError, FaceData, LoadResult, Skipped
from fer_core.data.folders import load_folder
from fer_core.data.kaggle_csv import load_csv

CACHE_VERSION = 1


def is_csv_path(path: Path) -> bool:
    return path.name.lower().endswith((".csv", ".csv.gz"))


def _fingerprint(path: Path, skip_bad_rows: bool) -> str:
    """The cache key: the path, the option and every file's size and time (names as bytes: a name that is
    not UTF-8 counts too). A dangling link or a link loop counts by its error; the loader skips it."""
    h = hashlib.sha256(os.fsencode(f"{CACHE_VERSION}|{path.resolve()}|{skip_bad_rows}"))
    if path.is_file():
        h.update(_stat_key(str(path)))
    else:
        for dirpath, dirnames, filenames in os.walk(path):
            dirnames.sort()
            for name in sorted(filenames):
                h.update(os.fsencode(f"{dirpath}/{name}|") + _stat_key(os.path.join(dirpath, name)) + b"\n")
    return h.hexdigest()[:24]


def _stat_key(path: str) -> bytes:
    try:
        st = os.stat(path)
    except OSError as exc:
        return f"error {exc.errno}".encode()
    return f"{st.st_size}|{st.st_mtime_ns}".encode()


def cache_dir() -> Path:
    return Path(os.environ.get("FER_CACHE_DIR", Path.home() / ".cache" / "fer_core"))


def load_dataset(path: str | os.PathLike, skip_bad_rows: bool = False, use_cache: bool = True) -> LoadResult:
    """Load a Kaggle CSV or an image-folder tree, through an ``.npz`` cache keyed on the files' stats.

    The second load of the full dataset reads one uncompressed array file (well under a second).
    """
    path = Path(path).expanduser()
    if not path.exists():
        raise DataError(f"{path}: no such file or folder")
    cache_file = cache_dir() / f"{_fingerprint(path, skip_bad_rows)}.npz" if use_cache else None
    if cache_file is not None and cache_file.is_file():
        try:
            return _read_cache(cache_file)
        except (OSError, ValueError, KeyError):
            cache_file.unlink(missing_ok=True)
    result = load_csv(path, skip_bad_rows) if is_csv_path(path) else load_folder(path)
    if cache_file is not None:
        _write_cache(cache_file, result)
    return result


def _write_cache(cache_file: Path, result: LoadResult) -> None:
    """Write the cache atomically through a temp file of this writer's own, so that several users
    (threads or processes) loading the same data at once never read or replace each other's
    half-written file. A cache that cannot be written only costs the next load its speed."""
    skipped = json.dumps([[s.source, s.reason] for s in result.skipped])
    d = result.data
    tmp = None
    try:
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{cache_file.stem}.", suffix=".npz", dir=cache_file.parent)
        with os.fdopen(fd, "wb") as f:
            np.savez(f, images=d.images, labels=d.labels, splits=d.splits, sources=d.sources,
                     skipped=np.array(skipped))
        os.replace(tmp, cache_file)
    except OSError as error:
        warnings.warn(f"data cache {cache_file} not written ({error}); loading works, only slower next time",
                      stacklevel=3)
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)


def _read_cache(cache_file: Path) -> LoadResult:
    with np.load(cache_file, allow_pickle=False) as z:
        data = FaceData(z["images"], z["labels"], z["splits"], z["sources"])
        skipped = [Skipped(s, r) for s, r in json.loads(str(z["skipped"]))]
    return LoadResult(data, skipped)
