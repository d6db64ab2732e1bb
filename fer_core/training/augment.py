"""Training augmentation in ``keras.ops``: the same recipes on every Keras backend.

Why not TensorFlow ops: the lent GPU machines have JAX but no TensorFlow, so a recipe written in
``tf`` could not train there. Written in ``keras.ops`` with ``keras.random``, each recipe is one
:class:`Augmentation` layer that runs where the backend needs it (see
:func:`fer_core.training.train.train`): in the ``tf.data`` pipeline's threads under TensorFlow (as
keras-io's image_classification_from_scratch does on a CPU), inside the model's training step on
the accelerator under JAX. At inference it is the identity, and it is never part of a published model.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import keras

AUGMENTATIONS = ("one_pass", "three_pass")


@dataclass(frozen=True)
class AffineRanges:
    """Ranges of the one-pass geometric augmentation (uniform draws)."""

    rotation_degrees: float = 12.0
    zoom: float = 0.15  # scale in [1 - zoom, 1 + zoom]
    shift: float = 0.1  # fraction of the side, both axes
    keep_unresampled: float = 0.25  # share of faces only flipped: exactly on the pixel grid


def three_pass_layers() -> keras.Sequential:
    """The "three_pass" recipe: flip, rotation, zoom, shift, brightness and contrast as Keras layers.

    Rotation, zoom and shift each resample the face bilinearly, so every training face is softened
    three times (the reason ``publish`` puts an input blur in front of models trained this way).
    The layers are pinned to float32: under the global ``mixed_bfloat16`` policy they would compute
    in bfloat16, which wrecks the images (most pixels come out black).
    """
    import keras
    from keras import layers

    f32 = {"dtype": "float32"}
    return keras.Sequential(
        [
            layers.RandomFlip("horizontal", **f32),
            layers.RandomRotation(0.04, fill_mode="reflect", **f32),  # ±14°
            layers.RandomZoom((-0.15, 0.15), fill_mode="reflect", **f32),
            layers.RandomTranslation(0.1, 0.1, fill_mode="reflect", **f32),
            layers.RandomBrightness(0.2, value_range=(0, 255), **f32),
            layers.RandomContrast(0.3, value_range=(0, 255), **f32),
        ],
        name="augment",
    )


def affine_transforms(batch, size: int, ranges: AffineRanges, seed):
    """Per-face projective transforms ``(batch, 8)`` (output → input coordinates, the format of
    ``keras.ops.image.affine_transform``): rotation, zoom and shift about the centre, composed into
    one matrix; the identity for the ``keep_unresampled`` share. ``seed``: a ``keras.random.SeedGenerator``."""
    from keras import ops, random

    angle = random.uniform([batch], -1.0, 1.0, seed=seed) * np.deg2rad(ranges.rotation_degrees)
    scale = 1.0 + random.uniform([batch], -ranges.zoom, ranges.zoom, seed=seed)
    shift = random.uniform([batch, 2], -ranges.shift, ranges.shift, seed=seed) * size
    keep = random.uniform([batch], seed=seed) < ranges.keep_unresampled
    # Inverse map: input = R(-angle) / scale · (output - centre - shift) + centre.
    cos, sin = ops.cos(angle) / scale, ops.sin(angle) / scale
    c = (size - 1) / 2.0
    ox, oy = c + shift[:, 0], c + shift[:, 1]
    a0, a1 = cos, sin
    b0, b1 = -sin, cos
    a2 = c - a0 * ox - a1 * oy
    b2 = c - b0 * ox - b1 * oy
    zeros = ops.zeros_like(angle)
    transforms = ops.stack([a0, a1, a2, b0, b1, b2, zeros, zeros], axis=1)
    identity = ops.convert_to_tensor(np.array([[1, 0, 0, 0, 1, 0, 0, 0]], np.float32))
    return ops.where(keep[:, None], identity, transforms)


def random_erasing(images, probability: float, seed, area=(0.02, 0.2), aspect=(0.3, 3.3)):
    """Random erasing (Zhong et al. 2017): with ``probability`` one rectangle of a face becomes
    uniform noise, so the net cannot rely on any single part of the face."""
    from keras import ops, random

    batch, h, w = ops.shape(images)[0], images.shape[1], images.shape[2]
    target = random.uniform([batch], *area, seed=seed) * (h * w)
    ratio = ops.exp(random.uniform([batch], np.log(aspect[0]), np.log(aspect[1]), seed=seed))
    eh = ops.minimum(ops.sqrt(target * ratio), float(h))
    ew = ops.minimum(ops.sqrt(target / ratio), float(w))
    y0 = random.uniform([batch], seed=seed) * (h - eh)
    x0 = random.uniform([batch], seed=seed) * (w - ew)
    rows = ops.arange(h, dtype="float32")[None, :, None]
    cols = ops.arange(w, dtype="float32")[None, None, :]
    inside = ((rows >= y0[:, None, None]) & (rows < (y0 + eh)[:, None, None])
              & (cols >= x0[:, None, None]) & (cols < (x0 + ew)[:, None, None]))
    chosen = random.uniform([batch], seed=seed) < probability
    mask = (inside & chosen[:, None, None])[..., None]
    noise = random.uniform(ops.shape(images), 0.0, 255.0, seed=seed)
    return ops.where(mask, noise, images)


def one_pass_augment(images, seed, ranges: AffineRanges = AffineRanges(), erasing: float = 0.0):
    """Flip, one resampling for rotation + zoom + shift, brightness/contrast, optional erasing.

    Why one pass: the "three_pass" layers resample each face three times, and the net learns on
    softened faces while it is shown sharp ones at inference. Here each face is resampled at most
    once, and ``keep_unresampled`` of them not at all, so sharp faces are part of training.
    """
    from keras import ops, random

    images = ops.cast(images, "float32")
    batch, size = ops.shape(images)[0], images.shape[1]
    flip = random.uniform([batch], seed=seed) < 0.5
    images = ops.where(flip[:, None, None, None], ops.flip(images, axis=2), images)
    images = ops.image.affine_transform(images, affine_transforms(batch, size, ranges, seed),
                                        interpolation="bilinear", fill_mode="reflect", data_format="channels_last")
    brightness = random.uniform([batch, 1, 1, 1], -0.2, 0.2, seed=seed) * 255.0
    contrast = random.uniform([batch, 1, 1, 1], 0.7, 1.3, seed=seed)
    mean = ops.mean(images, axis=[1, 2, 3], keepdims=True)
    images = ops.clip((images - mean) * contrast + mean + brightness, 0.0, 255.0)
    if erasing > 0:
        images = random_erasing(images, erasing, seed)
    return images


def random_crop_shift(images, crop: int, seed):
    """Each face shifted by whole pixels, up to ``crop`` along each axis (uniform draws): the model's
    centre crop of the shifted face is a random crop of the face. Whole-pixel shifts move pixels
    without resampling them; what enters at the border lies outside the crop."""
    from keras import ops, random

    batch = ops.shape(images)[0]
    shift = ops.cast(random.randint([batch, 2], -crop, crop + 1, seed=seed), "float32")
    ones, zeros = ops.ones_like(shift[:, 0]), ops.zeros_like(shift[:, 0])
    # Output → input coordinates: input = output - shift.
    transforms = ops.stack([ones, zeros, -shift[:, 0], zeros, ones, -shift[:, 1], zeros, zeros], axis=1)
    return ops.image.affine_transform(images, transforms, interpolation="nearest", fill_mode="reflect",
                                      data_format="channels_last")


def augmentation_layer(recipe: str = "one_pass", ranges: AffineRanges = AffineRanges(), erasing: float = 0.0,
                       crop: int = 0, seed: int | None = None) -> keras.layers.Layer:
    """The :class:`Augmentation` layer of a recipe (see the module docstring for where it runs)."""
    import keras

    if recipe not in AUGMENTATIONS:
        raise ValueError(f"unknown augmentation {recipe!r}; choose {' or '.join(AUGMENTATIONS)}")

    class Augmentation(keras.layers.Layer):
        """A training recipe on a batch of float 0–255 faces ``(N, 48, 48, 1)``: augmented when
        ``training``, unchanged otherwise. Computes in float32 whatever the global policy (under
        ``mixed_bfloat16`` the resampling would wreck the pixels)."""

        def __init__(self):
            super().__init__(dtype="float32", name=f"augment_{recipe}")
            self.seed_generator = keras.random.SeedGenerator(seed)
            self.three_pass = three_pass_layers() if recipe == "three_pass" else None

        def call(self, images, training=None):
            if not training:
                return images
            if self.three_pass is not None:
                images = self.three_pass(images, training=True)
            else:
                images = one_pass_augment(images, self.seed_generator, ranges, erasing)
            return random_crop_shift(images, crop, self.seed_generator) if crop else images

        def compute_output_shape(self, input_shape):
            return input_shape

    return Augmentation()
