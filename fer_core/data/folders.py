"""Image-folder trees (``<root>/<split>/<class>/*`` or ``<root>/<class>/*``) read as :class:`FaceData`."""

from __future__ import annotations

import errno
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from fer_core.data.faces import FACE_SIZE, SPLITS, DataError, FaceData, LoadResult, Skipped, empty_data, normalise_split
from fer_core.labels import FER_LABELS, canonical_label

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp"}


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


def broken_link(path: Path) -> str | None:
    """Why the symbolic link ``path`` leads nowhere (a loop, or a target that does not exist); ``None``
    for anything else. ``Path.is_file`` says False for both, without a reason."""
    if not path.is_symlink():
        return None
    try:
        path.stat()
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return "symbolic link loop"
        return "dangling symbolic link (its target does not exist)"
    return None


def _split_from_filename(name: str) -> str | None:
    prefix = name.split("_", 1)[0]
    split = normalise_split(prefix)
    return split if split in SPLITS else None


def _class_dirs(root: Path, skipped: list[Skipped]) -> list[tuple[Path, int]]:
    out = []
    for d in sorted(root.iterdir()):
        if not d.is_dir():
            if problem := broken_link(d):
                skipped.append(Skipped(str(d), problem))
            continue
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
                    if problem := broken_link(f):
                        skipped.append(Skipped(str(f), problem))
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
