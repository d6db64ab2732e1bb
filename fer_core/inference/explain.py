"""Why the model decided: Grad-CAM heatmaps and convolutional feature maps for one 48×48 face.

Works for every architecture in :mod:`fer_core.training.architectures`: layers are found by the rank of their
output (4-D = spatial), not by name. For an ensemble (members averaged inside one model) the Grad-CAM
map is the mean of the members' maps, and feature maps are named ``member/layer``.
"""

from __future__ import annotations

import numpy as np

from fer_core.data import FACE_SIZE
from fer_core.model_format import CENTER_CROP, INPUT_BLUR


def ensemble_members(model) -> list:
    """The sub-models an ensemble averages (see :func:`fer_core.training.architectures.build_ensemble`); ``[]`` for a
    plain model."""
    import keras

    return [layer for layer in model.layers if isinstance(layer, keras.Model)]


def _resolve_layer(model, layer_name: str):
    """``(sub-model, layer)`` for ``layer`` or ``member/layer`` (a layer of an ensemble member)."""
    if "/" in layer_name:
        member, _, layer = layer_name.partition("/")
        model = model.get_layer(member)
        return model, model.get_layer(layer)
    return model, model.get_layer(layer_name)


def spatial_layer_names(model) -> list[str]:
    """Layers with a spatial (batch, height, width, channels) output, input order; the input and its
    preprocessing (input blur, centre crop, rescaling) left out."""
    names = []
    for layer in model.layers:
        shape = getattr(layer, "output", None)
        shape = getattr(shape, "shape", None)
        preprocessing = layer.name in (INPUT_BLUR, CENTER_CROP) or layer.__class__.__name__ in ("InputLayer",
                                                                                               "Rescaling")
        if shape is not None and len(shape) == 4 and not preprocessing:
            names.append(layer.name)
    return names


def conv_layer_names(model) -> list[str]:
    """Convolution layers and the pooling layers after them: the choices for feature maps (those of
    every member, as ``member/layer``, for an ensemble)."""
    members = ensemble_members(model)
    if members:
        return [f"{m.name}/{name}" for m in members for name in conv_layer_names(m)]
    kinds = ("Conv2D", "SeparableConv2D", "DepthwiseConv2D", "MaxPooling2D", "AveragePooling2D", "Activation")
    return [n for n in spatial_layer_names(model) if model.get_layer(n).__class__.__name__ in kinds]


def default_cam_layer(model) -> str:
    """The last spatial activation that still feeds a convolution (else the last spatial layer).

    The very last activation goes straight into pooling and the classifier head; its Grad-CAM map
    comes out all negative, hence blank, on some faces; one convolution earlier the maps are
    informative on all of the bundled sample's faces.
    """
    ordered = spatial_layer_names(model)
    spatial = set(ordered)
    if not spatial:
        raise ValueError(f"model {model.name} has no spatial layer for Grad-CAM")
    chosen, latest_activation = None, None
    for layer in model.layers:
        kind = layer.__class__.__name__
        if layer.name in spatial and kind in ("Activation", "ReLU"):
            latest_activation = layer.name
        elif kind in ("Conv2D", "SeparableConv2D", "DepthwiseConv2D") and latest_activation:
            chosen = latest_activation
    return chosen or ordered[-1]


def center_crop_pixels(model) -> int:
    """Pixels per side the model's centre crop removes before its first convolution (0: none)."""
    names = {layer.name for layer in model.layers}
    return int(model.get_layer(CENTER_CROP).cropping[0][0]) if CENTER_CROP in names else 0


def _face_tensor(face: np.ndarray):
    import tensorflow as tf

    face = np.asarray(face)
    if face.shape != (FACE_SIZE, FACE_SIZE):
        raise ValueError(f"face must be {FACE_SIZE}×{FACE_SIZE} gray, got {face.shape}")
    return tf.constant(face.astype(np.float32)[None, ..., None])


def feature_maps(model, face: np.ndarray, layer_name: str) -> np.ndarray:
    """Activations of ``layer_name`` for one face: ``(height, width, channels)`` float32."""
    import keras

    owner, layer = _resolve_layer(model, layer_name)
    probe = keras.Model(owner.inputs, layer.output)
    return np.asarray(probe(_face_tensor(face), training=False), dtype=np.float32)[0]


def grad_cam(model, face: np.ndarray, class_index: int | None = None,
             layer_name: str | None = None) -> tuple[np.ndarray, int]:
    """Grad-CAM heatmap (48×48, 0–1) of ``class_index`` (default: the predicted class) for one face.

    The channel weights are the class score's gradients averaged over space (Selvaraju et al. 2017),
    computed with ``tf.GradientTape`` on the model itself. The score is the class logit, recovered
    from the softmax output as ``log p_c − mean_j log p_j`` (= ``z_c − mean_j z_j``): gradients of
    the probability itself vanish when the model is confident and can turn the whole map negative.
    """
    import cv2
    import keras
    import tensorflow as tf

    members = ensemble_members(model)
    if members:
        if class_index is None:
            class_index = int(np.argmax(model(_face_tensor(face), training=False)[0]))
        cam = np.mean([grad_cam(member, face, class_index)[0] for member in members], axis=0)
        peak = cam.max()
        return (cam / peak if peak > 0 else cam).astype(np.float32), class_index
    layer_name = layer_name or default_cam_layer(model)
    probe = keras.Model(model.inputs, [model.get_layer(layer_name).output, model.output])
    x = _face_tensor(face)
    with tf.GradientTape() as tape:
        activations, probs = probe(x, training=False)
        if class_index is None:
            class_index = int(tf.argmax(probs[0]))
        log_probs = tf.math.log(tf.clip_by_value(tf.cast(probs, tf.float32), 1e-12, 1.0))
        score = log_probs[:, class_index] - tf.reduce_mean(log_probs, axis=-1)
    # Gradients w.r.t. the layer's own output (bf16 in mixed-precision models), then float32 maths.
    grads = tf.cast(tape.gradient(score, activations), tf.float32)
    activations = tf.cast(activations, tf.float32)
    weights = tf.reduce_mean(grads, axis=(1, 2))
    cam = tf.nn.relu(tf.reduce_sum(activations * weights[:, None, None, :], axis=-1))[0].numpy()
    crop = center_crop_pixels(model)  # the map covers only the centre the model sees
    cam = cv2.resize(cam, (FACE_SIZE - 2 * crop,) * 2, interpolation=cv2.INTER_CUBIC)
    cam = np.pad(np.clip(cam, 0, None), crop)
    peak = cam.max()
    return (cam / peak if peak > 0 else cam).astype(np.float32), class_index


def overlay_heatmap(face: np.ndarray, heatmap: np.ndarray, alpha: float = 0.45, scale: int = 4) -> np.ndarray:
    """The face with the heatmap blended on top (jet colour map), enlarged; RGB uint8."""
    import cv2

    size = (face.shape[1] * scale, face.shape[0] * scale)
    gray = cv2.resize(face, size, interpolation=cv2.INTER_NEAREST)
    colours = cv2.applyColorMap((cv2.resize(heatmap, size) * 255).astype(np.uint8), cv2.COLORMAP_JET)
    blended = cv2.addWeighted(cv2.cvtColor(gray, cv2.COLOR_GRAY2BGR), 1 - alpha, colours, alpha, 0)
    return cv2.cvtColor(blended, cv2.COLOR_BGR2RGB)


def feature_map_grid(maps: np.ndarray, columns: int = 8, max_maps: int = 64, cell: int = 48,
                     gap: int = 2) -> np.ndarray:
    """The first ``max_maps`` channels as a grid of gray tiles, each scaled to its own 0–255 range."""
    import cv2

    n = min(maps.shape[-1], max_maps)
    rows = -(-n // columns)
    grid = np.full((rows * (cell + gap) - gap, columns * (cell + gap) - gap), 255, np.uint8)
    for i in range(n):
        channel = maps[..., i]
        low, high = float(channel.min()), float(channel.max())
        tile = np.zeros_like(channel) if high <= low else (channel - low) / (high - low)
        tile = cv2.resize((tile * 255).astype(np.uint8), (cell, cell), interpolation=cv2.INTER_NEAREST)
        r, c = divmod(i, columns)
        grid[r * (cell + gap): r * (cell + gap) + cell, c * (cell + gap): c * (cell + gap) + cell] = tile
    return grid

