"""Classification speed on this machine: faces per second, the CPU's matrix throughput and a model's
arithmetic. A figure means something only next to the machine it was measured on
(:func:`fer_core.machine.machine_info`), and only against figures of the same run.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from fer_core.inference.recognizer import EmotionRecognizer


def matmul_gflops(size: int = 1024, repeats: int = 5) -> float:
    """This CPU's float32 throughput in a large matrix product (NumPy's BLAS, all cores), GFLOP/s:
    about the most a convolution's arithmetic can reach here, so a model's speed can be read as a
    share of it."""
    a = np.random.default_rng(0).random((size, size), dtype=np.float32)
    a @ a
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        a @ a
        times.append(time.perf_counter() - start)
    return 2 * size**3 / float(np.median(times)) / 1e9


def model_flops(model) -> int:
    """Multiply-adds × 2 of one face through a Keras model's convolutions and dense layers (the
    rest is negligible), nested models included."""
    import keras

    total = 0
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            total += model_flops(layer)
        elif isinstance(layer, (keras.layers.Conv2D, keras.layers.DepthwiseConv2D)):
            _, height, width, channels_out = layer.output.shape
            kh, kw = layer.kernel_size
            channels_in = layer.input.shape[-1]
            per_output = kh * kw * (1 if isinstance(layer, keras.layers.DepthwiseConv2D) else channels_in)
            total += 2 * height * width * channels_out * per_output
        elif isinstance(layer, keras.layers.Dense):
            total += 2 * layer.input.shape[-1] * layer.units
    return total


def faces_per_second(recognizer: EmotionRecognizer, batch: int = 256, repeats: int = 5,
                     tta: bool = False) -> float:
    """Median batched throughput of ``recognizer.predict_proba`` on random 48×48 faces, after a
    warm-up call (which traces the graph)."""
    faces = np.random.default_rng(0).integers(0, 256, (batch, 48, 48), dtype=np.uint8)
    recognizer.predict_proba(faces, tta=tta)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        recognizer.predict_proba(faces, tta=tta)
        times.append(time.perf_counter() - start)
    return batch / float(np.median(times))
