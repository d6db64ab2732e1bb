"""The exported inference path: a ``.keras`` model converted to ONNX and run by ONNX Runtime.

Why ONNX Runtime: of the CPU runtimes compared (``benchmarks/bench_runtimes.py``; the README has the
figures and what was dropped) it gives the lowest single-face latency, which the live camera and
photos need, matches Keras to float32 round-off, and is one wheel without a TensorFlow dependency.

The ``.keras`` file stays the source of truth: the export is made from it at publish time and is
used only while its card records a passed equivalence check (see
:func:`fer_core.training.export.export_published`).

The export computes in float32 even where the model was trained with ``mixed_bfloat16``: on CPUs
without bf16 units bfloat16 is emulated (slow), and float32 is what every CPU runs natively; it may
then be quantised to int8 (:func:`fer_core.training.export.quantize_int8`). The
graph keeps the model's own input blur and rescaling (they are Keras layers), has a fixed 48×48×1
input and a dynamic batch, and is saved after ONNX Runtime's portable (basic) graph optimisations,
which fold each BatchNormalization into the convolution before it.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from fer_core.data import FACE_SIZE

if TYPE_CHECKING:
    import keras
    import onnx

RUNTIME = "onnxruntime"
INPUT_NAME = "face"
ONNX_OPSET = 17


def runtime_version() -> str | None:
    """The installed ONNX Runtime's version, or ``None`` when it is not installed."""
    try:
        import onnxruntime
    except ImportError:
        return None
    return onnxruntime.__version__


def policy_copy(model: keras.Model, policy: str) -> keras.Model:
    """The same network and weights under the dtype policy ``policy`` (every layer's, sub-models
    included): ``float32`` to compute in float32, ``float16`` to store the weights in half the bytes."""

    def with_policy(config):
        if isinstance(config, dict):
            if config.get("class_name") == "DTypePolicy":
                return {**config, "config": {**config["config"], "name": policy}}
            return {key: with_policy(value) for key, value in config.items()}
        if isinstance(config, list):
            return [with_policy(value) for value in config]
        return config

    copy = model.__class__.from_config(with_policy(model.get_config()))
    copy.set_weights(model.get_weights())
    return copy


def float32_copy(model: keras.Model) -> keras.Model:
    """The same network and weights computing in float32."""
    return policy_copy(model, "float32")


def stores_half_weights(model: keras.Model) -> bool:
    """Whether ``model`` keeps weights in float16 (an ensemble saved with ``--weights float16``)."""
    return any(str(w.dtype) == "float16" for w in model.weights)


def export_onnx(model: keras.Model, dest: str | os.PathLike) -> Path:
    """Convert ``model`` (computed in float32) to ONNX at ``dest``, atomically.

    tf2onnx converts the traced graph; ONNX Runtime then applies its basic, hardware-independent
    optimisations (constant folding, BatchNormalization folded into the convolutions) and writes
    the result, which is what ships.
    """
    import onnx
    import onnxruntime as ort
    import tensorflow as tf
    import tf2onnx

    dest = Path(dest)
    model = float32_copy(model)
    signature = [tf.TensorSpec([None, FACE_SIZE, FACE_SIZE, 1], tf.float32, name=INPUT_NAME)]

    @tf.function(input_signature=signature)
    def forward(face):
        return {"probabilities": tf.cast(model(face, training=False), tf.float32)}

    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "raw.onnx"
        tf2onnx.convert.from_function(forward, input_signature=signature, opset=ONNX_OPSET,
                                      output_path=str(raw))
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
        options.optimized_model_filepath = str(Path(tmp) / "optimized.onnx")
        ort.InferenceSession(str(raw), options, providers=["CPUExecutionProvider"])
        graph = onnx.load(options.optimized_model_filepath)
        fold_scalar_scales_into_convolutions(graph)
        partial = dest.with_name(f".{dest.name}.tmp")
        onnx.save(graph, partial)
        os.replace(partial, dest)
    return dest


# Operators that only move or select elements: a scalar factor passes through them unchanged.
LAYOUT_OPS = frozenset({"Identity", "Reshape", "Transpose", "Slice", "Squeeze", "Unsqueeze", "Flatten"})


def fold_scalar_scales_into_convolutions(graph: onnx.ModelProto) -> int:
    """Remove each multiplication by a constant scalar (the model's ``Rescaling(1/255)``) whose
    result reaches only convolutions, through layout operators, by scaling those convolutions'
    weights instead; returns how many were folded.

    ONNX Runtime folds BatchNormalization into the convolution before it, not a scale before the
    convolution; left in, the int8 export runs it as an element-wise quantised multiply on every
    input pixel. A convolution is linear and its zero padding stays zero when scaled, so
    ``conv(c·x, W) = conv(x, c·W)`` exactly.
    """
    from onnx import numpy_helper

    nodes = graph.graph.node
    initializers = {init.name: init for init in graph.graph.initializer}
    graph_outputs = {output.name for output in graph.graph.output}
    consumers: dict[str, list[onnx.NodeProto]] = {}
    for node in nodes:
        for name in node.input:
            consumers.setdefault(name, []).append(node)

    def convolutions_reached(tensor: str) -> list[onnx.NodeProto] | None:
        if tensor in graph_outputs:
            return None
        reached = []
        for node in consumers.get(tensor, []):
            if node.op_type == "Conv" and node.input[0] == tensor and node.input[1] in initializers \
                    and len(consumers[node.input[1]]) == 1:
                reached.append(node)
            elif node.op_type in LAYOUT_OPS and node.input[0] == tensor:
                further = convolutions_reached(node.output[0])
                if further is None:
                    return None
                reached += further
            else:
                return None
        return reached or None

    folded = 0
    for node in list(nodes):
        if node.op_type != "Mul":
            continue
        scalars = [name for name in node.input if name in initializers
                   and numpy_helper.to_array(initializers[name]).size == 1]
        convolutions = convolutions_reached(node.output[0]) if len(scalars) == 1 else None
        if convolutions is None:
            continue
        factor = numpy_helper.to_array(initializers[scalars[0]]).item()
        for conv in convolutions:
            weights = initializers[conv.input[1]]
            weights.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(weights) * np.float32(factor), weights.name))
        (source,) = [name for name in node.input if name != scalars[0]]
        for consumer in consumers[node.output[0]]:
            consumer.input[:] = [source if name == node.output[0] else name for name in consumer.input]
        nodes.remove(node)
        if len(consumers[scalars[0]]) == 1:
            graph.graph.initializer.remove(initializers[scalars[0]])
        folded += 1
    return folded


def inference_threads() -> int:
    """ONNX Runtime's threads per session from ``FER_INFERENCE_THREADS`` (0, the default: one per
    core). A process that shares the machine with others doing the same work, such as a batch
    worker holding one of Ray's CPUs, sets 1 so that the workers do not fight over the cores."""
    value = os.environ.get("FER_INFERENCE_THREADS", "0")
    try:
        threads = int(value)
    except ValueError:
        threads = -1
    if threads < 0:
        raise ValueError(f"FER_INFERENCE_THREADS must be a whole number of threads (0: one per core), not {value!r}")
    return threads


class OnnxClassifier:
    """An exported model in an ONNX Runtime session: float32 faces ``(N, 48, 48, 1)`` → probabilities.

    ``run`` may be called from several threads at once (ONNX Runtime sessions allow it).
    """

    def __init__(self, path: str | os.PathLike):
        import onnxruntime as ort

        self.path = Path(path)
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.intra_op_num_threads = inference_threads()
        self.session = ort.InferenceSession(str(self.path), options, providers=["CPUExecutionProvider"])
        self.description = f"{RUNTIME} {ort.__version__} ({self.path.name})"

    def __call__(self, faces: np.ndarray) -> np.ndarray:
        return self.session.run(None, {INPUT_NAME: np.ascontiguousarray(faces, np.float32)})[0]

