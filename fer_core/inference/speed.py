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

    def describe(self) -> str:
        flags = " ".join(self.flags) or "no AVX2"
        load = " ".join(f"{v:.2f}" for v in self.load)
        return f"{self.cpu}, {self.cores} cores, flags: {flags}; load average {load}"


def machine_info() -> MachineInfo:
    """CPU model, logical cores, the vector-unit flags that decide inference speed, load average."""
    cpu, flags = platform.processor() or platform.machine(), set()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name" and cpu in ("", platform.processor() or platform.machine()):
                cpu = value.strip()
            elif key.strip() == "flags":
                flags = set(value.split())
                break
    load = os.getloadavg() if hasattr(os, "getloadavg") else (0.0, 0.0, 0.0)
    return MachineInfo(cpu, os.cpu_count() or 1, tuple(f for f in VECTOR_FLAGS if f in flags), tuple(load))


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
