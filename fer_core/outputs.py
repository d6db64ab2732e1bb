"""Output files and folders of the command line: checked before the work starts, written whole or not at all,
and file names as text that any output (a strict UTF-8 terminal, CSV, JSON, Parquet) can hold.

A command checks each output path it was given (:func:`check_output_file`, :func:`check_output_folder`)
before it computes anything, so a path it cannot write costs a message, not the work. A file is then
written through a temporary file beside it and renamed over it (:func:`write_output`), so a reader never
sees half a file and a failed write leaves the old file as it was. A device or a pipe
(``--json /dev/null``, ``/dev/stdout``) is written in place: it cannot be renamed over.

This module imports nothing of ``fer_core``, so every layer may use it.
"""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import IO


class OutputError(ValueError):
    """An output path that cannot be written; the message names it and says why."""


def display_path(path: str | os.PathLike) -> str:
    """``path`` as text that every output can hold: unchanged when its name is valid UTF-8, else each byte
    that is not written ``\\xNN`` (``caf\\xe9.png`` for a Latin-1 ``café.png``).

    Python reads such names as lone surrogates, which a strict UTF-8 stream, Parquet and most JSON
    readers refuse; the escaped form keeps every byte (as Python's ``backslashreplace`` writes it).
    """
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def _is_special(path: Path) -> bool:
    """True for an existing device, pipe or socket: written in place, never replaced."""
    try:
        return not stat.S_ISREG(path.stat().st_mode) and not path.is_dir()
    except OSError:
        return False


def _probe_folder(folder: Path, shown: str) -> None:
    """Create and remove a file in ``folder``: the only test of writing that holds for every user and
    file system (``os.access`` says yes to root on a read-only mount)."""
    try:
        probe = folder / f".fer-write-test-{os.getpid()}"
        probe.touch(exist_ok=False)
        probe.unlink()
    except OSError as exc:
        raise OutputError(f"{shown}: cannot write in {display_path(folder)} ({exc.strerror or exc})") from None


def check_output_file(path: str | os.PathLike) -> Path:
    """``path`` as a file this process can write (an existing file is replaced), or :class:`OutputError`
    saying why not: it is a folder, its folder does not exist or is not writable. Nothing is written."""
    shown = display_path(path)
    if _is_special(Path(path)):  # /dev/stdout: its link names a pipe that no path leads to
        return Path(path)
    target = Path(os.path.realpath(path))  # a link's target is written, the link stays
    if target.is_dir():
        raise OutputError(f"{shown}: is a folder; give a file name")
    if not target.parent.is_dir():
        raise OutputError(f"{shown}: the folder {display_path(target.parent)} does not exist")
    _probe_folder(target.parent, shown)
    return target


def check_output_folder(path: str | os.PathLike) -> Path:
    """``path`` as a folder this process can write files in, created with its parents where missing, or
    :class:`OutputError` saying why not (it is a file, or it cannot be created or written)."""
    shown = display_path(path)
    folder = Path(path)
    if folder.exists() and not folder.is_dir():
        raise OutputError(f"{shown}: is a file; give a folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"{shown}: cannot create the folder ({exc.strerror or exc})") from None
    _probe_folder(folder, shown)
    return folder


@contextlib.contextmanager
def replacing(path: str | os.PathLike, suffix: str = "") -> Iterator[Path]:
    """A temporary path beside ``path`` to write to, renamed over ``path`` when the block ends without an
    exception (a failed rename is an :class:`OutputError`), removed when it raises. ``suffix`` keeps the
    extension a writer reads its format from. A device or a pipe is handed out as itself, written in place."""
    if _is_special(Path(path)):
        yield Path(path)
        return
    target = Path(os.path.realpath(path))
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp{suffix}")
    try:
        yield tmp
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    try:
        os.replace(tmp, target)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise OutputError(f"{display_path(path)}: not written ({exc.strerror or exc})") from None


def write_output(path: str | os.PathLike, data: bytes | str) -> None:
    """Write ``data`` (text as UTF-8) to ``path`` whole: through a temporary file and a rename, or in place
    for a device or a pipe. Failing, it raises :class:`OutputError` and leaves ``path`` as it was."""
    raw = data.encode() if isinstance(data, str) else data
    try:
        with replacing(path) as tmp, open(tmp, "wb") as f:
            _write_all(f, raw)
    except OSError as exc:
        raise OutputError(f"{display_path(path)}: not written ({exc.strerror or exc})") from None


def _write_all(f: IO[bytes], raw: bytes) -> None:
    f.write(raw)
    f.flush()
    if stat.S_ISREG(os.fstat(f.fileno()).st_mode):
        os.fsync(f.fileno())
