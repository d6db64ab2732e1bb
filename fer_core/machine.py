"""What the machine is, printed beside every figure measured on it and recorded with every training run.

Speeds differ several-fold between CPUs (AVX2 only, AVX-512 with bf16, AMX), so a figure means
something only next to the CPU and load it was measured under. Training reads the same flags to choose
its precision, so this sits low in the package, below both ``training`` and ``inference``.
"""

from __future__ import annotations

import os
import platform
from dataclasses import dataclass
from pathlib import Path

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
