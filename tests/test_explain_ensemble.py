"""Grad-CAM and feature maps of an ensemble model (members averaged inside one model)."""

from __future__ import annotations

import numpy as np

from fer_core.inference.explain import (
    conv_layer_names,
    ensemble_members,
    feature_maps,
    grad_cam,
)
from fer_core.training.architectures import build_ensemble, build_model, with_input_blur


def test_grad_cam_of_an_ensemble_averages_its_members():
    import keras

    keras.utils.set_random_seed(0)
    members = [with_input_blur(build_model("tiny", 7), 0.5), build_model("tiny", 7)]
    ensemble = build_ensemble(members)
    face = np.random.default_rng(1).integers(0, 256, (48, 48)).astype(np.uint8)
    heatmap, predicted = grad_cam(ensemble, face)
    assert heatmap.shape == (48, 48) and 0 <= heatmap.min() and heatmap.max() <= 1
    assert predicted == int(np.argmax(ensemble(face[None, ..., None].astype(np.float32))[0]))
    parts = [grad_cam(m, face, predicted)[0] for m in ensemble_members(ensemble)]
    expected = np.mean(parts, axis=0)
    np.testing.assert_allclose(heatmap, expected / expected.max(), atol=1e-5)

    names = conv_layer_names(ensemble)
    assert names and all("/" in n for n in names)
    assert {n.split("/")[0] for n in names} == {m.name for m in ensemble_members(ensemble)}
    maps = feature_maps(ensemble, face, names[0])
    assert maps.ndim == 3 and maps.shape[:2] == (48, 48)
