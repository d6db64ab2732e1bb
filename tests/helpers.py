"""Helpers shared by test modules (fixtures live in conftest.py)."""

from __future__ import annotations

from pathlib import Path


def copy_real_faces(fer_dir: Path, dest: Path, per_class: dict[str, int]) -> Path:
    """A small ``<split>/<class>/*.jpg`` tree of real FER2013 faces: the first ``per_class[split]``
    files of each class of each split named in ``per_class`` (e.g. ``{"train": 12, "validation": 6}``)."""
    import shutil

    from fer_core.labels import FER_LABELS

    for split, n in per_class.items():
        for label in FER_LABELS:
            (dest / split / label).mkdir(parents=True)
            for f in sorted((fer_dir / split / label).iterdir())[:n]:
                shutil.copy(f, dest / split / label / f.name)
    return dest


def fail_analysis_of_frame(monkeypatch, n: int) -> None:
    """Make the video analysis raise on its ``n``-th analysed frame, as a bug on an odd frame would."""
    import fer_core.inference.video

    real, calls = fer_core.inference.video.analyze_image, []

    def analyze_image(image, *args, **kwargs):
        calls.append(1)
        if len(calls) == n:
            raise ValueError("odd frame")
        return real(image, *args, **kwargs)

    monkeypatch.setattr(fer_core.inference.video, "analyze_image", analyze_image)
