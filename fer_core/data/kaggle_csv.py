"""The Kaggle CSV (``emotion,pixels,Usage``): Arrow reads the text, a vectorised byte-level decoder
turns the pixel strings into faces, and rows that cannot be read are named (or skipped on request)."""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from fer_core.data.faces import FACE_SIZE, N_PIXELS, DataError, FaceData, LoadResult, Skipped, normalise_split
from fer_core.labels import FER_LABELS

if TYPE_CHECKING:
    from collections.abc import Sequence

    import pyarrow as pa


_PARSE_CHUNK = 128  # rows per vectorised step: ~1 MB of text, so the temporaries stay in the CPU cache
_SPACE = 32


def parse_pixel_strings(rows: Sequence[str] | pa.Array | pa.ChunkedArray, n_pixels: int = N_PIXELS,
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

    def parse_block(block: tuple[int, pa.Array]) -> None:
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

    def fit(self, n_bytes: int) -> _Scratch:
        if n_bytes > self.size:
            self.size = n_bytes
            self.text = np.empty(n_bytes, np.uint8)
            self.work = np.empty(n_bytes, np.uint8)
            self.flags = np.empty(n_bytes, bool)
            self.gaps = np.empty(n_bytes, np.intp)
            self.digits = np.empty((3, n_bytes), np.uint8)
            self.values = np.empty(n_bytes, np.uint16)
        return self


def _decode_clean_block(text: pa.Array, n_pixels: int, scratch: _Scratch) -> np.ndarray | None:
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


def _read_kaggle_table(path: Path) -> tuple[pa.Table, dict[int, str]]:
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


def _read_ragged_csv(path: Path) -> tuple[pa.Table, dict[int, str]]:
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


def _as_text(column: pa.ChunkedArray) -> pa.ChunkedArray:
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
        raise DataError(f"{path}: not a readable CSV ({type(exc).__name__})") from exc
    columns = {name.strip().lower(): name for name in table.column_names}
    missing = [c for c in ("emotion", "pixels") if c not in columns]
    if missing:  # the header is not echoed: the file may be anything (a message must not show its contents)
        raise DataError(
            f"{path}: not a FER2013 CSV: missing column(s) {', '.join(missing)} "
            f"(expected emotion,pixels[,Usage]; the header has {table.num_columns} column(s))"
        )
    pixels, bad = parse_pixel_strings(table.column(columns["pixels"]))
    bad.update(bad_shape)  # the row's own fault, rather than what its empty placeholder looks like
    emotion_text = table.column(columns["emotion"]).to_pandas()
    emotion = pd.to_numeric(emotion_text.str.strip(), errors="coerce")
    bad_label = ~emotion.isin(range(len(FER_LABELS))).to_numpy()
    for i in np.flatnonzero(bad_label):
        bad.setdefault(int(i), f"emotion: unknown label (expected 0-{len(FER_LABELS) - 1})")
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
