"""Many users at once on one recognizer: the Streamlit server shares one cached EmotionRecognizer
(and one face detector) between every session, each session running on its own thread.

Eight threads analyse different photos through the same recognizer at the same moment and must get
exactly what one thread gets alone: the same boxes, probabilities equal within 1e-5, no exception.
The browser side of this (several Chromium sessions, two live streams) is in tests/test_browser.py;
the speed under that load is benchmarks/bench_concurrency.py.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np
import pytest

from fer_core.data import load_dataset
from fer_core.inference.pipeline import FaceResult, analyze_image
from fer_core.model_card import PROJECT_ROOT, default_model_path

pytestmark = pytest.mark.slow

SAMPLE_DATA = PROJECT_ROOT / "data" / "sample"
THREADS = 8
ROUNDS = 3  # each thread goes through every photo this many times, starting at a different photo


@pytest.fixture(scope="module")
def recognizer(request):
    """The shipped model when there is one (what the app serves), else the untrained tiny model."""
    from fer_core.inference.recognizer import EmotionRecognizer

    shipped = default_model_path()
    return EmotionRecognizer(shipped if shipped.is_file() else request.getfixturevalue("tiny_model_path"))


def on_canvas(image: np.ndarray, size: tuple[int, int], at: tuple[int, int], gray: int = 110) -> np.ndarray:
    """``image`` pasted at ``(x, y)`` on a plain canvas of ``(width, height)``."""
    canvas = np.full((size[1], size[0], 3), gray, np.uint8)
    x, y = at
    canvas[y : y + image.shape[0], x : x + image.shape[1]] = image
    return canvas


def fer_face_canvases(count: int) -> list[np.ndarray]:
    """Canvases with three FER2013 sample faces each, enlarged to 160 px (big enough to be detected)."""
    faces = load_dataset(SAMPLE_DATA).data.images
    canvases = []
    for i in range(count):
        row = [cv2.cvtColor(cv2.resize(faces[(7 * i + k * 31) % len(faces)], (160, 160), interpolation=cv2.INTER_CUBIC),
                            cv2.COLOR_GRAY2BGR) for k in range(3)]
        canvases.append(on_canvas(np.hstack(row), (600, 260), (60 - 10 * i, 40 + 15 * i)))
    return canvases


def photo_set(astronaut_path: Path) -> list[np.ndarray]:
    photo = cv2.imread(str(astronaut_path))
    scaled_down = cv2.resize(photo, None, fx=0.6, fy=0.6, interpolation=cv2.INTER_AREA)
    scaled_up = cv2.resize(photo, None, fx=1.5, fy=1.5, interpolation=cv2.INTER_LINEAR)
    return [photo, photo[:, ::-1].copy(), scaled_down, scaled_up,
            on_canvas(photo, (900, 700), (350, 150)), on_canvas(scaled_down, (640, 480), (20, 100)),
            *fer_face_canvases(4)]


def assert_same_results(got: list[FaceResult], expected: list[FaceResult], where: str) -> None:
    assert [r.box for r in got] == [r.box for r in expected], where
    np.testing.assert_allclose([list(r.probabilities.values()) for r in got],
                               [list(r.probabilities.values()) for r in expected], atol=1e-5, err_msg=where)


def test_eight_threads_on_one_recognizer_get_the_results_of_one_thread(recognizer, astronaut_path):
    photos = photo_set(astronaut_path)
    alone = [analyze_image(photo, recognizer) for photo in photos]
    assert sum(map(len, alone)) >= len(photos), "the photos should show faces to classify"

    start = threading.Barrier(THREADS)

    def one_user(thread: int) -> list[tuple[int, list[FaceResult]]]:
        start.wait()  # every thread starts at once
        order = [(thread + k) % len(photos) for k in range(ROUNDS * len(photos))]
        return [(i, analyze_image(photos[i], recognizer)) for i in order]

    with ThreadPoolExecutor(THREADS) as pool:
        outcomes = list(pool.map(one_user, range(THREADS)))  # re-raises the first exception of any thread

    for thread, results in enumerate(outcomes):
        assert len(results) == ROUNDS * len(photos)
        for i, got in results:
            assert_same_results(got, alone[i], f"thread {thread}, photo {i}")
