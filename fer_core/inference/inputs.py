"""The inputs of ``predict`` and ``batch``: the paths a user names expanded into the files to analyse, and
the reason an input could not be used, worded the same by both commands.

Folders are searched recursively (files sorted per folder) for the kinds a command analyses; ``batch``
also reads ``.txt``/``.lst`` files as lists of paths. A named file is taken as it is (its analysis then
says why it cannot be used) and a path that does not exist is an input in its own right: each gets its
record or row, so every input is accounted for.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from fer_core.inference.images import IMAGE_TYPES, failure_reason

VIDEO_TYPES = ("mp4", "mov", "m4v", "mkv", "webm", "avi", "mpg", "mpeg", "wmv", "flv", "3gp", "ogv", "ts")
LIST_TYPES = ("txt", "lst")
MISSING_REASON = "no such file or folder"


@dataclass(frozen=True)
class Input:
    """One input path and what it is: ``image``, ``video`` or ``missing`` (does not exist)."""

    path: str
    kind: str


def media_kind(path: Path) -> str | None:
    """``image`` or ``video`` by the file's extension; ``None`` for other files."""
    suffix = path.suffix.lower().lstrip(".")
    return "image" if suffix in IMAGE_TYPES else "video" if suffix in VIDEO_TYPES else None


def listed_paths(list_file: Path) -> list[Path]:
    """The paths in a text file, one a line (blank lines and ``#`` comments skipped); relative paths
    are taken from the list's own folder, so a list travels with the files it names."""
    lines = (line.strip() for line in list_file.read_text(errors="replace").splitlines())
    return [Path(os.path.normpath(list_file.parent / line)) for line in lines if line and not line.startswith("#")]


def expand_inputs(paths: Iterable[str | os.PathLike], kinds: tuple[str, ...] = ("image", "video"),
                  read_lists: bool = True) -> list[Input]:
    """The files named in ``paths``, each once, in the order given: folders searched recursively for files of
    ``kinds``, ``.txt``/``.lst`` files read as lists of paths when ``read_lists``, other named files taken
    as they are (as images unless their extension says video), paths that do not exist as ``missing``."""
    found: dict[str, Input] = {}

    def add(path: Path, lists_seen: frozenset[Path]) -> None:
        if path.is_dir():
            for file in sorted(p for p in path.rglob("*") if p.is_file() and media_kind(p) in kinds):
                found.setdefault(str(file), Input(str(file), media_kind(file)))
        elif read_lists and path.suffix.lower().lstrip(".") in LIST_TYPES and path.is_file():
            if path.resolve() not in lists_seen:  # a list naming itself is read once
                for listed in listed_paths(path):
                    add(listed, lists_seen | {path.resolve()})
        else:
            kind = (media_kind(path) or "image") if path.exists() else "missing"
            found.setdefault(str(path), Input(str(path), kind))

    for path in paths:
        add(Path(path), frozenset())
    return list(found.values())


def find_images(paths: Iterable[str | os.PathLike]) -> tuple[list[Path], list[Path]]:
    """``predict``'s inputs: the image files named in ``paths`` (folders searched recursively, no lists;
    a path named twice is analysed twice) and, apart, the paths that do not exist (inputs in their own
    right: the caller reports them)."""
    found = [one for path in paths for one in expand_inputs([path], kinds=("image",), read_lists=False)]
    return ([Path(i.path) for i in found if i.kind != "missing"], [Path(i.path) for i in found if i.kind == "missing"])


def input_failure(path: str, exc: BaseException) -> str:
    """Why the input ``path`` could not be used, in one line without its name: what an unreadable image
    or video says (:func:`~fer_core.inference.images.failure_reason`), or the type of a fault of ours."""
    from fer_core.inference.video import VideoError

    if isinstance(exc, VideoError):  # says what is wrong with the clip, after the file's name
        return str(exc).removeprefix(f"{Path(path).name}: ")
    return failure_reason(path, exc)
