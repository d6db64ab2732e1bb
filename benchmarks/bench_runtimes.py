"""CPU runtimes for a shipped exported model, side by side with Keras: why the app runs ONNX Runtime.

Times the same ``models/NAME.onnx`` in ONNX Runtime (its default threads, and one thread) and, when
the ``openvino`` package is installed (``pip install openvino==2026.4.1``; not a dependency), in
OpenVINO reading the same file, next to the ``.keras`` model through Keras; every path's largest
probability difference from Keras (float32) is printed too. "Keras (as saved)" is the recognizer's
Keras path: the model's own dtype policies (``mixed_bfloat16`` layers for the shipped models).
Batched faces/s (32, 256) and single-face latency, medians, the paths timed in turn within each
repeat.

Usage: ``python benchmarks/bench_runtimes.py [--model models/vgg_compact_crop4_e80_fer7.keras] [--repeats 30]``
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from bench_inference import interleaved_ms

from fer_core.inference.exported import INPUT_NAME, float32_copy
from fer_core.inference.recognizer import EmotionRecognizer, compile_forward
from fer_core.machine import machine_info
from fer_core.model_card import FAST_MODEL_NAME, MODELS_DIR, ModelCard

Forward = Callable[[np.ndarray], np.ndarray]


def onnxruntime_forward(path, threads: int = 0) -> Forward:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads  # 0: ONNX Runtime's default (one per physical core)
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return lambda x: session.run(None, {INPUT_NAME: x})[0]


def openvino_forward(path) -> Forward | None:
    """OpenVINO reading the ONNX file, float32 inference precision; ``None`` where not installed."""
    try:
        import openvino as ov
    except ImportError:
        return None
    compiled = ov.Core().compile_model(str(path), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    request = compiled.create_infer_request()
    return lambda x: request.infer({0: x})[0]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=str(MODELS_DIR / FAST_MODEL_NAME), help="a model with an exported file")
    parser.add_argument("--repeats", type=int, default=30)
    args = parser.parse_args(argv)

    card = ModelCard.load(args.model)
    if card.exported_model_path is None:
        print(f"{args.model}: no exported model its card vouches for; run python -m fer_core export first")
        return 1
    keras_model = EmotionRecognizer(args.model, use_export=False).model
    keras_bf16, keras_f32 = compile_forward(keras_model), compile_forward(float32_copy(keras_model))
    precision = card.export.precision
    paths: dict[str, Forward] = {
        "keras (as saved)": lambda x: keras_bf16(x).numpy(),
        "keras (float32)": lambda x: keras_f32(x).numpy(),
        f"onnxruntime {precision}": onnxruntime_forward(card.exported_model_path),
        f"onnxruntime {precision} 1 thr": onnxruntime_forward(card.exported_model_path, threads=1),
    }
    if (openvino := openvino_forward(card.exported_model_path)) is not None:
        paths[f"openvino {precision}"] = openvino
    else:
        print("openvino is not installed: pip install openvino==2026.4.1 to compare it too")

    print(f"model {args.model}; {machine_info().describe()}")
    faces = np.random.default_rng(0).integers(0, 256, (256, 48, 48, 1)).astype(np.float32)
    reference = paths["keras (float32)"](faces)
    rows = {name: {"max |Δp|": float(np.abs(fn(faces) - reference).max())} for name, fn in paths.items()}
    for batch in (256, 32, 1):
        x = faces[:batch]
        ms = interleaved_ms({name: lambda fn=fn: fn(x) for name, fn in paths.items()},
                            args.repeats if batch == 1 else max(5, args.repeats // 3))
        for name, t in ms.items():
            rows[name][f"batch {batch}"] = batch / t * 1000 if batch > 1 else t
    print(f"{'path':<24}{'batch 256 faces/s':>19}{'batch 32 faces/s':>18}{'single face ms':>16}{'max |Δp|':>12}")
    for name, row in rows.items():
        print(f"{name:<24}{row['batch 256']:>19,.0f}{row['batch 32']:>18,.0f}{row['batch 1']:>16.2f}"
              f"{row['max |Δp|']:>12.1e}")
    print(f"load average at the end: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
