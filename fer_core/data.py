"""FER2013 data layer: the Kaggle CSV (``emotion,pixels,Usage``) and image-folder trees.

Both readers produce the same :class:`FaceData`: 48×48 ``uint8`` faces, FER2013 label indices, the
split of each face (``Training`` / ``PublicTest`` / ``PrivateTest`` where known) and where it came
from (file path or CSV row). Whatever cannot be read is listed in :attr:`LoadResult.skipped` with the
reason; nothing is dropped silently.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .labels import FER_LABELS, canonical_label

if TYPE_CHECKING:
    from collections.abc import Sequence

    import pyarrow as pa

FACE_SIZE = 48
N_PIXELS = FACE_SIZE * FACE_SIZE
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp"}
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
CACHE_VERSION = 1


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

    def subset(self, mask: np.ndarray) -> "FaceData":
        return FaceData(self.images[mask], self.labels[mask], self.splits[mask], self.sources[mask])

    def split(self, name: str) -> "FaceData":
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


# --------------------------------------------------------------------------- Kaggle CSV


_PARSE_CHUNK = 128  # rows per vectorised step: ~1 MB of text, so the temporaries stay in the CPU cache
_SPACE = 32


def parse_pixel_strings(rows: "Sequence[str] | pa.Array | pa.ChunkedArray", n_pixels: int = N_PIXELS,
                        workers: int = 2) -> tuple[np.ndarray, dict[int, str]]:
    """Parse space-separated pixel strings to a ``(len(rows), n_pixels)`` uint8 array.

    ``rows`` is a list of strings or an Arrow string column (as read by ``pyarrow.csv``; its text is
    used in place). Blocks of well-formed rows (1–3 digit numbers ≤ 255 separated by single spaces)
    are decoded from their bytes with whole-array NumPy operations, which release the GIL, on
    ``workers`` threads. A block that fails any check is parsed row by row with NumPy's C text parser
    to name each bad row. Returns the array (bad rows left zero) and ``{row index: reason}`` for rows
    with a wrong count, a non-numeric token or a value outside 0–255. No per-pixel Python either way.
    """
    import pyarrow as pa

    column = rows if isinstance(rows, (pa.Array, pa.ChunkedArray)) else pa.array(list(rows), pa.string())
    chunks = column.chunks if isinstance(column, pa.ChunkedArray) else [column]
    blocks, first = [], 0
    for chunk in chunks:
        for offset in range(0, len(chunk), _PARSE_CHUNK):
            blocks.append((first + offset, chunk.slice(offset, _PARSE_CHUNK)))
        first += len(chunk)
    out = np.zeros((first, n_pixels), np.uint8)
    bad: dict[int, str] = {}
    scratch = threading.local()

    def parse_block(block: tuple[int, "pa.Array"]) -> None:
        start, text = block
        if not hasattr(scratch, "arrays"):
            scratch.arrays = _Scratch()
        values = _decode_clean_block(text, n_pixels, scratch.arrays)
        if values is not None:
            out[start : start + len(text)] = values
            return
        for i, row in enumerate(text.to_pylist(), start):
            values, reason = _parse_one_row(row, n_pixels)
            if reason:
                bad[i] = reason
            else:
                out[i] = values

    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(parse_block, blocks))
    return out, bad


class _Scratch:
    """Work arrays reused from block to block, one set per thread: fresh megabyte-sized temporaries
    for every block cost more in page faults than the arithmetic on them."""

    def __init__(self) -> None:
        self.size = 0

    def fit(self, n_bytes: int) -> "_Scratch":
        if n_bytes > self.size:
            self.size = n_bytes
            self.text = np.empty(n_bytes, np.uint8)
            self.work = np.empty(n_bytes, np.uint8)
            self.flags = np.empty(n_bytes, bool)
            self.gaps = np.empty(n_bytes, np.intp)
            self.digits = np.empty((3, n_bytes), np.uint8)
            self.values = np.empty(n_bytes, np.uint16)
        return self


def _decode_clean_block(text: "pa.Array", n_pixels: int, scratch: _Scratch) -> np.ndarray | None:
    """Rows of exactly ``n_pixels`` 1–3 digit numbers ≤ 255 separated by single spaces, else ``None``.

    Works on the Arrow array's UTF-8 bytes. They are copied after 3 spaces, each row followed by a
    space, so that every number ends just before a space and the 3 bytes before each space exist:
    the ones, tens and hundreds digits, the latter two counted when the number is that long.
    """
    rows = len(text)
    if rows == 0 or text.null_count:
        return None
    _, offset_buffer, data_buffer = text.buffers()
    offsets = np.frombuffer(offset_buffer, np.int64 if text.type == "large_string" else np.int32)
    offsets = offsets[text.offset : text.offset + rows + 1].astype(np.intp)
    begin = int(offsets[0])
    offsets -= begin
    tokens, size = rows * n_pixels, int(offsets[-1])
    s = scratch.fit(size + rows + 3)
    data = np.frombuffer(data_buffer, np.uint8, size, begin)
    padded = s.text[: size + rows + 3]
    padded[:3] = _SPACE
    body = padded[3:]
    row_stops = offsets[1:].tolist()
    for row, (a, b) in enumerate(zip([0, *row_stops], row_stops)):
        body[a + row : b + row] = data[a:b]
        body[b + row] = _SPACE
    flags = np.equal(body, _SPACE, out=s.flags[: len(body)])
    ends = np.flatnonzero(flags)  # where each number's space is in ``body``
    if len(ends) != tokens or (ends[n_pixels - 1 :: n_pixels] != offsets[1:] + np.arange(rows)).any():
        return None  # a wrong count in some row
    np.less(np.subtract(body, 48, out=s.work[: len(body)]), 10, out=flags)
    if np.count_nonzero(flags) + tokens != len(body):
        return None  # a byte that is neither a digit nor a space
    gaps = s.gaps[:tokens]  # number length + 1
    gaps[0] = ends[0] + 1
    np.subtract(ends[1:], ends[:-1], out=gaps[1:])
    if gaps.min() < 2 or gaps.max() > 4:
        return None  # an empty number (two spaces in a row) or one of 4 digits or more
    # ``padded[k + end]`` is ``body[end - 3 + k]``: hundreds (k=0), tens (k=1) and ones (k=2).
    hundreds, tens, ones = (np.take(padded[k:], ends, out=s.digits[k, :tokens], mode="clip") for k in range(3))
    np.multiply(hundreds & 15, tens > 47, out=hundreds)  # hundreds count only if the tens are a digit
    values = np.multiply(hundreds, np.uint16(100), out=s.values[:tokens], dtype=np.uint16)
    values += np.multiply(tens & 15, 10, out=tens)  # a space reads 0
    values += np.bitwise_and(ones, 15, out=ones)
    if values.max() > 255:
        return None
    return values.reshape(rows, n_pixels)


def _parse_one_row(row: str | None, n_pixels: int) -> tuple[np.ndarray | None, str | None]:
    """One row with NumPy's C parser (any whitespace); ``(values, None)`` or ``(None, reason)``."""
    try:
        values = np.fromstring(row or "", dtype=np.int64, sep=" ")
    except (ValueError, TypeError):
        return None, "pixels: non-numeric value"
    if len(values) != n_pixels:
        return None, f"pixels: {len(values)} values, expected {n_pixels}"
    if values.min() < 0 or values.max() > 255:
        return None, "pixels: value outside 0-255"
    return values.astype(np.uint8), None


def _read_kaggle_table(path: Path) -> tuple["pa.Table", dict[int, str]]:
    """The CSV with every column as text, and the rows (0-based, header excluded) that could not be
    split into the header's columns, with the reason. Arrow's multi-threaded reader does the work;
    a file it refuses (e.g. a row with an extra field) is read row by row instead."""
    import pyarrow as pa
    import pyarrow.csv as pa_csv

    try:
        table = pa_csv.read_csv(path)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return _read_ragged_csv(path)
    return pa.table({name: _as_text(column) for name, column in zip(table.column_names, table.columns)}), {}


def _read_ragged_csv(path: Path) -> tuple["pa.Table", dict[int, str]]:
    """Python's CSV reader, row by row: a row with the wrong number of fields becomes an empty row
    (so that later rows keep their numbers) and is reported, instead of failing the whole file."""
    import csv
    import gzip

    import pyarrow as pa

    opener = gzip.open if path.name.lower().endswith(".gz") else open
    with opener(path, "rt", newline="") as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if not header:
            raise DataError(f"{path}: not a readable CSV (no header row)")
        rows, bad = [], {}
        for fields in reader:
            if not fields:  # a blank line is no row at all, as in Arrow and pandas
                continue
            if len(fields) != len(header):
                bad[len(rows)] = f"{len(fields)} fields, expected {len(header)}"
                fields = [""] * len(header)
            rows.append(fields)
    columns = list(zip(*rows)) if rows else [()] * len(header)
    return pa.table({name: pa.array(column, pa.string()) for name, column in zip(header, columns)}), bad


def _as_text(column: "pa.ChunkedArray") -> "pa.ChunkedArray":
    """A column as strings with nulls (empty cells of a numeric column) as empty strings."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if not pa.types.is_string(column.type):
        column = pc.cast(column, pa.string())
    return pc.fill_null(column, "") if column.null_count else column


def load_csv(path: str | os.PathLike, skip_bad_rows: bool = False) -> LoadResult:
    """Read the Kaggle ``fer2013.csv`` (or ``.csv.gz``): columns ``emotion``, ``pixels``, ``Usage``.

    Bad rows (wrong pixel count, non-numeric pixels, unknown label) raise :class:`DataError` naming
    the row, unless ``skip_bad_rows`` is set: then they are left out and listed in ``skipped``.
    Rows are numbered as in a spreadsheet: the header is row 1, the first face row 2.
    """
    import csv

    import pandas as pd

    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    try:
        table, bad_shape = _read_kaggle_table(path)
    except (csv.Error, UnicodeDecodeError, EOFError, OSError) as exc:
        raise DataError(f"{path}: not a readable CSV ({exc})") from exc
    columns = {name.strip().lower(): name for name in table.column_names}
    missing = [c for c in ("emotion", "pixels") if c not in columns]
    if missing:
        raise DataError(
            f"{path}: missing column(s) {', '.join(missing)}; expected emotion,pixels[,Usage], "
            f"found {','.join(name.strip() for name in table.column_names)}"
        )
    pixels, bad = parse_pixel_strings(table.column(columns["pixels"]))
    bad.update(bad_shape)  # the row's own fault, rather than what its empty placeholder looks like
    emotion_text = table.column(columns["emotion"]).to_pandas()
    emotion = pd.to_numeric(emotion_text.str.strip(), errors="coerce")
    bad_label = ~emotion.isin(range(len(FER_LABELS))).to_numpy()
    for i in np.flatnonzero(bad_label):
        bad.setdefault(int(i), f"emotion: unknown label {emotion_text.iat[i]!r}")
    if "usage" in columns:
        usage = table.column(columns["usage"]).to_pandas()
        split_of = {u: normalise_split(u) if u.strip() else "unsplit" for u in usage.unique()}
        splits = usage.map(split_of).to_numpy(str)
    else:
        splits = np.full(len(pixels), "unsplit")

    skipped = [Skipped(f"{path.name} row {i + 2}", reason) for i, reason in sorted(bad.items())]
    if skipped and not skip_bad_rows:
        shown = "; ".join(str(s) for s in skipped[:5])
        more = f" (and {len(skipped) - 5} more)" if len(skipped) > 5 else ""
        raise DataError(f"{len(skipped)} bad row(s): {shown}{more}")
    keep = np.ones(len(pixels), bool)
    keep[list(bad)] = False
    images = pixels[keep] if bad else pixels  # no 80 MB copy when every row is good
    data = FaceData(
        images.reshape(-1, FACE_SIZE, FACE_SIZE),
        emotion.to_numpy()[keep].astype(np.int64),
        splits[keep],
        np.char.add("row ", (np.flatnonzero(keep) + 2).astype(str)),
    )
    return LoadResult(data, skipped)


def write_csv(data: FaceData, path: str | os.PathLike) -> None:
    """Write faces in the Kaggle layout (``emotion,pixels,Usage``); ``.gz`` compresses."""
    import pandas as pd

    flat = data.images.reshape(len(data), -1)
    pixels = [" ".join(map(str, row)) for row in flat.tolist()]
    pd.DataFrame({"emotion": data.labels, "pixels": pixels, "Usage": data.splits}).to_csv(
        path, index=False, compression="infer"
    )


# --------------------------------------------------------------------------- image folders


def read_face_image(path: str | os.PathLike) -> np.ndarray | None:
    """A face file as 48×48 uint8 gray (converted and resized as needed); ``None`` if unreadable."""
    import cv2

    try:
        raw = np.fromfile(path, dtype=np.uint8)
    except OSError:
        return None
    if raw.size == 0:
        return None
    image = cv2.imdecode(raw, cv2.IMREAD_GRAYSCALE)
    if image is None:
        return None
    if image.dtype != np.uint8:
        image = (image / 257).astype(np.uint8)
    if image.shape != (FACE_SIZE, FACE_SIZE):
        image = cv2.resize(image, (FACE_SIZE, FACE_SIZE), interpolation=cv2.INTER_AREA)
    return image


def _split_from_filename(name: str) -> str | None:
    prefix = name.split("_", 1)[0]
    split = normalise_split(prefix)
    return split if split in SPLITS else None


def _class_dirs(root: Path, skipped: list[Skipped]) -> list[tuple[Path, int]]:
    out = []
    for d in sorted(p for p in root.iterdir() if p.is_dir()):
        label = canonical_label(d.name)
        if label is None:
            skipped.append(Skipped(str(d), f"unknown class folder {d.name!r}"))
        else:
            out.append((d, FER_LABELS.index(label)))
    return out


def _is_class_layout(root: Path) -> bool:
    dirs = [p for p in root.iterdir() if p.is_dir()]
    return bool(dirs) and sum(canonical_label(d.name) is not None for d in dirs) * 2 >= len(dirs)


def list_image_files(root: str | os.PathLike) -> tuple[list[tuple[Path, int, str]], list[Skipped]]:
    """``(file, FER label, split)`` for ``<root>/<split>/<class>/*`` or ``<root>/<class>/*``."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: no such folder")
    skipped: list[Skipped] = []
    if _is_class_layout(root):
        groups = [(None, _class_dirs(root, skipped))]
    else:
        groups = [(normalise_split(d.name), _class_dirs(d, skipped)) for d in sorted(root.iterdir()) if d.is_dir()]
    files = []
    for split, classes in groups:
        for class_dir, label in classes:
            for f in sorted(class_dir.iterdir()):
                if not f.is_file():
                    continue
                if f.suffix.lower() not in IMAGE_SUFFIXES:
                    skipped.append(Skipped(str(f), "not an image file (by extension)"))
                    continue
                files.append((f, label, split or _split_from_filename(f.name) or "unsplit"))
    return files, skipped


def load_folder(root: str | os.PathLike, workers: int = 8) -> LoadResult:
    """Read an image-folder tree (see :func:`list_image_files`); unreadable files go to ``skipped``."""
    files, skipped = list_image_files(root)
    with ThreadPoolExecutor(workers) as pool:
        images = list(pool.map(lambda item: read_face_image(item[0]), files))
    keep = [i for i, img in enumerate(images) if img is not None]
    skipped += [Skipped(str(files[i][0]), "unreadable or not an image") for i, img in enumerate(images) if img is None]
    if not keep:
        data = empty_data()
    else:
        data = FaceData(
            np.stack([images[i] for i in keep]),
            np.array([files[i][1] for i in keep], np.int64),
            np.array([files[i][2] for i in keep]),
            np.array([str(files[i][0]) for i in keep]),
        )
    return LoadResult(data, skipped)


# --------------------------------------------------------------------------- any source, cached


def is_csv_path(path: Path) -> bool:
    return path.name.lower().endswith((".csv", ".csv.gz"))


def _fingerprint(path: Path, skip_bad_rows: bool) -> str:
    h = hashlib.sha256(f"{CACHE_VERSION}|{path.resolve()}|{skip_bad_rows}".encode())
    if path.is_file():
        st = path.stat()
        h.update(f"{st.st_size}|{st.st_mtime_ns}".encode())
    else:
        for dirpath, dirnames, filenames in os.walk(path):
            dirnames.sort()
            for name in sorted(filenames):
                st = os.stat(os.path.join(dirpath, name))
                h.update(f"{dirpath}/{name}|{st.st_size}|{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:24]


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
    cache_file.parent.mkdir(parents=True, exist_ok=True)
    tmp = cache_file.with_suffix(".tmp.npz")
    skipped = json.dumps([[s.source, s.reason] for s in result.skipped])
    d = result.data
    np.savez(tmp, images=d.images, labels=d.labels, splits=d.splits, sources=d.sources, skipped=np.array(skipped))
    os.replace(tmp, cache_file)


def _read_cache(cache_file: Path) -> LoadResult:
    with np.load(cache_file, allow_pickle=False) as z:
        data = FaceData(z["images"], z["labels"], z["splits"], z["sources"])
        skipped = [Skipped(s, r) for s, r in json.loads(str(z["skipped"]))]
    return LoadResult(data, skipped)


def summary_text(result: LoadResult) -> str:
    """Counts per split × class as an aligned table, then what was skipped."""
    counts = result.counts()
    out = io.StringIO()
    header = f"{'split':<12}" + "".join(f"{name:>9}" for name in FER_LABELS) + f"{'total':>9}"
    out.write(header + "\n")
    for split, per_class in counts.items():
        out.write(f"{split:<12}" + "".join(f"{n:>9}" for n in per_class.values()) + f"{sum(per_class.values()):>9}\n")
    out.write(f"{len(result.data)} faces")
    if result.skipped:
        out.write(f"; {len(result.skipped)} skipped:\n")
        for s in result.skipped:
            out.write(f"  {s}\n")
    else:
        out.write(", nothing skipped\n")
    return out.getvalue()
