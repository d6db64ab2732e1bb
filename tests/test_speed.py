"""The machine description printed beside speed figures, and the throughput measure."""

from __future__ import annotations

from pathlib import Path

from fer_core.inference.speed import VECTOR_FLAGS, faces_per_second, machine_info


def test_machine_info_names_the_cpu_flags_and_load():
    info = machine_info()
    assert info.cores >= 1 and len(info.load) == 3
    assert set(info.flags) <= set(VECTOR_FLAGS)
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        flags = next(line for line in cpuinfo.read_text().splitlines() if line.startswith("flags")).split()
        assert ("avx2" in info.flags) == ("avx2" in flags)
    assert f"{info.cores} cores" in info.describe() and "load average" in info.describe()


def test_faces_per_second_is_positive(tiny_recognizer):
    assert faces_per_second(tiny_recognizer, batch=16, repeats=2) > 0
