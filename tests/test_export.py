"""The exported (ONNX Runtime) inference path: the equivalence check that guards it, the shipped
exported models against their .keras files, and the recognizer's choice between the two."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest

from fer_core.inference import exported, recognizer
from fer_core.inference.recognizer import EmotionRecognizer
from fer_core.model_card import (
    FAST_MODEL_NAME,
    MODELS_DIR,
    ExportRecord,
    ModelCard,
    exported_model_path,
    shipped_models,
)
from fer_core.training import export
from fer_core.training.export import ExportRejected, export_published

SHIPPED = shipped_models()
# An int8 export is re-checked on export.SAMPLE_FACES (400) validation faces, one view each, against
# what publishing checked on all 3,589: accuracy within 0.3 points. On 400 faces one face is 0.25
# points, so the sample gets its own bounds. The shipped int8 files change the decision on 0.9 %
# (accurate) and 1.8 % (fast) of all faces, on 1.0 % and 3.0 % of this sample, with accuracy gaps of
# 0.03 and 0.06 points on all faces, 0.25 and 1.75 on the sample (benchmarks/export_check.py). The
# bounds: three times the larger full-split rate of changed decisions (6 %, 24 faces), and for the
# accuracy the net effect of that many changes, about sqrt(24) = 5 faces (1.2 points) either way,
# twice: 2.5 points. A broken export (wrong scale, wrong weights, a wrong layer) changes far more.
SAMPLE_DECISIONS_DIFFER = 0.06
SAMPLE_INT8_GAP = 0.025


@pytest.fixture
def carded_model(tiny_model_path, tmp_path, monkeypatch) -> Path:
    """The tiny model with a card, checked on random faces instead of the dataset."""
    path = tmp_path / "tiny_fer7.keras"
    shutil.copyfile(tiny_model_path, path)
    ModelCard.load(path).save()
    rng = np.random.default_rng(1)
    faces, y = rng.integers(0, 256, (40, 48, 48), dtype=np.uint8), rng.integers(0, 7, 40)
    monkeypatch.setattr(export, "validation_faces", lambda data, card: (faces, y))
    return path


def test_matching_export_is_kept_and_used(carded_model):
    record = export_published(carded_model, data="unused")
    assert record.passed and record.n == 40 and record.max_abs_diff <= 1e-3
    assert ModelCard.load(carded_model).export == record
    ops = [n.op_type for n in onnx.load(exported_model_path(carded_model)).graph.node]
    assert "BatchNormalization" not in ops
    assert "Mul" not in ops[: ops.index("Conv")]  # the model's Rescaling(1/255) is in the first convolution's weights

    faces = np.random.default_rng(2).integers(0, 256, (5, 48, 48), dtype=np.uint8)
    fast, keras_path = EmotionRecognizer(carded_model), EmotionRecognizer(carded_model, use_export=False)
    assert fast.backend.startswith("onnxruntime") and keras_path.backend == "keras"
    assert fast._keras._model is None  # Keras is loaded only when asked for
    np.testing.assert_allclose(fast.predict_proba(faces), keras_path.predict_proba(faces), atol=1e-3)
    assert fast.model.count_params() == keras_path.model.count_params()


def test_export_differing_from_keras_is_refused(carded_model, monkeypatch):
    perturbed = exported.OnnxClassifier.__call__
    monkeypatch.setattr(exported.OnnxClassifier, "__call__", lambda self, x: perturbed(self, x) + 2e-3)
    with pytest.raises(ExportRejected, match=r"float32 export's .* by up to 2\.0\de-03 on 40 validation faces"):
        export_published(carded_model, data="unused")
    assert not list(carded_model.parent.glob("*.onnx"))
    assert ModelCard.load(carded_model).export is None
    assert EmotionRecognizer(carded_model).backend == "keras"


def test_recognizer_falls_back_to_keras(carded_model, monkeypatch):
    export_published(carded_model, data="unused")
    monkeypatch.setattr(recognizer, "runtime_version", lambda: None)  # onnxruntime not installed
    assert EmotionRecognizer(carded_model).backend == "keras"
    monkeypatch.undo()

    onnx_file = exported_model_path(carded_model)
    good = onnx_file.read_bytes()
    onnx_file.write_bytes(good[: len(good) // 2])  # a truncated file: reported, never a crash
    with pytest.warns(UserWarning, match=r"tiny_fer7\.onnx: ONNX Runtime cannot load it"):
        assert EmotionRecognizer(carded_model).backend == "keras"
    onnx_file.write_bytes(good)

    card = ModelCard.load(carded_model)
    card.data["export"]["max_abs_diff"] = 0.5  # a record of a failed check vouches for nothing
    card.save()
    assert EmotionRecognizer(carded_model).backend == "keras"


def test_card_export_record_is_validated(carded_model):
    card = ModelCard.load(carded_model)
    assert card.export is None  # cards written before exports still load
    card.data["export"] = {"file": "x.onnx"}
    with pytest.raises(ValueError, match="export: no 'runtime'"):
        card.validate()
    export_published(carded_model, data="unused")
    data = json.loads(ModelCard.load(carded_model).path.read_text())
    for field, bad, message in (("n", "40", "export.n: expected int"),
                                ("file", "../elsewhere.onnx", "an .onnx file name beside the model")):
        card = ModelCard(carded_model, {**data, "export": {**data["export"], field: bad}})
        with pytest.raises(ValueError, match=message):
            card.validate()


def test_int8_export_is_judged_by_accuracy(carded_model, monkeypatch):
    """An int8 export may move probabilities, not decisions: 0.3 points of accuracy at most."""
    record = export_published(carded_model, data="unused")
    int8 = dataclasses.replace(record, precision="int8", tolerance=export.INT8_TOLERANCE, max_abs_diff=0.2)
    assert int8.passed
    assert not dataclasses.replace(int8, accuracy_exported=int8.accuracy_keras - 0.004).passed
    # Either view counts: a model is also used without the mirror image (no TTA, the fast path).
    assert record.accuracy_keras_unmirrored is not None
    assert not dataclasses.replace(int8, accuracy_exported_unmirrored=int8.accuracy_keras_unmirrored + 0.004).passed

    # A card written before the unmirrored pair was recorded still loads, judged on what it holds.
    old = {k: v for k, v in int8.to_dict().items() if not k.endswith("_unmirrored")}
    assert ExportRecord.from_dict(old).accuracy_gaps == [abs(int8.accuracy_exported - int8.accuracy_keras)]
    with pytest.raises(ValueError, match="export.accuracy_keras_unmirrored: expected float"):
        ExportRecord.from_dict({**old, "accuracy_keras_unmirrored": "0.7"})


@pytest.mark.parametrize("model_path", SHIPPED, ids=[p.stem for p in SHIPPED])
def test_shipped_export_matches_keras_on_a_sample_of_validation_faces(model_path, fer_dir):
    """Each shipped exported file against its .keras model (float32) on a fixed sample of PublicTest
    faces (publishing checked all of them; ``benchmarks/export_check.py`` does again): probabilities
    within 1e-3 for a float32 export; for an int8 one, decisions that differ on few faces and an
    accuracy within :data:`SAMPLE_INT8_GAP`."""
    card = ModelCard.load(model_path)
    assert card.export is not None and card.export.passed and card.exported_model_path is not None
    faces, y = export.validation_faces(fer_dir, card)
    assert len(faces) == card.export.n
    sample = export.sample_indices(len(y))
    figures = export.recheck_export(model_path, faces[sample], y[sample])
    assert figures["n"] == export.SAMPLE_FACES
    if card.export.precision == "float32":
        assert figures["max_abs_diff"] <= export.FLOAT_TOLERANCE  # a bound on every face holds on any sample
    else:
        assert figures["decisions_differ"] <= SAMPLE_DECISIONS_DIFFER, figures
        assert abs(figures["accuracy_exported"] - figures["accuracy_keras"]) <= SAMPLE_INT8_GAP, figures


def scaled_convolution_graph(reshape_feeds_also: str | None = None) -> onnx.ModelProto:
    """x (1, 6, 6, 1) → Mul by 0.5 → Reshape to NCHW → Conv 3×3 with zero padding → y; with
    ``reshape_feeds_also`` the reshaped tensor also feeds that operator (an ``Add`` of itself)."""
    from onnx import TensorProto, helper, numpy_helper

    weights = np.random.default_rng(3).normal(size=(2, 1, 3, 3)).astype(np.float32)
    nodes = [helper.make_node("Mul", ["x", "half"], ["scaled"]),
             helper.make_node("Reshape", ["scaled", "nchw"], ["reshaped"]),
             helper.make_node("Conv", ["reshaped", "w"], ["y"], pads=[1, 1, 1, 1])]
    outputs = [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)]
    if reshape_feeds_also:
        nodes.append(helper.make_node(reshape_feeds_also, ["reshaped", "reshaped"], ["z"]))
        outputs.append(helper.make_tensor_value_info("z", TensorProto.FLOAT, None))
    initializers = [numpy_helper.from_array(np.array(0.5, np.float32), "half"),
                    numpy_helper.from_array(np.array([1, 1, 6, 6], np.int64), "nchw"),
                    numpy_helper.from_array(weights, "w")]
    inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 6, 6, 1])]
    graph = helper.make_graph(nodes, "scaled_conv", inputs, outputs, initializers)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def run_graph(graph: onnx.ModelProto, x: np.ndarray) -> list[np.ndarray]:
    import onnxruntime as ort

    return ort.InferenceSession(graph.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": x})


def test_a_scalar_scale_before_a_convolution_is_folded_into_its_weights():
    graph = scaled_convolution_graph()
    x = np.random.default_rng(4).uniform(0, 255, (1, 6, 6, 1)).astype(np.float32)
    before = run_graph(graph, x)
    assert exported.fold_scalar_scales_into_convolutions(graph) == 1
    assert [n.op_type for n in graph.graph.node] == ["Reshape", "Conv"]
    assert "half" not in {init.name for init in graph.graph.initializer}
    np.testing.assert_allclose(run_graph(graph, x)[0], before[0], rtol=1e-5)


def test_a_scale_that_reaches_anything_but_convolutions_stays():
    graph = scaled_convolution_graph(reshape_feeds_also="Add")
    x = np.random.default_rng(5).uniform(0, 255, (1, 6, 6, 1)).astype(np.float32)
    before = run_graph(graph, x)
    assert exported.fold_scalar_scales_into_convolutions(graph) == 0
    assert [n.op_type for n in graph.graph.node] == ["Mul", "Reshape", "Conv", "Add"]
    for got, expected in zip(run_graph(graph, x), before):
        np.testing.assert_array_equal(got, expected)


def test_inference_threads_come_from_the_environment(monkeypatch):
    """Batch workers on Ray set FER_INFERENCE_THREADS=1 so that each uses only the CPU it holds."""
    from fer_core.inference.batch_ray import ONE_THREAD_EACH

    path = exported_model_path(MODELS_DIR / FAST_MODEL_NAME)
    monkeypatch.setenv("FER_INFERENCE_THREADS", ONE_THREAD_EACH["FER_INFERENCE_THREADS"])
    session = exported.OnnxClassifier(path).session
    assert session.get_session_options().intra_op_num_threads == 1
    monkeypatch.setenv("FER_INFERENCE_THREADS", "many")
    with pytest.raises(ValueError, match="FER_INFERENCE_THREADS .* 'many'"):
        exported.OnnxClassifier(path)
    monkeypatch.delenv("FER_INFERENCE_THREADS")
    assert exported.OnnxClassifier(path).session.get_session_options().intra_op_num_threads == 0


def test_export_check_compares_on_all_faces_and_on_the_suites_sample(carded_model, monkeypatch, capsys):
    monkeypatch.syspath_prepend(str(MODELS_DIR.parent / "benchmarks"))
    import export_check

    export_published(carded_model, data="unused")
    monkeypatch.setattr(export_check, "validation_faces", export.validation_faces)  # the fixture's 40 faces
    assert export_check.main([str(carded_model), "--data", "unused"]) == 0
    out = capsys.readouterr().out
    assert "cores, flags:" in out and "tiny_fer7.keras (float32 export" in out
    assert out.count("n=40") == 2 and out.count("decisions differ on 0.00%") == 2
    figures = export.recheck_export(carded_model, *export.validation_faces("unused", None))
    assert figures["max_abs_diff"] <= export.FLOAT_TOLERANCE and figures["decisions_differ"] == 0
