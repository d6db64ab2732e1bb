"""Publish-time export of a model to ONNX, shipped only when it matches the ``.keras`` file.

The check runs both on every validation (PublicTest) face and its mirror image (what test-time
augmentation feeds the model); the ``.keras`` side computes in float32 like the export, so the
difference measured is the conversion's, not bfloat16 round-off. A ``float32`` export must give the
same probabilities (:data:`FLOAT_TOLERANCE`); an ``int8`` one (static quantisation calibrated on
training faces: int8 weights per channel, uint8 activations) the same accuracy within
:data:`INT8_TOLERANCE`, both with the mirror average and without it (a model may be used either
way). A failed check raises :class:`ExportRejected` and leaves no exported file and no record behind.
"""

from __future__ import annotations

import datetime
import os
from pathlib import Path

import numpy as np

from fer_core.data import load_dataset
from fer_core.inference.exported import INPUT_NAME, RUNTIME, OnnxClassifier, export_onnx, float32_copy, runtime_version
from fer_core.inference.recognizer import EmotionRecognizer, compile_forward
from fer_core.model_card import ExportRecord, ModelCard, exported_model_path

# Largest difference of any probability between the float32 export and the .keras model.
FLOAT_TOLERANCE = 1e-3
# Largest accuracy difference (a fraction: 0.3 points) between the int8 export and the .keras model.
INT8_TOLERANCE = 0.003
TOLERANCE = {"float32": FLOAT_TOLERANCE, "int8": INT8_TOLERANCE}
CHECK_BATCH = 512
CALIBRATION_FACES = 512
CALIBRATION_SEED = 0


class ExportRejected(ValueError):
    """The exported model does not match the ``.keras`` model closely enough to ship."""


def validation_faces(data: str | os.PathLike, card: ModelCard) -> tuple[np.ndarray, np.ndarray]:
    """The PublicTest faces the card's scheme labels and their labels in that scheme."""
    validation = load_dataset(data, skip_bad_rows=True).data.split("PublicTest")
    y = card.scheme.map_fer(validation.labels)
    return validation.images[y >= 0], y[y >= 0]


def calibration_faces(data: str | os.PathLike, n: int = CALIBRATION_FACES) -> np.ndarray:
    """``n`` training faces drawn at random (seeded) to calibrate the int8 activation ranges."""
    training = load_dataset(data, skip_bad_rows=True).data.split("Training")
    if len(training.images) == 0:
        raise ValueError(f"{data}: no Training faces to calibrate the int8 export on")
    rng = np.random.default_rng(CALIBRATION_SEED)
    return training.images[rng.choice(len(training.images), min(n, len(training.images)), replace=False)]


def quantize_int8(float_onnx: Path, dest: Path, faces: np.ndarray) -> None:
    """Static int8 quantisation (QDQ) of ``float_onnx``, activation ranges from ``faces`` (min/max).

    ``reduce_range`` keeps the weights to 7 bits: CPUs without VNNI (AVX2-only ones) multiply
    uint8 × int8 with an instruction that saturates at full range.
    """
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Faces(CalibrationDataReader):
        def __init__(self):
            x = faces.astype(np.float32)[..., None]
            self.batches = iter([{INPUT_NAME: x[i : i + 64]} for i in range(0, len(x), 64)])

        def get_next(self):
            return next(self.batches, None)

    prepared = dest.with_name(f".{dest.stem}.prepared.onnx")
    try:
        quant_pre_process(str(float_onnx), str(prepared))
        quantize_static(str(prepared), str(dest), Faces(), quant_format=QuantFormat.QDQ, per_channel=True,
                        reduce_range=True, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
    finally:
        prepared.unlink(missing_ok=True)


def batched(fn, faces: np.ndarray) -> np.ndarray:
    """``fn`` over float32 ``(N, 48, 48, 1)`` faces and their mirror images, in batches:
    probabilities ``(2, N, n_labels)``."""
    plain = faces.astype(np.float32)[..., None]
    return np.stack([in_batches(fn, x) for x in (plain, plain[:, :, ::-1])])


def in_batches(fn, x: np.ndarray) -> np.ndarray:
    """``fn`` over ``x`` in batches of :data:`CHECK_BATCH`, concatenated."""
    return np.concatenate([fn(x[i : i + CHECK_BATCH]) for i in range(0, len(x), CHECK_BATCH)])


def compare(keras_probs: np.ndarray, exported_probs: np.ndarray, y: np.ndarray) -> dict:
    """Max abs difference and both models' accuracies, with the mirror average (as test-time
    augmentation predicts) and on the faces alone (``probs[0]``, as a model without it predicts)."""
    def accuracy(probs):
        return float(np.mean(probs.argmax(axis=1) == y))

    return {"n": int(len(y)), "max_abs_diff": float(np.abs(keras_probs - exported_probs).max()),
            "accuracy_keras": accuracy(keras_probs.mean(axis=0)),
            "accuracy_exported": accuracy(exported_probs.mean(axis=0)),
            "accuracy_keras_unmirrored": accuracy(keras_probs[0]),
            "accuracy_exported_unmirrored": accuracy(exported_probs[0])}


# The fixed sample of validation faces on which the test suite re-checks a shipped export (the whole
# split is checked when the file is made, and by benchmarks/export_check.py).
SAMPLE_FACES = 400
SAMPLE_SEED = 0


def sample_indices(n: int, size: int = SAMPLE_FACES, seed: int = SAMPLE_SEED) -> np.ndarray:
    """``size`` of ``n`` face indices drawn at random (seeded: the same faces every run), in order."""
    return np.sort(np.random.default_rng(seed).choice(n, min(size, n), replace=False))


def recheck_export(model_path: str | os.PathLike, faces: np.ndarray, y: np.ndarray) -> dict:
    """A published model's exported file against its ``.keras`` model (computed in float32) on
    ``faces`` alone, without their mirror images (half the cost of publishing's check): the largest
    probability difference, both accuracies, and the share of faces whose decision differs."""
    card = ModelCard.load(model_path)
    if card.exported_model_path is None:
        raise ValueError(f"{model_path}: no exported file with a passed check beside it")
    reference = compile_forward(float32_copy(EmotionRecognizer(model_path, use_export=False).model))
    x = faces.astype(np.float32)[..., None]
    keras_probs = in_batches(lambda batch: reference(batch).numpy(), x)
    exported_probs = in_batches(OnnxClassifier(card.exported_model_path), x)
    keras_says, exported_says = keras_probs.argmax(axis=1), exported_probs.argmax(axis=1)
    return {"n": int(len(y)), "precision": card.export.precision,
            "max_abs_diff": float(np.abs(keras_probs - exported_probs).max()),
            "accuracy_keras": float(np.mean(keras_says == y)),
            "accuracy_exported": float(np.mean(exported_says == y)),
            "decisions_differ": float(np.mean(keras_says != exported_says))}


def export_published(model_path: str | os.PathLike, data: str | os.PathLike,
                     precision: str = "float32") -> ExportRecord:
    """Export a published model beside it (``NAME.onnx``, ``float32`` or ``int8``), check it on the
    validation faces and record the check in its card; raise :class:`ExportRejected` (nothing
    shipped) when it fails."""
    if precision not in TOLERANCE:
        raise ValueError(f"precision must be one of {sorted(TOLERANCE)}, got {precision!r}")
    tolerance = TOLERANCE[precision]
    model_path = Path(model_path)
    card = ModelCard.load(model_path)
    faces, y = validation_faces(data, card)
    if len(y) == 0:
        raise ValueError(f"{data}: no PublicTest faces to check the export on")
    keras_model = EmotionRecognizer(model_path, use_export=False).model
    dest = exported_model_path(model_path)
    partial = dest.with_name(f".{dest.stem}.unchecked.onnx")
    export_onnx(keras_model, partial)
    try:
        if precision == "int8":
            quantize_int8(partial, partial, calibration_faces(data))
        reference = compile_forward(float32_copy(keras_model))
        keras_probs = batched(lambda x: reference(x).numpy(), faces)
        figures = compare(keras_probs, batched(OnnxClassifier(partial), faces), y)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    record = ExportRecord(file=dest.name, runtime=RUNTIME, runtime_version=runtime_version() or "",
                          precision=precision, split="PublicTest", tolerance=tolerance,
                          date=datetime.date.today().isoformat(), **figures)
    if not record.passed:
        partial.unlink(missing_ok=True)
        allowed = f"accuracy within {tolerance:.1%}" if precision == "int8" else f"probabilities within {tolerance:.0e}"
        raise ExportRejected(f"{model_path}: the {precision} export's probabilities differ from the .keras model's "
                             f"by up to {record.max_abs_diff:.2e} on {record.n} validation faces, accuracy "
                             f"{record.accuracy_exported:.4f} against {record.accuracy_keras:.4f} with the mirror "
                             f"image and {record.accuracy_exported_unmirrored:.4f} against "
                             f"{record.accuracy_keras_unmirrored:.4f} without (allowed: {allowed}). Not shipped.")
    os.replace(partial, dest)
    card.data["export"] = record.to_dict()
    card.save()
    return record
