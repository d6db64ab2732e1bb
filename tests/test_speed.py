"""The machine description printed beside speed figures, and the throughput measure."""

from __future__ import annotations

from pathlib import Path

from fer_core.inference.speed import faces_per_second, matmul_gflops, model_flops
from fer_core.machine import VECTOR_FLAGS, machine_info


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


def test_machine_info_gives_the_cpu_generation_where_cpuinfo_has_it():
    cpuinfo = Path("/proc/cpuinfo")
    info = machine_info()
    if not cpuinfo.is_file() or "cpu family" not in cpuinfo.read_text():
        assert info.family_model == ""
        return
    fields = {}
    for line in cpuinfo.read_text().splitlines():
        key, _, value = line.partition(":")
        fields.setdefault(key.strip(), value.strip())
    expected = f"family {fields['cpu family']} model {fields['model']}"
    assert info.family_model == expected and f"({expected})" in info.describe()


def test_model_flops_counts_convolutions_and_dense_layers_by_hand():
    import keras

    inputs = keras.Input((8, 8, 1))
    x = keras.layers.DepthwiseConv2D(3, padding="same")(inputs)  # 8·8·1 outputs × 9
    x = keras.layers.Conv2D(4, 3, padding="same")(x)  # 8·8·4 outputs × 9·1
    x = keras.layers.Conv2D(2, 3, strides=2, padding="same")(x)  # 4·4·2 outputs × 9·4
    x = keras.layers.Flatten()(x)
    outputs = keras.layers.Dense(5)(x)  # 32 × 5
    inner = keras.Model(inputs, outputs)
    outer = keras.Model(inputs, inner(inputs))  # nested models are counted too
    expected = 2 * (8 * 8 * 1 * 9 + 8 * 8 * 4 * 9 + 4 * 4 * 2 * 36 + 32 * 5)
    assert model_flops(inner) == expected and model_flops(outer) == expected


def test_matmul_rate_is_a_plausible_cpu_figure():
    assert 0.1 < matmul_gflops(size=256, repeats=2) < 1e5
