"""Random-crop training (``--crop``) and ten-crop test-time augmentation, end to end."""

from __future__ import annotations

import json
from pathlib import Path

import keras
import numpy as np
import pandas as pd
import pytest
from helpers import copy_real_faces

from fer_core.inference.explain import grad_cam
from fer_core.inference.recognizer import EmotionRecognizer, tta_views
from fer_core.model_card import ModelCard
from fer_core.model_format import CENTER_CROP
from fer_core.training.architectures import build_model
from fer_core.training.augment import random_crop_shift
from fer_core.training.publish import publish, publish_ensemble
from fer_core.training.train import TrainConfig, train

CROP = 4
SIDE = 48 - 2 * CROP


def _faces(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, 48, 48, 1)).astype(np.float32)


def _centre(views: np.ndarray) -> np.ndarray:
    return views[..., CROP : CROP + SIDE, CROP : CROP + SIDE, :]


def test_random_crop_shift_shows_the_centre_crop_a_random_crop_of_the_face():
    faces = _faces(200)
    shifted = np.asarray(random_crop_shift(faces, CROP, keras.random.SeedGenerator(0)))
    seen = set()
    for face, out in zip(faces, shifted):
        matches = [(dy, dx) for dy in range(2 * CROP + 1) for dx in range(2 * CROP + 1)
                   if np.array_equal(face[dy : dy + SIDE, dx : dx + SIDE], _centre(out))]
        assert len(matches) == 1  # exactly a crop of the face: pixels moved, never resampled
        seen.add(matches[0])
    assert len(seen) > 40  # offsets spread over the 9×9 possible ones


def test_a_cropping_model_takes_whole_faces_and_ignores_the_border():
    model = build_model("tiny", 7, crop=CROP)
    assert model.input.shape[1:] == (48, 48, 1)
    assert model.get_layer(CENTER_CROP).output.shape[1:] == (SIDE, SIDE, 1)
    faces = _faces(4)
    changed = faces.copy()
    changed[:, :CROP] = 0  # only the border that the crop removes
    changed[:, :, -CROP:] = 255
    np.testing.assert_array_equal(model(faces, training=False), model(changed, training=False))
    with pytest.raises(ValueError, match="crop must be 0 to 8"):
        build_model("tiny", 7, crop=9)


def test_ten_crop_views_are_the_centre_and_corner_crops_and_their_mirrors():
    faces = _faces(3)
    views = tta_views(faces, "ten_crop", CROP)
    assert views.shape == (10, 3, 48, 48, 1)
    corners = [(CROP, CROP), (0, 0), (0, 2 * CROP), (2 * CROP, 0), (2 * CROP, 2 * CROP)]
    for view, (y, x) in zip(views[:5], corners):
        np.testing.assert_array_equal(_centre(view), faces[:, y : y + SIDE, x : x + SIDE])
    np.testing.assert_array_equal(views[5:], views[:5, :, :, ::-1])
    hflip = tta_views(faces, "hflip")
    np.testing.assert_array_equal(hflip, np.stack([faces, faces[:, :, ::-1]]))
    np.testing.assert_array_equal(tta_views(faces, "none"), faces[None])
    with pytest.raises(ValueError, match="unknown test-time augmentation"):
        tta_views(faces, "ten_crop", 0)


@pytest.mark.parametrize("card", [{"tta": "five_crop"}, {"tta": "ten_crop"}, {"tta": "ten_crop", "tta_crop": 9},
                                  {"tta": "hflip", "tta_crop": 2}, {"tta": "ten_crop", "tta_crop": "4"}])
def test_a_card_with_a_bad_tta_is_refused_naming_the_field(tmp_path, card):
    from fer_core.labels import FER7

    with pytest.raises(ValueError, match="tta"):
        ModelCard(tmp_path / "m.keras", {"name": "m", "scheme": FER7.to_dict(), **card}).validate()


def test_a_bad_crop_is_refused_before_any_data_is_read(tmp_path):
    config = TrainConfig(data=str(tmp_path / "nowhere"), out=str(tmp_path / "run"), crop=9)
    with pytest.raises(ValueError, match="crop must be 0 to 8 pixels per side, got 9"):
        train(config, verbose=0)


@pytest.fixture(scope="module")
def crop_run(fer_dir, tmp_path_factory) -> tuple[Path, Path]:
    """A tiny model trained on random 40-pixel crops of 12 training faces per class."""
    data = copy_real_faces(fer_dir, tmp_path_factory.mktemp("faces"), {"train": 12, "validation": 6})
    out = tmp_path_factory.mktemp("crop_run")
    train(TrainConfig(data=str(data), out=str(out), arch="tiny", epochs=2, batch_size=32, warmup_epochs=0,
                      precision="float32", crop=CROP, erasing=0.3), verbose=0)
    return data, out


@pytest.fixture(scope="module")
def cropped(crop_run, tmp_path_factory) -> Path:
    """``crop_run`` published once (card, evaluation, ONNX export) as ``cropped``: the ensembles
    below read it as their member and never change it."""
    data, run = crop_run
    return publish(run, data, "cropped", models_dir=tmp_path_factory.mktemp("cropped"))


@pytest.fixture(scope="module")
def single_view(crop_run, cropped, tmp_path_factory) -> Path:
    """``cropped`` twice, averaged with one view per member (``tta="none"``), weights in float32."""
    data, _ = crop_run
    return publish_ensemble([cropped, cropped], data, "single_view", models_dir=tmp_path_factory.mktemp("ensemble"),
                            tta="none")


def test_a_crop_run_publishes_with_ten_crop_tta(crop_run, cropped):
    """The card records ten crops and the mirror-only figure beside it; the recognizer's TTA is the
    mean of the model's probabilities over the ten views, in Keras and in the ONNX export alike."""
    _, run = crop_run
    assert json.loads((run / "training.json").read_text())["config"]["crop"] == CROP
    card = ModelCard.load(cropped)
    assert (card.tta, card.tta_crop) == ("ten_crop", CROP)
    assert "ten crops" in card.data["tta_description"] and "central 40×40" in card.data["preprocessing"]
    assert 0 <= card.validation["accuracy_hflip"] <= 1
    recognizer = EmotionRecognizer(cropped)
    assert recognizer.backend.startswith("onnxruntime")  # the export passed its check with the crop inside
    faces = _faces(5, seed=1)[..., 0].astype(np.uint8)
    views = tta_views(faces.astype(np.float32)[..., None], "ten_crop", CROP)
    keras_model = keras.models.load_model(cropped, safe_mode=True)
    by_hand = np.mean([keras_model(v, training=False).numpy() for v in views], axis=0)
    np.testing.assert_allclose(recognizer.raw_probabilities(faces), by_hand, atol=1e-4)
    np.testing.assert_allclose(EmotionRecognizer(cropped, use_export=False).raw_probabilities(faces), by_hand,
                               atol=1e-5)
    single = recognizer.raw_probabilities(faces, tta=False)
    np.testing.assert_allclose(single, keras_model(faces[..., None].astype(np.float32)).numpy(), atol=1e-4)


def test_an_ensemble_uses_ten_crops_only_when_every_member_was_trained_on_them(crop_run, cropped, single_view,
                                                                               tmp_path):
    data, _ = crop_run
    whole_run = tmp_path / "whole"
    train(TrainConfig(data=str(data), out=str(whole_run), arch="tiny", epochs=1, batch_size=32, warmup_epochs=0,
                      precision="float32"), verbose=0)
    # The input blur is not the point here: the member is published without trying one.
    whole = publish(whole_run, data, "whole", models_dir=tmp_path, blur_candidates=(0.0,))
    assert ModelCard.load(whole).tta == "hflip" and "accuracy_hflip" not in ModelCard.load(whole).validation
    mixed = ModelCard.load(publish_ensemble([cropped, whole], data, "mixed", models_dir=tmp_path))
    assert (mixed.tta, mixed.tta_crop) == ("hflip", 0)
    assert [m["publish_command"] for m in mixed.data["members"]] == [ModelCard.load(p).data["regenerate"]
                                                                     for p in (cropped, whole)]
    history = pd.read_csv(mixed.history_path)  # the members' curves ship with the ensemble
    assert history.groupby("member").size().to_dict() == {"cropped": 2, "whole": 1}
    cropped_twice = ModelCard.load(publish_ensemble([cropped, cropped], data, "crops", models_dir=tmp_path))
    assert (cropped_twice.tta, cropped_twice.tta_crop) == ("ten_crop", CROP)
    mirrored = ModelCard.load(publish_ensemble([cropped, cropped], data, "mirrored", models_dir=tmp_path,
                                               tta="hflip"))
    assert (mirrored.tta, mirrored.tta_crop) == ("hflip", 0) and "accuracy_hflip" not in mirrored.validation
    assert mirrored.data["regenerate"].endswith("--name mirrored --tta hflip")
    one_view = ModelCard.load(single_view)
    assert one_view.tta == "none" and one_view.data["regenerate"].endswith("--tta none")
    assert one_view.validation["accuracy"] == one_view.validation["accuracy_no_tta"]
    assert one_view.validation["accuracy_hflip"] == mirrored.validation["accuracy"]
    faces = np.arange(2 * 48 * 48, dtype=np.uint8).reshape(2, 48, 48)
    recognizer = EmotionRecognizer(one_view.model_path)
    np.testing.assert_allclose(recognizer.raw_probabilities(faces), recognizer.raw_probabilities(faces, tta=False))
    with pytest.raises(ValueError, match="ensemble tta must be one of auto, hflip, none"):
        publish_ensemble([cropped, cropped], data, "odd", models_dir=tmp_path, tta="five_crop")


def test_an_ensemble_stored_in_float16_takes_half_the_bytes_and_computes_in_float32(crop_run, cropped, single_view,
                                                                                      tmp_path):
    """The float16 ensemble holds the same members as ``single_view``, the float32 one."""
    data, _ = crop_run
    full = single_view
    half = publish_ensemble([cropped, cropped], data, "half", models_dir=tmp_path, tta="none", weights="float16")
    stored = {path: keras.models.load_model(path, safe_mode=True).weights for path in (full, half)}
    assert {str(w.dtype) for w in stored[half]} == {"float16"}
    assert sum(w.numpy().nbytes for w in stored[half]) * 2 == sum(w.numpy().nbytes for w in stored[full])
    recognizer = EmotionRecognizer(half, use_export=False)
    assert {str(w.dtype) for w in recognizer.model.weights} == {"float32"}
    faces = np.random.default_rng(3).integers(0, 256, (16, 48, 48), dtype=np.uint8)
    np.testing.assert_allclose(recognizer.raw_probabilities(faces),
                               EmotionRecognizer(full, use_export=False).raw_probabilities(faces), atol=2e-3)
    card = ModelCard.load(half)
    assert card.data["weights"] == "float16" and card.data["regenerate"].endswith("--tta none --weights float16")
    assert card.exported_model_path is not None  # the ONNX export matched the float16-stored weights
    with pytest.raises(ValueError, match="ensemble weights must be one of float32, float16"):
        publish_ensemble([cropped, cropped], data, "odd", models_dir=tmp_path, weights="int4")


def test_grad_cam_of_a_cropping_model_covers_only_what_it_sees(crop_run):
    _, run = crop_run
    model = keras.models.load_model(run / "best.keras", safe_mode=True)
    face = _faces(1, seed=2)[0, ..., 0].astype(np.uint8)
    border = np.ones((48, 48), bool)
    border[CROP:-CROP, CROP:-CROP] = False
    # The class scores are centred logits, so their maps cancel out before the ReLU: where one
    # class's map is all negative (blank), another's is positive somewhere.
    cams = [grad_cam(model, face, class_index)[0] for class_index in range(7)]
    assert all(cam.shape == (48, 48) and cam[border].max() == 0 for cam in cams)
    assert max(cam.max() for cam in cams) == pytest.approx(1.0)


def _tta_toggle_page(model: str | None) -> None:
    from pathlib import Path

    from fer_core.app.ui import tta_toggle

    tta_toggle(Path(model) if model else None, value=True)


@pytest.mark.parametrize(("card", "expected"), [
    ({"tta": "ten_crop", "tta_crop": 4}, "ten times"),
    ({"tta": "hflip"}, "twice"),
    (None, "twice"),
])
def test_the_tta_toggle_says_what_the_models_card_averages(tmp_path, card, expected):
    from streamlit.testing.v1 import AppTest

    from fer_core.labels import FER7
    from fer_core.model_card import TTA_MODES

    model = None
    if card is not None:
        model = tmp_path / "m.keras"
        model.write_bytes(b"")
        ModelCard(model, {"name": "m", "scheme": FER7.to_dict(), **card,
                          "tta_description": TTA_MODES[card["tta"]]}).save()
    at = AppTest.from_function(_tta_toggle_page, args=(str(model) if model else None,)).run()
    assert not at.exception
    help_text = at.sidebar.toggle[0].proto.help
    assert expected in help_text
    assert TTA_MODES[card["tta"] if card else "hflip"] in help_text
