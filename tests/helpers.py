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


def copy_sampled_faces(fer_dir: Path, dest: Path, split: str, n: int, seed: int = 0) -> Path:
    """``dest/<split>/<class>/*.jpg`` holding ``n`` files of the split drawn at random (seeded), so
    that the classes keep about their shares of the split (unlike :func:`copy_real_faces`)."""
    import shutil

    import numpy as np

    files = sorted((fer_dir / split).glob("*/*.jpg"))
    for i in np.random.default_rng(seed).choice(len(files), n, replace=False):
        target = dest / split / files[i].parent.name
        target.mkdir(parents=True, exist_ok=True)
        shutil.copy(files[i], target / files[i].name)
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


def shipped_pair_and_own_models(folder) -> None:
    """Cards (no weights: nothing here loads a model) for the two shipped models, a user's measured
    model and a user's model without a card, in ``folder``."""
    import json

    from fer_core.labels import FER7
    from fer_core.model_card import DEFAULT_MODEL_NAME, FAST_MODEL_NAME

    def write(name: str, **fields) -> None:
        (folder / name).write_bytes(b"weights are not read")
        if fields:
            card_data = {"name": name.removesuffix(".keras"), "scheme": FER7.to_dict(), **fields}
            (folder / name).with_suffix(".json").write_text(json.dumps(card_data))

    write(DEFAULT_MODEL_NAME, architecture="ensemble", parameters=16444782,
          members=[{"name": f"m{i}"} for i in range(6)], metrics={"validation": {"accuracy": 0.71858}})
    write(FAST_MODEL_NAME, parameters=1242919, metrics={"validation": {"accuracy": 0.69601}})
    write("mine.keras", parameters=5000, metrics={"validation": {"accuracy": 0.65}})
    write("bare.keras")


SHIPPED_AND_OWN_LABELS = ["Accurate — ensemble of 6, 71.9 %", "Fast — 1.2 M parameters, 69.6 %",
                          "bare", "mine — 65.0 %"]



def two_people_clip(photo_path: Path, path: Path, frames: int = 6, fps: int = 10) -> Path:
    """Two people side by side, the photo and its mirror image, both drifting right by 3 px a frame
    (640×256; at most 29 frames keep both whole)."""
    import av
    import cv2
    import numpy as np

    photo = cv2.resize(cv2.imread(str(photo_path)), (256, 256))
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=fps)
        stream.width, stream.height, stream.pix_fmt = 640, 256, "yuv420p"
        for i in range(frames):
            frame = np.full((256, 640, 3), 90, np.uint8)
            frame[:, 3 * i:3 * i + 256] = photo
            frame[:, 300 + 3 * i:300 + 3 * i + 256] = photo[:, ::-1]
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="bgr24")))
        container.mux(stream.encode(None))
    return path


def write_clip(path: Path, side: int, frames: int, fps: int = 25) -> Path:
    """An H.264 clip of gray frames (tiny whatever its size: x264 at the lowest quality)."""
    import av

    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width = stream.height = side
        stream.pix_fmt = "yuv420p"
        stream.options = {"preset": "ultrafast", "crf": "51", "tune": "zerolatency", "threads": "1"}
        frame = av.VideoFrame(side, side, "yuv420p")
        for plane in frame.planes:
            plane.update(bytes(plane.buffer_size))
        for index in range(frames):
            frame.pts = index
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return path
