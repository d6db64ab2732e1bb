"""Classification speed on this machine, and what the machine is, printed beside every figure.

Speeds differ several-fold between CPUs (AVX2 only, AVX-512 with bf16, AMX), so a figure means
something only next to the CPU and load it was measured under, and only against figures of the
same run.
"""

from __future__ import annotations

import os
import platform
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from fer_core.inference.recognizer import EmotionRecognizer

VECTOR_FLAGS = ("avx2", "avx512f", "avx512_bf16", "avx512_vnni", "amx_tile", "amx_bf16", "amx_int8")


@dataclass(frozen=True)
class MachineInfo:
    cpu: str
    cores: int
    flags: tuple[str, ...]
    load: tuple[float, float, float]
    # /proc/cpuinfo's "cpu family" and "model": virtual machines often name their CPU only "AMD EPYC",
    # and two such CPUs of different generations can differ several-fold in speed (family 23 model 1 is
    # a first-generation EPYC, whose AVX2 units are half as wide as later ones').
    family_model: str = ""

    def describe(self) -> str:
        flags = " ".join(self.flags) or "no AVX2"
        load = " ".join(f"{v:.2f}" for v in self.load)
        cpu = f"{self.cpu} ({self.family_model})" if self.family_model else self.cpu
        return f"{cpu}, {self.cores} cores, flags: {flags}; load average {load}"


def machine_info() -> MachineInfo:
    """CPU model, logical cores, the vector-unit flags that decide inference speed, load average."""
    cpu, flags, fields = platform.processor() or platform.machine(), set(), {}
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text().splitlines():
            key, _, value = line.partition(":")
            key = key.strip()
            if key == "model name" and cpu in ("", platform.processor() or platform.machine()):
                cpu = value.strip()
            elif key in ("cpu family", "model"):
                fields.setdefault(key, value.strip())
            elif key == "flags":
                flags = set(value.split())
                break
    family_model = (f"family {fields['cpu family']} model {fields['model']}"
                    if {"cpu family", "model"} <= fields.keys() else "")
    load = os.getloadavg() if hasattr(os, "getloadavg") else (0.0, 0.0, 0.0)
    return MachineInfo(cpu, os.cpu_count() or 1, tuple(f for f in VECTOR_FLAGS if f in flags), tuple(load),
                       family_model)


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
