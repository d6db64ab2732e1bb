"""CNN builders (Keras functional API). Every model takes raw 0–255 gray faces of shape (48, 48, 1)
and rescales inside, so the preprocessing travels with the ``.keras`` file.

A builder's ``crop`` (pixels per side, 0 = none) puts a fixed centre crop right after the input: the
net sees the central ``48 - 2·crop`` pixels. Training then shows it random crops (the augmentation
shifts each face by up to ``crop`` pixels) and test-time augmentation averages several crops
(:func:`fer_core.inference.recognizer.tta_views`), while every caller still passes 48×48 faces."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import TYPE_CHECKING

from fer_core.model_format import CENTER_CROP, INPUT_BLUR, MAX_CROP

if TYPE_CHECKING:
    import keras
    import numpy as np

INPUT_SHAPE = (48, 48, 1)
# Keras' default BatchNorm momentum (0.99) lets the moving statistics keep their initial values
# (variance 1) for ~1000 steps, while the real activation variances here are ~0.01: validation
# accuracy then sits near chance for the first epochs. 0.9 tracks them within ~50 steps.
BN_MOMENTUM = 0.9


def _face_input(crop: int = 0):
    """The model's 48×48×1 input and the tensor the net starts from: its centre crop when ``crop`` > 0."""
    import keras
    from keras import layers

    if not 0 <= crop <= MAX_CROP:
        raise ValueError(f"crop must be 0 to {MAX_CROP} pixels per side, got {crop}")
    inputs = keras.Input(INPUT_SHAPE, name="face")
    # float32: under the global mixed_bfloat16 policy the layer would compute in bfloat16.
    x = layers.Cropping2D(crop, dtype="float32", name=CENTER_CROP)(inputs) if crop else inputs
    return inputs, x


def _conv_bn_relu(x, filters: int, kernel: int = 3):
    from keras import layers

    x = layers.Conv2D(filters, kernel, padding="same", use_bias=False)(x)
    x = layers.BatchNormalization(momentum=BN_MOMENTUM)(x)
    return layers.Activation("relu")(x)


def _dense_bn_relu(x, units: int, dropout: float):
    from keras import layers

    x = layers.Dense(units, use_bias=False)(x)
    x = layers.BatchNormalization(momentum=BN_MOMENTUM)(x)
    x = layers.Activation("relu")(x)
    return layers.Dropout(dropout)(x)


def _softmax_head(x, n_classes: int):
    from keras import layers

    # float32 output keeps probabilities exact under bf16 mixed precision.
    return layers.Dense(n_classes, activation="softmax", dtype="float32", name="probabilities")(x)


def build_seed(n_classes: int, crop: int = 0) -> keras.Model:
    """The seed notebook's net: 4 conv blocks (64 3×3, 128 5×5, 512 3×3, 512 3×3), dense 256 and 512."""
    import keras
    from keras import layers

    inputs, x = _face_input(crop)
    x = layers.Rescaling(1.0 / 255)(x)
    for filters, kernel in ((64, 3), (128, 5), (512, 3), (512, 3)):
        x = _conv_bn_relu(x, filters, kernel)
        x = layers.MaxPooling2D(2)(x)
        x = layers.Dropout(0.25)(x)
    x = layers.Flatten()(x)
    x = _dense_bn_relu(x, 256, 0.25)
    x = _dense_bn_relu(x, 512, 0.25)
    return keras.Model(inputs, _softmax_head(x, n_classes), name="seed")


def build_vgg_compact(n_classes: int, width: int = 32, dropout: float = 0.5, crop: int = 0) -> keras.Model:
    """Our default: a VGG-style net sized for a 2-core CPU.

    Four stages of two 3×3 conv-BN-ReLU layers (width, 2×, 4×, 8× channels) with max-pooling, then
    global average pooling, one dense layer and dropout before the classifier. Pooling early keeps
    the costly 48×48 stage thin; global pooling keeps the head small (≈1.2 M parameters at width 32).
    Dropout sits only after the last BatchNorm: dropout feeding a BatchNorm layer shifts its variance
    between training and inference and costs validation accuracy.
    """
    import keras
    from keras import layers

    inputs, x = _face_input(crop)
    x = layers.Rescaling(1.0 / 255)(x)
    for stage in range(4):
        filters = width * 2**stage
        x = _conv_bn_relu(x, filters)
        x = _conv_bn_relu(x, filters)
        x = layers.MaxPooling2D(2)(x)
    x = layers.GlobalAveragePooling2D()(x)
    x = _dense_bn_relu(x, 256, dropout)
    return keras.Model(inputs, _softmax_head(x, n_classes), name=f"vgg_compact_w{width}")


def build_vgg_wide(n_classes: int, crop: int = 0) -> keras.Model:
    """``vgg_compact`` at width 48: ≈2.7 M parameters and 2.25× the arithmetic per face."""
    return build_vgg_compact(n_classes, width=48, crop=crop)


def _preactivation_block(x, filters: int, stride: int):
    """A pre-activation residual block (He et al., 2016, "Identity Mappings in Deep Residual
    Networks"): BN-ReLU-conv 3×3 (``stride``), BN-ReLU-conv 3×3, added to the shortcut. The shortcut
    is the block's input, or a 1×1 convolution of its pre-activated input where the block changes
    the shape (stride or channels)."""
    from keras import layers

    preactivated = layers.Activation("relu")(layers.BatchNormalization(momentum=BN_MOMENTUM)(x))
    shortcut = x
    if stride != 1 or x.shape[-1] != filters:
        shortcut = layers.Conv2D(filters, 1, strides=stride, use_bias=False)(preactivated)
    y = layers.Conv2D(filters, 3, strides=stride, padding="same", use_bias=False)(preactivated)
    y = layers.Activation("relu")(layers.BatchNormalization(momentum=BN_MOMENTUM)(y))
    y = layers.Conv2D(filters, 3, padding="same", use_bias=False)(y)
    return layers.Add()([shortcut, y])


def build_resnet_preact(n_classes: int, width: int = 40, crop: int = 0) -> keras.Model:
    """A pre-activation ResNet-18 for faces: a member that errs unlike the VGG nets.

    A 3×3 stem of ``width`` channels at full resolution, then four stages of two pre-activation
    blocks (``width``, 2×, 4×, 8× channels; the last three halve the resolution by a strided
    convolution: 40 → 20 → 10 → 5 pixels on 40-pixel crops), a final BN-ReLU, global average pooling
    and the classifier. ≈4.4 M parameters at width 40 (ResNet-18's 64 gives ≈11 M).
    """
    import keras
    from keras import layers

    inputs, x = _face_input(crop)
    x = layers.Rescaling(1.0 / 255)(x)
    x = layers.Conv2D(width, 3, padding="same", use_bias=False)(x)
    for stage, stride in enumerate((1, 2, 2, 2)):
        x = _preactivation_block(x, width * 2**stage, stride)
        x = _preactivation_block(x, width * 2**stage, 1)
    x = layers.Activation("relu")(layers.BatchNormalization(momentum=BN_MOMENTUM)(x))
    x = layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, _softmax_head(x, n_classes), name=f"resnet_preact_w{width}")


def build_tiny(n_classes: int, crop: int = 0) -> keras.Model:
    """A very small net for tests and quick experiments (seconds per epoch on a subset)."""
    return build_vgg_compact(n_classes, width=8, dropout=0.2, crop=crop)


ARCHITECTURES: dict[str, Callable[..., keras.Model]] = {
    "vgg_compact": build_vgg_compact,
    "vgg_wide": build_vgg_wide,
    "seed": build_seed,
    "tiny": build_tiny,
    "resnet_preact": build_resnet_preact,
}


def _takes_width(arch: str) -> bool:
    return "width" in inspect.signature(ARCHITECTURES[arch]).parameters


def check_architecture(arch: str, width: int = 0) -> None:
    """Refuse an unknown architecture, or a ``width`` (0: the default) it cannot take."""
    if arch not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {arch!r}; choose from {', '.join(ARCHITECTURES)}")
    if width < 0:
        raise ValueError(f"width must be positive, or 0 for the architecture's default; got {width}")
    if width and not _takes_width(arch):
        widths = ", ".join(name for name in ARCHITECTURES if _takes_width(name))
        raise ValueError(f"architecture {arch!r} has a fixed width; a width is for {widths}")


def build_model(arch: str, n_classes: int, crop: int = 0, width: int = 0) -> keras.Model:
    """Build an architecture by name (see :data:`ARCHITECTURES`), centre-cropping ``crop`` pixels per
    side; ``width`` (first-stage channels) for the architectures that take one, 0 for their default."""
    check_architecture(arch, width)
    builder = ARCHITECTURES[arch]
    return builder(n_classes, width=width, crop=crop) if width else builder(n_classes, crop=crop)


def gaussian_kernel_3x3(sigma: float) -> np.ndarray:
    """A normalised 3×3 Gaussian kernel (float32); ``sigma`` 0 gives the identity."""
    import numpy as np

    if sigma <= 0:
        kernel = np.zeros((3, 3), np.float32)
        kernel[1, 1] = 1.0
        return kernel
    side = np.exp(-np.arange(-1, 2) ** 2 / (2 * sigma**2))
    kernel = np.outer(side, side)
    return (kernel / kernel.sum()).astype(np.float32)


def with_input_blur(model: keras.Model, sigma: float) -> keras.Model:
    """A copy of ``model`` with a fixed 3×3 Gaussian blur of its input face in front.

    Why: every training face goes through the augmentation's rotation, zoom and shift, three
    bilinear resamplings that soften it, while faces at inference are sharp. Blurring them a little
    brings them back to what the net learned on (measured on the validation split by ``publish``,
    which picks ``sigma``). The blur is a standard ``DepthwiseConv2D`` inside the model file, so every
    path that loads the model (recognizer, evaluation, Grad-CAM) sees it; ``padding="same"`` pads
    with zeros, which darkens only the 1-px border a little.
    Any functional graph (chains, residual blocks, ensembles): the copy runs the same graph with
    copies of the layers (a layer belongs to one graph only) and their weights, every layer that read
    the input reading the blurred input instead.
    """
    import keras
    from keras import layers

    if any(layer.name == INPUT_BLUR for layer in model.layers):
        raise ValueError(f"model {model.name} already has an input blur")
    if len(model.inputs) != 1:
        raise ValueError(f"model {model.name} has {len(model.inputs)} inputs; an input blur needs one")
    blur = layers.DepthwiseConv2D(3, padding="same", use_bias=False, trainable=False, dtype="float32",
                                  name=INPUT_BLUR)
    inputs = keras.Input(model.inputs[0].shape[1:], name=model.layers[0].name)
    blurred = blur(inputs)
    blur.set_weights([gaussian_kernel_3x3(sigma)[:, :, None, None]])
    originals = {}

    def copy_layer(layer):
        copy = layer.__class__.from_config(layer.get_config())
        originals[id(copy)] = layer
        return copy

    def call_on_blurred_input(copy, *args, **kwargs):
        args = keras.tree.map_structure(lambda arg: blurred if arg is inputs else arg, args)
        outputs = copy(*args, **kwargs)
        copy.set_weights(originals[id(copy)].get_weights())
        return outputs

    return keras.models.clone_model(model, input_tensors=inputs, clone_function=copy_layer,
                                    call_function=call_on_blurred_input)


WEIGHT_DTYPES = ("float32", "float16")


def build_ensemble(members: list[keras.Model], name: str = "ensemble", weights: str = "float32") -> keras.Model:
    """One model whose output is the mean of its members' probabilities.

    The members (each with its own input blur and rescaling inside) become sub-models of a single
    functional model, so the ensemble is one ``.keras`` file that every code path loads and calls
    like any other model. Members must share the input shape and the classes. ``weights="float16"``
    stores the members' weights in half the bytes (a file of many members stays under the size a
    repository can hold); the recognizer computes such a model in float32.
    """
    import keras
    from keras import layers

    from fer_core.inference.exported import policy_copy

    if weights not in WEIGHT_DTYPES:
        raise ValueError(f"ensemble weights must be one of {', '.join(WEIGHT_DTYPES)}; got {weights!r}")

    if len(members) < 2:
        raise ValueError("an ensemble needs at least two members")
    signatures = {(tuple(m.inputs[0].shape[1:]), m.outputs[0].shape[-1]) for m in members}
    if len(signatures) != 1:
        raise ValueError(f"ensemble members differ in input shape or classes: {sorted(signatures)}")
    inputs = keras.Input(members[0].inputs[0].shape[1:], name="face")
    outputs = []
    for i, member in enumerate(members):
        if weights == "float16":
            member = policy_copy(member, "float16")
        wrapped = keras.Model(member.inputs[0], member.outputs[0], name=f"member_{i}_{member.name}")
        outputs.append(wrapped(inputs))
    mean = layers.Average(dtype="float32", name="probabilities")(outputs)
    return keras.Model(inputs, mean, name=name)
