"""Grad-CAM, feature maps and the Explain page."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from fer_core.app.ui import SAMPLE_DATA, plain
from fer_core.data import load_dataset
from fer_core.inference.explain import (
    conv_layer_names,
    default_cam_layer,
    feature_map_grid,
    feature_maps,
    grad_cam,
    overlay_heatmap,
)
from fer_core.inference.recognizer import EmotionRecognizer
from fer_core.model_card import default_model_path
from fer_core.training.architectures import ARCHITECTURES, build_model, with_input_blur

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def sample_faces():
    return load_dataset(SAMPLE_DATA).data


@pytest.mark.parametrize("arch", sorted(ARCHITECTURES))
def test_grad_cam_and_feature_maps_work_for_every_architecture(arch, sample_faces):
    model = build_model(arch, 7)
    face = sample_faces.images[0]
    heatmap, predicted = grad_cam(model, face)
    assert heatmap.shape == (48, 48) and heatmap.dtype == np.float32
    assert 0.0 <= heatmap.min() and heatmap.max() <= 1.0
    assert 0 <= predicted < 7
    layers = conv_layer_names(model)
    assert default_cam_layer(model) in layers
    first = feature_maps(model, face, layers[0])
    assert first.shape[:2] == (48, 48)
    last = feature_maps(model, face, layers[-1])
    assert last.shape[0] < 48
    grid = feature_map_grid(first, columns=4, max_maps=8, cell=10, gap=1)
    assert grid.shape == (2 * 11 - 1, 4 * 11 - 1)


def test_the_input_blur_is_preprocessing_not_a_layer_to_explain(sample_faces):
    model = build_model("tiny", 7)
    blurred = with_input_blur(model, 0.6)
    assert conv_layer_names(blurred) == conv_layer_names(model)
    assert default_cam_layer(blurred) == default_cam_layer(model)
    heatmap, _ = grad_cam(blurred, sample_faces.images[0])
    assert heatmap.shape == (48, 48)


def test_grad_cam_on_real_faces_with_the_shipped_model(sample_faces):
    path = default_model_path()
    if not path.is_file():
        pytest.skip(f"shipped model {path} not present")
    # as the pages load it: through the recognizer, which computes a float16-stored ensemble in float32
    model = EmotionRecognizer(path, use_export=False).model
    # A face of each class (each map costs a pass per member: six for the shipped ensemble).
    faces = np.stack([sample_faces.images[sample_faces.labels == label][0] for label in range(7)])
    for face in faces:  # the predicted emotion
        heatmap, _ = grad_cam(model, face)
        assert heatmap.std() > 0.05, "Grad-CAM heatmap is (nearly) constant on a real face"
        assert heatmap.max() == pytest.approx(1.0)
    happy = faces[3]
    # Explaining another emotion gives another map.
    other, _ = grad_cam(model, happy, class_index=0)
    assert not np.allclose(other, grad_cam(model, happy, class_index=3)[0])


def test_overlay_is_rgb_and_enlarged(sample_faces):
    heatmap = np.linspace(0, 1, 48 * 48, dtype=np.float32).reshape(48, 48)
    image = overlay_heatmap(sample_faces.images[0], heatmap, scale=3)
    assert image.shape == (144, 144, 3) and image.dtype == np.uint8
    assert image[-1, -1, 0] > image[-1, -1, 2]  # hot corner is red, not blue (RGB order)


def test_explain_page_on_a_sample_face(tiny_model_path, monkeypatch):
    monkeypatch.setenv("FER_MODEL", str(tiny_model_path))
    at = AppTest.from_file(str(ROOT / "app_pages" / "6_Explain.py"), default_timeout=90).run()
    assert not at.exception
    assert len(at.get("imgs")) >= 1 or len(at.get("image")) >= 1
    at.selectbox[0].set_value("sad").run()
    assert not at.exception
    assert "true label **sad**" in at.markdown[0].value
    at.selectbox[2].set_value(at.selectbox[2].options[0]).run()
    assert not at.exception


def test_upload_face_crops_are_what_the_model_classified(astronaut_path, tiny_recognizer):
    from fer_core.app.upload import analyze_upload

    data = astronaut_path.read_bytes()
    analysis = analyze_upload(data, "astronaut.png", tiny_recognizer, tta=False)
    crops = analysis.face_crops()
    assert crops.shape == (1, 48, 48)
    again = tiny_recognizer.predict_proba(crops, tta=False)[0]
    np.testing.assert_allclose(again, list(analysis.results[0].probabilities.values()), rtol=1e-5)
    heatmap, _ = grad_cam(tiny_recognizer.model, crops[0])
    assert heatmap.shape == (48, 48)
    whole = analyze_upload(data, "astronaut.png", tiny_recognizer, tta=False, whole_image=True)
    assert whole.margin == 0.0 and whole.face_crops().shape == (1, 48, 48)


def test_explain_page_detects_an_uploaded_photo_once(tiny_model_path, astronaut_path, monkeypatch):
    """Changing the emotion or layer to explain reruns the page; the photo's faces come from the cache."""
    import fer_core.app.upload as upload_module

    calls = []
    original = upload_module.analyze_upload
    monkeypatch.setattr(upload_module, "analyze_upload", lambda *a, **k: calls.append(a[1]) or original(*a, **k))
    monkeypatch.setenv("FER_MODEL", str(tiny_model_path))
    at = AppTest.from_file(str(ROOT / "app_pages" / "6_Explain.py"), default_timeout=90).run()
    at.radio[0].set_value("From a photo").run()
    at.file_uploader[0].set_value(("astronaut_once.png", astronaut_path.read_bytes(), "image/png")).run()
    assert not at.exception
    assert any(plain("astronaut_once.png") in m.value for m in at.markdown)  # the name is shown as text
    at.selectbox[-1].set_value(at.selectbox[-1].options[0]).run()
    at.slider[0].set_value(16).run()
    assert not at.exception
    assert calls == ["astronaut_once.png"]
