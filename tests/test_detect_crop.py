"""Face detection (Haar cascade) and the FER-framed crop."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from fer_core.inference.crop import crop_faces, square_around
from fer_core.inference.detect import DetectorError
from fer_core.inference.detect.base import clip_box
from fer_core.inference.detect.haar import FRAME_SETTINGS, PHOTO_SETTINGS, HaarDetector, load_cascade


@pytest.fixture(scope="module")
def astronaut(astronaut_path) -> np.ndarray:
    return cv2.imread(str(astronaut_path))


def assert_astronaut_face(box, scale: float = 1.0) -> None:
    """Her face spans about x 175–270, y 65–160 in the 512×512 photo."""
    x, y, w, h = (v / scale for v in box)
    assert 200 < x + w / 2 < 250 and 90 < y + h / 2 < 140, box
    assert 70 < w < 140 and w == pytest.approx(h, abs=2), box


def test_astronaut_has_exactly_one_face(astronaut):
    boxes = HaarDetector(PHOTO_SETTINGS).detect(astronaut)
    assert len(boxes) == 1
    assert_astronaut_face(boxes[0])


def test_large_photo_is_detected_on_a_downscaled_copy_and_boxes_come_back_in_its_pixels(astronaut):
    big = np.full((2400, 3200, 3), 90, np.uint8)  # detection runs on a 1024×768 copy
    big[1000:1512, 2000:2512] = astronaut
    boxes = HaarDetector(PHOTO_SETTINGS).detect(big)
    assert len(boxes) == 1
    x, y, w, h = boxes[0]
    assert_astronaut_face((x - 2000, y - 1000, w, h))


def test_frame_settings_find_the_face_in_a_webcam_sized_frame(astronaut):
    frame = np.full((480, 640, 3), 90, np.uint8)
    frame[:, 80:560] = cv2.resize(astronaut, (480, 480))
    boxes = HaarDetector(FRAME_SETTINGS).detect(frame)
    assert len(boxes) == 1
    x, y, w, h = boxes[0]
    assert_astronaut_face((x - 80, y, w, h), scale=480 / 512)


def test_gray_input_and_blank_image():
    detector = HaarDetector(PHOTO_SETTINGS)
    assert detector.detect(np.full((300, 400), 128, np.uint8)) == []


def test_faces_smaller_than_min_face_are_not_reported(astronaut):
    small = cv2.resize(astronaut, (160, 160))  # her face is now about 30 px
    assert HaarDetector(PHOTO_SETTINGS).detect(small) == []


def test_missing_cascade_is_a_clear_error(tmp_path):
    with pytest.raises(DetectorError, match="not found"):
        load_cascade(str(tmp_path / "haarcascade_frontalface_default.xml"))


def test_clip_box():
    assert clip_box((-10, -5, 30, 20), 100, 100) == (0, 0, 20, 15)
    assert clip_box((90, 95, 30, 20), 100, 100) == (90, 95, 10, 5)
    assert clip_box((120, 0, 10, 10), 100, 100) is None


def test_square_around_adds_the_margin_on_every_side():
    assert square_around((100, 100, 50, 50), 0.0) == (100, 100, 50)
    assert square_around((100, 100, 50, 50), 0.1) == (95, 95, 60)
    assert square_around((0, 0, 80, 40), 0.0) == (0, -20, 80)  # squared around the centre


def test_crop_faces_shape_and_content():
    gray = np.zeros((200, 200), np.uint8)
    gray[50:150, 50:150] = 255
    faces = crop_faces(gray, [(50, 50, 100, 100), (0, 0, 20, 20)], margin=0.0)
    assert faces.shape == (2, 48, 48) and faces.dtype == np.uint8
    assert faces[0].min() == 255  # exactly the white square
    assert faces[1].max() == 0
    with_margin = crop_faces(gray, [(50, 50, 100, 100)], margin=0.25)[0]
    assert with_margin[0, 0] == 0 and with_margin[24, 24] == 255  # margin shows the black around it


def test_crop_past_the_edge_repeats_edge_pixels_instead_of_black():
    gray = np.full((100, 100), 200, np.uint8)
    face = crop_faces(gray, [(0, 0, 60, 60)], margin=0.3)[0]
    assert face.min() == 200


def test_crop_faces_with_no_box_and_bad_input():
    assert crop_faces(np.zeros((10, 10), np.uint8), []).shape == (0, 48, 48)
    with pytest.raises(ValueError, match="2-D uint8"):
        crop_faces(np.zeros((10, 10, 3), np.uint8), [(0, 0, 5, 5)])


EXTREME_SHAPES = [(1, 5000), (5000, 1), (2, 5000), (5000, 2), (1, 1), (3, 3), (23, 40000), (1, 200_000)]


@pytest.mark.parametrize("settings", [PHOTO_SETTINGS, FRAME_SETTINGS], ids=["photo", "frame"])
@pytest.mark.parametrize("shape", EXTREME_SHAPES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_extreme_aspect_ratios_have_no_face_and_do_not_crash(shape, settings):
    # A 1×5000 strip scaled to the detector's 1024-px copy used to be 0 pixels high: cv2.resize raised.
    assert HaarDetector(settings).detect(np.full((*shape, 3), 128, np.uint8)) == []


def test_a_face_in_a_wide_strip_is_still_found(astronaut):
    strip = np.full((512, 1600, 3), 90, np.uint8)  # 2:1 wider than the detector's copy: still downscaled
    strip[:, 544:1056] = astronaut
    faces = [(x - 544, y, w, h) for x, y, w, h in HaarDetector(PHOTO_SETTINGS).detect(strip) if 544 <= x < 1056]
    assert faces, "the astronaut's face was not found"
    assert_astronaut_face(faces[0])


@pytest.mark.parametrize("shape", EXTREME_SHAPES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_crop_of_a_whole_extreme_image_repeats_its_edges(shape):
    gray = np.zeros(shape, np.uint8)
    gray[..., shape[1] // 2 :] = 255  # left half black, right half white
    face = crop_faces(gray, [(0, 0, shape[1], shape[0])])[0]
    assert face.shape == (48, 48)
    if shape[1] >= 48:  # wide: the strip spans the square, repeated up and down
        assert (face == face[0]).all() and face[:, 0].max() == 0 and face[:, -1].min() == 255


def test_crop_square_far_larger_than_the_image_is_built_small():
    # The whole of a 1×2,000,000 strip is a 2,000,000-px square: 4 TB at full size.
    gray = np.full((1, 2_000_000), 77, np.uint8)
    assert (crop_faces(gray, [(0, 0, 2_000_000, 1)])[0] == 77).all()


def test_crop_of_a_box_outside_the_image_repeats_the_nearest_pixel():
    gray = np.arange(100, dtype=np.uint8).reshape(10, 10)
    assert (crop_faces(gray, [(50, 50, 10, 10)])[0] == 99).all()
