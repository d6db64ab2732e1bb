"""The recognizer on real faces, the detect → crop → classify pipeline, drawing and the Upload page's helpers.

These use an untrained tiny model: they check shapes, probabilities and plumbing, never accuracy.
"""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from fer_core.app.upload import analyze_upload
from fer_core.data import load_dataset
from fer_core.inference.crop import crop_faces, face_crop_card
from fer_core.inference.detect import detector_for
from fer_core.inference.draw import EMOTION_RGB, annotate, color_hex, draw_emoji
from fer_core.inference.images import ImageError, decode_image
from fer_core.inference.pipeline import FaceResult, analyze_image, classify_whole_image
from fer_core.labels import FER_LABELS
from fer_core.model_card import ModelCard
from fer_core.model_format import FACE_MARGIN


@pytest.fixture(scope="module")
def validation_faces(fer_dir) -> np.ndarray:
    data = load_dataset(fer_dir / "validation", skip_bad_rows=True).data
    picks = np.random.default_rng(0).choice(len(data), 16, replace=False)
    return data.images[picks]


@pytest.fixture(scope="module")
def astronaut_bgr(astronaut_path) -> np.ndarray:
    return cv2.imread(str(astronaut_path))


class RecordingRecognizer:
    """Wraps a recognizer, with its own card, and records the faces of every ``predict_proba`` call."""

    def __init__(self, recognizer, card: ModelCard | None = None):
        self.inner = recognizer
        self.labels = recognizer.labels
        self.card = card if card is not None else recognizer.card
        self.calls: list[np.ndarray] = []

    def predict_proba(self, faces, tta=True):
        self.calls.append(faces)
        return self.inner.predict_proba(faces, tta=tta)


def test_recognizer_on_validation_faces(tiny_recognizer, validation_faces):
    probs = tiny_recognizer.predict_proba(validation_faces)
    assert probs.shape == (16, 7)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    predictions = tiny_recognizer.predict(validation_faces[:3])
    assert [tuple(p.probabilities) for p in predictions] == [FER_LABELS] * 3


def test_tta_averages_the_face_and_its_mirror(tiny_recognizer, validation_faces):
    plain = tiny_recognizer.predict_proba(validation_faces, tta=False)
    mirrored = tiny_recognizer.predict_proba(validation_faces[:, :, ::-1], tta=False)
    with_tta = tiny_recognizer.predict_proba(validation_faces, tta=True)
    np.testing.assert_allclose(with_tta, (plain + mirrored) / 2, atol=1e-5)
    assert not np.allclose(with_tta, plain, atol=1e-7, rtol=0)


def test_analyze_image_finds_the_astronaut(tiny_recognizer, astronaut_bgr):
    results = analyze_image(astronaut_bgr, tiny_recognizer)
    assert len(results) == 1
    face = results[0]
    assert face.index == 0 and len(face.box) == 4 and all(isinstance(v, int) for v in face.box)
    assert list(face.probabilities) == list(FER_LABELS)
    assert sum(face.probabilities.values()) == pytest.approx(1.0, abs=1e-5)
    assert face.label == max(face.probabilities, key=face.probabilities.get)
    assert face.confidence == face.probabilities[face.label]


def test_all_faces_of_an_image_go_to_the_model_in_one_call(tiny_recognizer, astronaut_bgr):
    recording = RecordingRecognizer(tiny_recognizer)
    pair = np.hstack([astronaut_bgr, astronaut_bgr[:, ::-1]])
    results = analyze_image(pair, recording)
    assert [len(faces) for faces in recording.calls] == [2]
    assert [r.index for r in results] == [0, 1]
    assert results[0].box[0] < 512 <= results[1].box[0]  # numbered left to right


def test_the_crop_margin_comes_from_the_model_card(tiny_recognizer, astronaut_bgr):
    assert ModelCard(tiny_recognizer.model_path, {}).crop_margin == FACE_MARGIN
    data = {**tiny_recognizer.card.data, "face_crop": face_crop_card(margin=0.25)}
    card = ModelCard(tiny_recognizer.model_path, data)
    recording = RecordingRecognizer(tiny_recognizer, card)
    results = analyze_image(astronaut_bgr, recording, detector_for("haar"))  # the margin given is Haar's
    gray = cv2.cvtColor(astronaut_bgr, cv2.COLOR_BGR2GRAY)
    np.testing.assert_array_equal(recording.calls[0], crop_faces(gray, [results[0].box], margin=0.25))
    assert not np.array_equal(recording.calls[0], crop_faces(gray, [results[0].box], margin=FACE_MARGIN))


def test_no_face_then_classify_the_whole_image(tiny_recognizer):
    blank = np.full((120, 90, 3), 128, np.uint8)
    assert analyze_image(blank, tiny_recognizer) == []
    whole = classify_whole_image(blank, tiny_recognizer)
    assert whole.box == (0, 0, 90, 120)
    assert sum(whole.probabilities.values()) == pytest.approx(1.0, abs=1e-5)


def test_whole_image_of_a_fer_face_is_that_face(tiny_recognizer, validation_faces):
    face = validation_faces[0]
    whole = classify_whole_image(cv2.cvtColor(face, cv2.COLOR_GRAY2BGR), tiny_recognizer, tta=False)
    direct = tiny_recognizer.predict_proba(face[None], tta=False)[0]
    np.testing.assert_allclose(list(whole.probabilities.values()), direct, atol=1e-6)


def result(label: str, box=(40, 40, 80, 80), index=0) -> FaceResult:
    probs = {name: 0.02 for name in FER_LABELS}
    probs[label] = 1 - 0.02 * 6
    return FaceResult(index, box, probs)


def test_annotate_draws_on_a_copy():
    image = np.full((200, 300, 3), 255, np.uint8)
    plain = annotate(image, [result("happy")])
    assert image.min() == 255  # input untouched
    assert plain.shape == image.shape and plain.dtype == np.uint8
    assert (plain[40:120, 40] != 255).any()  # the box's left edge
    with_bars = annotate(image, [result("happy")], bars=True)
    assert (with_bars[45:120, 125:] != 255).any() and (plain[45:120, 125:] == 255).all()  # beside the box
    with_emoji = annotate(image, [result("happy")], emoji=True)
    assert (with_emoji[80, 80] != plain[80, 80]).any()  # emoji over the face centre


def test_each_emotion_has_its_own_emoji_and_colour():
    drawings = []
    for label in FER_LABELS:
        canvas = np.full((100, 100, 3), 255, np.uint8)
        draw_emoji(canvas, (50, 50), 40, label, alpha=1.0)
        drawings.append(canvas)
    for i in range(len(drawings)):
        for j in range(i + 1, len(drawings)):
            assert not np.array_equal(drawings[i], drawings[j]), (FER_LABELS[i], FER_LABELS[j])
    assert len({color_hex(label) for label in FER_LABELS}) == len(FER_LABELS)
    assert set(FER_LABELS) <= set(EMOTION_RGB)


def test_annotate_handles_faces_at_the_border_and_other_label_schemes():
    image = np.zeros((60, 60, 3), np.uint8)
    border = FaceResult(0, (30, 0, 30, 30), {"not_happy": 0.3, "happy": 0.7})
    other = FaceResult(1, (0, 30, 30, 30), {"calm": 0.6, "tense": 0.4})
    out = annotate(image, [border, other], emoji=True, bars=True)
    assert out.shape == image.shape and out.any()


def test_upload_analysis_and_its_downloads(tiny_recognizer, astronaut_path):
    analysis = analyze_upload(astronaut_path.read_bytes(), "astronaut.png", tiny_recognizer)
    assert len(analysis.results) == 1 and not analysis.whole_image
    table = analysis.table()
    assert list(table.columns) == ["face", "x", "y", "w", "h", "label", "confidence", *FER_LABELS]
    assert table["face"].tolist() == [1]
    csv_lines = analysis.csv().decode().splitlines()
    assert csv_lines[0].startswith("face,x,y,w,h,label") and len(csv_lines) == 2
    record = json.loads(analysis.json())
    assert record["path"] == "astronaut.png"
    assert record["faces"][0]["box"] == list(analysis.results[0].box)
    png = decode_image(analysis.annotated_png(emoji=True, bars=True), "annotated.png")
    assert png.shape == analysis.image.shape
    assert analysis.download_name("annotated.png") == "astronaut_annotated.png"
    assert np.array_equal(analysis.preview()[:, :, ::-1], analysis.annotated())  # RGB, full size
    assert analysis.preview(max_side=256).shape == (256, 256, 3)


def test_upload_of_a_picture_without_face_can_be_classified_whole(tiny_recognizer):
    blank = cv2.imencode(".png", np.full((64, 64, 3), 200, np.uint8))[1].tobytes()
    assert analyze_upload(blank, "wall.png", tiny_recognizer).results == []
    whole = analyze_upload(blank, "wall.png", tiny_recognizer, whole_image=True)
    assert whole.whole_image and whole.results[0].box == (0, 0, 64, 64)


def test_upload_of_a_hostile_file_is_an_image_error(tiny_recognizer):
    with pytest.raises(ImageError, match="evil.jpg: not an image"):
        analyze_upload(b"<?php system($_GET['c']); ?>", "evil.jpg", tiny_recognizer)


@pytest.mark.parametrize("shape", [(1, 5000), (5000, 1), (2, 5000), (5000, 2), (1, 1), (2, 1)],
                         ids=lambda s: f"{s[0]}x{s[1]}")
def test_extreme_aspect_ratios_through_detect_classify_and_draw(tiny_recognizer, shape):
    image = np.full((*shape, 3), 128, np.uint8)
    assert analyze_image(image, tiny_recognizer) == []
    whole = classify_whole_image(image, tiny_recognizer)
    assert whole.box == (0, 0, shape[1], shape[0])
    assert sum(whole.probabilities.values()) == pytest.approx(1.0, abs=1e-5)
    drawn = annotate(image, [whole], emoji=True, bars=True)
    assert drawn.shape == image.shape


def test_upload_of_a_thin_strip_has_a_preview(tiny_recognizer):
    strip = cv2.imencode(".png", np.full((1, 5000, 3), 200, np.uint8))[1].tobytes()
    whole = analyze_upload(strip, "strip.png", tiny_recognizer, whole_image=True)
    assert whole.preview().shape == (1, 1600, 3)  # not 0 pixels high
    assert whole.face_crops().shape == (1, 48, 48)


def test_annotate_skips_what_lies_outside_the_image():
    image = np.full((30, 30, 3), 255, np.uint8)
    outside = FaceResult(0, (100, 100, 20, 20), {"happy": 0.7, "sad": 0.3})
    assert annotate(image, [outside], emoji=True, bars=True).shape == image.shape
