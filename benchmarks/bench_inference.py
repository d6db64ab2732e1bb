"""Inference speed on this machine: batched faces/s, single-face latency, full 640×480 frame latency,
Keras and the exported path (ONNX Runtime, where the model ships one) side by side in one run.

The full frame is what the live camera does per frame: detect (frame settings) → crop → classify →
draw. Targets: full frame ≤ 20 ms median, batched ≥ 1000 faces/s; the exported path ≥ 3× Keras'
batched faces/s and ≤ ½ its single-face latency. Every figure is a median over repeated runs after a
warm-up, the paths timed in turn within each repeat; the CPU's flags and the load average are printed
because figures compare only within one run on one machine. Two lines put the batched gain in
context: the model's arithmetic against this CPU's float32 matrix-product rate, and the CPU's
matrix-product rates in Keras' compute dtype and in int8 (timed in turn), whose ratio is what an
int8 export of the same network gains at the same efficiency.

Usage: ``python benchmarks/bench_inference.py [--model M] [--repeats 50] [--sweep]``
(``--sweep`` also times the detector over a grid of settings on the same frame).
"""

from __future__ import annotations

import argparse
import itertools
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from fer_core.inference.crop import crop_faces
from fer_core.inference.detect import Detector, to_gray
from fer_core.inference.detect.haar import FRAME_SETTINGS, HaarDetector, HaarSettings
from fer_core.inference.draw import annotate
from fer_core.inference.pipeline import analyze_image
from fer_core.inference.recognizer import EmotionRecognizer
from fer_core.inference.speed import matmul_gflops, model_flops
from fer_core.machine import machine_info
from fer_core.model_card import PROJECT_ROOT, default_model_path

PHOTO = Path(os.environ.get("FER_SHARED_DATA", PROJECT_ROOT.parent / "shared" / "data")) / "photos" / "astronaut.png"


def webcam_frame() -> np.ndarray:
    """640×480 BGR frame with one face about 130 px wide: the astronaut photo. Where the photo is absent
    (``../shared/data``, or ``$FER_SHARED_DATA``) the frame is blank and says so on stderr, since a frame
    without a face times the detector alone."""
    import cv2

    frame = np.full((480, 640, 3), 90, np.uint8)
    if PHOTO.is_file():
        frame[:, 80:560] = cv2.resize(cv2.imread(str(PHOTO)), (480, 480), interpolation=cv2.INTER_AREA)
    else:
        print(f"{PHOTO} not found: the frame has no face (set FER_SHARED_DATA)", file=sys.stderr)
    return frame


def interleaved_ms(tasks: dict[str, Callable[[], object]], repeats: int, warmup: int = 3) -> dict[str, float]:
    """Median ms of each task, the tasks timed round-robin within every repeat, so that a change in
    the machine's load touches them alike."""
    for fn in tasks.values():
        for _ in range(warmup):
            fn()
    times: dict[str, list[float]] = {name: [] for name in tasks}
    for _ in range(repeats):
        for name, fn in tasks.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return {name: float(np.median(t) * 1000) for name, t in times.items()}


def side_by_side(title: str, ms: dict[str, float], per_second: int | None = None) -> None:
    """One line per measurement: every path's figure, then the exported path against Keras."""
    figures = {name: (per_second / t * 1000 if per_second else t) for name, t in ms.items()}
    unit = "faces/s" if per_second else "ms"
    line = "  ".join(f"{name} {v:>8.0f} {unit}" if per_second else f"{name} {v:>7.2f} {unit}"
                     for name, v in figures.items())
    ratio = ""
    if len(ms) == 2:
        keras_ms, exported_ms = ms.values()
        ratio = f"  → exported {keras_ms / exported_ms:.2f}× faster" if per_second else \
            f"  → exported at {exported_ms / keras_ms:.2f}× Keras' latency"
    print(f"  {title:<28}{line}{ratio}")


def bench_batches(recognizers: dict[str, EmotionRecognizer], faces: np.ndarray, repeats: int) -> None:
    print("batched classification (faces/s, median of runs):")
    for tta in (False, True):
        for batch in (32, 256):
            x = faces[:batch]
            ms = interleaved_ms({n: lambda r=r: r.predict_proba(x, tta=tta) for n, r in recognizers.items()},
                                max(3, repeats // 5))
            side_by_side(f"batch {batch:>4}  tta {tta!s:<5}", ms, per_second=batch)


def bench_single(recognizers: dict[str, EmotionRecognizer], faces: np.ndarray, repeats: int) -> None:
    print("single-face latency (median ms):")
    for tta in (False, True):
        ms = interleaved_ms({n: lambda r=r: r.predict_proba(faces[:1], tta=tta) for n, r in recognizers.items()},
                            repeats)
        side_by_side(f"tta {tta!s:<5}", ms)


def bench_frame(recognizers: dict[str, EmotionRecognizer], repeats: int) -> None:
    frame = webcam_frame()
    detector = HaarDetector(FRAME_SETTINGS)
    gray = to_gray(frame)
    boxes = detector.detect(gray)
    print(f"full 640x480 frame, {len(boxes)} face(s) found, detector {FRAME_SETTINGS}:")
    any_recognizer = next(iter(recognizers.values()))
    results = analyze_image(frame, any_recognizer, detector, tta=False)
    shared = {
        "to gray + detect": lambda: detector.detect(to_gray(frame)),
        "crop": lambda: crop_faces(gray, boxes),
        "draw (boxes + bars)": lambda: annotate(frame, results, bars=True),
    }
    for name, ms in interleaved_ms(shared, repeats).items():
        print(f"  {name:<28}{ms:6.2f} ms")
    classify = {n: lambda r=r: r.predict_proba(crop_faces(gray, boxes), tta=False) for n, r in recognizers.items()}
    side_by_side("classify (tta False)", interleaved_ms(classify, repeats))
    for tta in (False, True):
        total = {n: lambda r=r: annotate(frame, analyze_image(frame, r, detector, tta=tta), bars=True)
                 for n, r in recognizers.items()}
        side_by_side(f"total, tta {tta} (<= 20 ms)", interleaved_ms(total, repeats))


def recognizers_to_compare(model_path) -> dict[str, EmotionRecognizer]:
    """Today's Keras path and, where the model ships one its card vouches for, the exported path."""
    keras_path = EmotionRecognizer(model_path, use_export=False)
    exported = EmotionRecognizer(model_path)
    return {"keras": keras_path} if exported.backend == "keras" else {"keras": keras_path, "exported": exported}


def detector_frame_ms(detectors: list[Detector], repeats: int) -> list[float]:
    """Median ms of each detector on the (colour) webcam frame, as the pipeline gives it, timed in
    turn so that a change in the machine's load affects every detector alike."""
    frame = webcam_frame()
    times: list[list[float]] = [[] for _ in detectors]
    for _ in range(repeats):
        for i, detector in enumerate(detectors):
            start = time.perf_counter()
            detector.detect(frame)
            times[i].append(time.perf_counter() - start)
    return [float(np.median(t) * 1000) for t in times]


def sweep_detector(repeats: int) -> None:
    """Time the detector over a grid of settings on the same frame."""
    frame = to_gray(webcam_frame())
    grid = [HaarSettings(max_side=side, min_face=min_face, scale_factor=sf, min_neighbors=5)
            for side, sf, min_face in itertools.product((240, 320, 400, 640), (1.1, 1.15, 1.2, 1.3), (48, 64, 80))]
    detectors = [HaarDetector(s) for s in grid]
    ms = detector_frame_ms(detectors, repeats)
    print("detector sweep on the 640x480 frame (median ms, faces found):")
    for settings, detector, t in zip(grid, detectors, ms):
        print(f"  max_side {settings.max_side:>3}  scale_factor {settings.scale_factor:<4}"
              f"  min_face {settings.min_face:>2}"
              f"  {t:6.2f} ms  {len(detector.detect(frame))} face(s)")


def print_arithmetic_ceiling(recognizer: EmotionRecognizer) -> None:
    """The model's arithmetic per face against this CPU's float32 matrix-product rate: the faces/s a
    path would reach computing at that rate. A path near it can only get faster by doing less work
    (int8 helps only where the CPU multiplies int8 faster than float32)."""
    flops = model_flops(recognizer.model)
    gflops = matmul_gflops()
    print(f"arithmetic: {flops / 1e6:.0f} MFLOP per face; this CPU's float32 matrix product {gflops:.0f} GFLOP/s"
          f" → {gflops * 1e9 / flops:.0f} faces/s at that rate")


def conv_compute_dtype(model) -> str:
    """The dtype Keras multiplies in for the model's convolutions (``bfloat16`` for a model trained
    with ``mixed_bfloat16``), the first member's for an ensemble."""
    import keras

    for layer in model.layers:
        if isinstance(layer, keras.Model):
            return conv_compute_dtype(layer)
        if isinstance(layer, keras.layers.Conv2D):
            return layer.dtype_policy.compute_dtype
    return model.dtype_policy.compute_dtype


def matrix_products(keras_dtype: str, size: int = 1024) -> dict[str, Callable[[], object]]:
    """A ``size``² matrix product as Keras computes it (TensorFlow in ``keras_dtype``) and as the
    int8 export does (ONNX Runtime's MatMulInteger, uint8 × int8: the kernel under its int8
    convolutions)."""
    import onnx
    import onnxruntime as ort
    import tensorflow as tf

    rng = np.random.default_rng(0)
    a = tf.cast(tf.constant(rng.random((size, size), dtype=np.float32)), keras_dtype)
    keras_product = tf.function(lambda: tf.matmul(a, a))
    weights = rng.integers(-64, 64, (size, size), dtype=np.int8)
    graph = onnx.helper.make_graph(
        [onnx.helper.make_node("MatMulInteger", ["A", "B"], ["Y"])], "int8_matmul",
        [onnx.helper.make_tensor_value_info("A", onnx.TensorProto.UINT8, [size, size])],
        [onnx.helper.make_tensor_value_info("Y", onnx.TensorProto.INT32, [size, size])],
        [onnx.helper.make_tensor("B", onnx.TensorProto.INT8, [size, size], weights.tobytes(), raw=True)])
    model = onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 13)])
    options = ort.SessionOptions()
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    activations = rng.integers(0, 256, (size, size), dtype=np.uint8)
    return {keras_dtype: lambda: keras_product().numpy(), "int8": lambda: session.run(None, {"A": activations})}


def print_precision_ceiling(recognizer: EmotionRecognizer, repeats: int = 7, size: int = 1024) -> None:
    """This CPU's matrix-product rate in Keras' compute dtype and in int8, timed in turn. Their ratio
    is what an int8 export of the same network gains over Keras at the same efficiency: a batched
    gain well above it needs int8 kernels faster than ONNX Runtime's, or a model with less arithmetic."""
    dtype = conv_compute_dtype(recognizer.model)
    ms = interleaved_ms(matrix_products(dtype, size), repeats)
    rates = {name: 2 * size**3 / (t / 1e3) / 1e9 for name, t in ms.items()}
    print(f"matrix products: Keras' {dtype} {rates[dtype]:.0f} GFLOP/s (TensorFlow), int8 {rates['int8']:.0f} GOP/s"
          f" (ONNX Runtime) → an int8 export computing as efficiently as Keras is {rates['int8'] / rates[dtype]:.2f}×"
          " as fast")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="a .keras model (default: the shipped model, or $FER_MODEL)")
    parser.add_argument("--repeats", type=int, default=50)
    parser.add_argument("--sweep", action="store_true", help="also time a grid of detector settings")
    args = parser.parse_args(argv)

    recognizers = recognizers_to_compare(args.model or default_model_path())
    print(f"model {recognizers['keras'].model_path}; {machine_info().describe()}")
    print("paths: " + "; ".join(f"{name} = {r.backend}" for name, r in recognizers.items()))
    print_arithmetic_ceiling(recognizers["keras"])
    print_precision_ceiling(recognizers["keras"])
    faces = np.random.default_rng(0).integers(0, 256, (256, 48, 48), dtype=np.uint8)
    bench_batches(recognizers, faces, args.repeats)
    bench_single(recognizers, faces, args.repeats)
    bench_frame(recognizers, args.repeats)
    if args.sweep:
        sweep_detector(max(5, args.repeats // 5))
    print(f"load average at the end {', '.join(f'{v:.1f}' for v in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
