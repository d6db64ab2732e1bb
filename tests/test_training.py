"""Training, resume, evaluation and publishing on a tiny subset of real faces (fast enough for CI)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pandas as pd
import pytest
from helpers import copy_real_faces

from fer_core.data import load_folder, write_csv
from fer_core.inference.recognizer import EmotionRecognizer, apply_temperature
from fer_core.labels import FER_LABELS, get_scheme
from fer_core.machine import machine_info
from fer_core.model_card import eval_path, history_path
from fer_core.model_format import INPUT_BLUR
from fer_core.training.architectures import build_model, gaussian_kernel_3x3, with_input_blur
from fer_core.training.calibration import fit_temperature
from fer_core.training.metrics import evaluate_faces, expected_calibration_error
from fer_core.training.publish import BLUR_CANDIDATES, publish, publish_command, training_summary
from fer_core.training.train import TrainConfig, read_history, resolve_precision, train

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def small_tree(fer_dir, tmp_path_factory) -> Path:
    """12 training and 6 validation faces per class, as ``train/`` and ``validation/`` folders."""
    return copy_real_faces(fer_dir, tmp_path_factory.mktemp("small"), {"train": 12, "validation": 6})


def _config(data: Path, out: Path, epochs: int) -> TrainConfig:
    return TrainConfig(data=str(data), out=str(out), arch="tiny", epochs=epochs, batch_size=32,
                       warmup_epochs=0, precision="float32")


@pytest.fixture(scope="module")
def trained_run(small_tree, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("run")
    train(_config(small_tree, out, epochs=2), verbose=0)
    return out


@pytest.fixture(scope="module")
def published(trained_run, small_tree, tmp_path_factory) -> Path:
    """``trained_run`` published once as ``unit`` (card, history, evaluation, ONNX export), for the
    tests that read a published model; a test that changes one works on :func:`copy_published`."""
    return publish(trained_run, small_tree, "unit", models_dir=tmp_path_factory.mktemp("published"))


def copy_published(model_path: Path, folder: Path) -> Path:
    """The published model's files, copied into ``folder`` under the same name."""
    import shutil

    folder.mkdir(parents=True, exist_ok=True)
    for path in model_path.parent.glob(f"{model_path.stem}.*"):
        shutil.copy(path, folder / path.name)
    return folder / model_path.name


def test_training_writes_model_history_and_config(trained_run):
    assert (trained_run / "best.keras").is_file()
    history = read_history(trained_run)
    assert [row["epoch"] for row in history] == [0, 1]
    for key in ("loss", "accuracy", "val_loss", "val_accuracy", "learning_rate", "epoch_seconds"):
        assert key in history[0]
    info = json.loads((trained_run / "training.json").read_text())
    assert info["completed"] is True
    assert info["n_train"] == 84 and info["n_validation"] == 42
    assert info["device"]["gpus"] == [] and "cores" in info["device"]["cpu"]  # CI has no GPU
    assert info["config"]["precision"] == info["precision"] == "float32"
    model = keras.models.load_model(trained_run / "best.keras", safe_mode=True)
    assert model.output_shape == (None, 7)
    assert model.name == build_model("tiny", 7).name
    assert getattr(model, "optimizer", None) is None  # the backup holds the optimizer state; the best model does not


class _StopAtEpoch(keras.callbacks.Callback):
    def __init__(self, epoch: int):
        super().__init__()
        self.epoch = epoch

    def on_epoch_begin(self, epoch, logs=None):
        if epoch == self.epoch:
            raise KeyboardInterrupt(f"simulated interruption at epoch {epoch}")


@pytest.mark.slow
def test_an_interrupted_run_resumes_where_it_stopped_counting_each_epoch_once(small_tree, tmp_path, monkeypatch):
    """Killed after epoch 1's history row was written and before its backup: the resumed run trains
    epoch 1 again and the history holds it once. Interrupted before epoch 2: the backup is kept and
    the next run resumes there. Once complete, the backup is gone and every epoch is counted once."""
    from keras.src.callbacks.backup_and_restore import BackupAndRestore

    config = _config(small_tree, tmp_path / "run", epochs=3)
    save = BackupAndRestore._save_model

    def stop_before_the_second_backup(self):
        if self._current_epoch == 2:
            raise KeyboardInterrupt("simulated kill before the backup of epoch 1")
        save(self)

    monkeypatch.setattr(BackupAndRestore, "_save_model", stop_before_the_second_backup)
    with pytest.raises(KeyboardInterrupt):
        train(config, verbose=0)
    assert [row["epoch"] for row in read_history(config.out)] == [0, 1]
    monkeypatch.setattr(BackupAndRestore, "_save_model", save)
    with pytest.raises(KeyboardInterrupt):
        train(config, verbose=0, callbacks=[_StopAtEpoch(2)])
    assert [row["epoch"] for row in read_history(config.out)] == [0, 1]
    assert (Path(config.out) / "backup").is_dir()
    train(config, verbose=0)
    assert [row["epoch"] for row in read_history(config.out)] == [0, 1, 2]
    assert not (Path(config.out) / "backup").exists()


@pytest.fixture(scope="module")
def trio_run(small_tree, tmp_path_factory) -> Path:
    """One epoch on three of the seven classes (``subset:happy,sad,neutral``), with random erasing."""
    config = _config(small_tree, tmp_path_factory.mktemp("trio"), epochs=1)
    config.scheme, config.erasing = "subset:happy,sad,neutral", 0.5
    train(config, verbose=0)
    return Path(config.out)


@pytest.mark.slow
def test_training_on_a_scheme_keeps_only_its_classes(trio_run):
    model = keras.models.load_model(trio_run / "best.keras", safe_mode=True)
    assert model.output_shape == (None, 3)
    assert json.loads((trio_run / "training.json").read_text())["n_train"] == 36


def test_evaluate_is_identical_on_csv_and_folders(trained_run, small_tree, tmp_path):
    from fer_core.cli import main

    recognizer = EmotionRecognizer(trained_run / "best.keras")
    folder = load_folder(small_tree).data.split("PublicTest")
    write_csv(folder, tmp_path / "val.csv")
    runs = {}
    for name, data in (("folder", small_tree), ("csv", tmp_path / "val.csv")):  # the CLI, in this process
        out = tmp_path / f"{name}.json"
        assert main(["evaluate", "--model", str(trained_run / "best.keras"), "--data", str(data),
                     "--usage", "PublicTest", "--json", str(out)]) == 0
        runs[name] = json.loads(out.read_text())
    for key in ("accuracy", "n", "labels", "confusion_matrix", "per_class", "ece"):
        assert runs["folder"][key] == runs["csv"][key], key
    assert runs["csv"]["n"] == 42
    assert np.array(runs["csv"]["confusion_matrix"]).sum() == 42
    direct = evaluate_faces(recognizer, folder)
    assert direct["accuracy"] == pytest.approx(runs["folder"]["accuracy"])


@pytest.mark.slow
def test_evaluate_reports_classes_the_scheme_lacks(small_tree, trio_run, tmp_path):
    config = _config(small_tree, tmp_path / "run", epochs=1)
    config.scheme = "fer6"
    recognizer = EmotionRecognizer(train(config, verbose=0))  # scheme from the run's training.json
    result = evaluate_faces(recognizer, load_folder(small_tree).data.split("validation"))
    assert result["labels"] == ["angry", "fear", "happy", "sad", "surprise", "neutral"]
    assert result["n"] == 42 and result["excluded"] == {}

    # The input blur is not the point here: the model is published without trying one.
    dest = publish(trio_run, small_tree, "trio", models_dir=tmp_path / "models", blur_candidates=(0.0,))
    result = evaluate_faces(EmotionRecognizer(dest), load_folder(small_tree).data.split("validation"))
    assert result["n"] == 18
    assert result["excluded"] == {"angry": 6, "disgust": 6, "fear": 6, "surprise": 6}


def test_publish_writes_card_history_and_evaluation(trained_run, published):
    dest = published
    card = json.loads(dest.with_suffix(".json").read_text())
    assert card["labels"] == list(FER_LABELS)
    assert card["training"]["epochs_run"] == 2
    assert card["training"]["device"] == json.loads((trained_run / "training.json").read_text())["device"]
    assert card["training"]["command"] is None or "train" in card["training"]["command"]
    assert 0.2 <= card["temperature"] <= 5.0
    validation = card["metrics"]["validation"]
    assert validation["n"] == 42
    evaluation = json.loads(eval_path(dest).read_text())
    assert evaluation["tta"]["accuracy"] == validation["accuracy"]
    assert len(evaluation["misclassified"]) == round(42 * (1 - validation["accuracy"]))
    assert history_path(dest).read_text().startswith("epoch,")
    recognizer = EmotionRecognizer(dest)
    assert recognizer.temperature == card["temperature"]
    blur = card["input_blur"]
    assert set(blur["validation_accuracy_by_sigma"]) == {"0", "0.4", "0.5", "0.6", "0.7", "0.8"}
    assert max(blur["validation_accuracy_by_sigma"].values()) == validation["accuracy"]
    assert (INPUT_BLUR in [layer.name for layer in recognizer.model.layers]) == (blur["sigma"] > 0)
    export = card["export"]  # published with its float32 ONNX export, checked on the same faces
    assert (export["file"], export["precision"], export["n"]) == ("unit.onnx", "float32", 42)
    assert export["max_abs_diff"] <= 1e-3 and recognizer.backend.startswith("onnxruntime")


def test_the_regenerate_command_keeps_a_non_default_input_blur_choice():
    default = publish_command(Path("runs/a"), "data", "m", BLUR_CANDIDATES)
    assert default == "python -m fer_core publish --run runs/a --data data --name m"
    assert publish_command(Path("runs/a"), "data", "m", (0.0,)) == default + " --input-blur 0"
    assert publish_command(Path("runs/a"), "data", "m", (0.0, 0.5)).endswith("--input-blur 0 0.5")


def test_input_blur_is_a_fixed_gaussian_in_front_of_the_model(tmp_path):
    import cv2

    model = build_model("tiny", 7)
    blurred = with_input_blur(model, 0.6)
    faces = np.random.default_rng(0).integers(0, 256, (3, 48, 48, 1)).astype(np.float32)
    by_hand = np.stack([cv2.filter2D(f[..., 0], -1, gaussian_kernel_3x3(0.6), borderType=cv2.BORDER_CONSTANT)
                        for f in faces])[..., None]
    np.testing.assert_allclose(blurred(faces).numpy(), model(by_hand).numpy(), atol=1e-5)
    assert gaussian_kernel_3x3(0.6).sum() == pytest.approx(1.0)
    assert gaussian_kernel_3x3(0.6)[1, 1] > gaussian_kernel_3x3(0.6)[0, 1] > gaussian_kernel_3x3(0.6)[0, 0] > 0
    blurred.save(tmp_path / "blurred.keras")
    reloaded = keras.models.load_model(tmp_path / "blurred.keras", safe_mode=True)
    np.testing.assert_allclose(reloaded(faces).numpy(), blurred(faces).numpy(), atol=1e-6)
    assert reloaded.get_layer(INPUT_BLUR).trainable is False
    with pytest.raises(ValueError, match="already has an input blur"):
        with_input_blur(blurred, 0.5)


@pytest.mark.parametrize("objective", ["nll", "ece"])
def test_temperature_fitting_lowers_ece(objective):
    rng = np.random.default_rng(0)
    y = rng.integers(0, 7, 4000)
    logits = rng.normal(size=(4000, 7))
    logits[np.arange(4000), y] += 1.0
    overconfident = np.exp(3 * logits) / np.exp(3 * logits).sum(1, keepdims=True)
    fit, held_out = slice(0, 2000), slice(2000, None)
    t = fit_temperature(overconfident[fit], y[fit], objective)
    assert t > 1.5
    before = expected_calibration_error(overconfident[held_out], y[held_out])
    after = expected_calibration_error(apply_temperature(overconfident[held_out], t), y[held_out])
    assert after < before / 2


@pytest.mark.parametrize("recipe", ["three_pass", "one_pass"])
def test_augmentation_keeps_faces_intact_under_bf16(small_tree, recipe):
    """Regression: under the mixed_bfloat16 policy the augmentation once turned most pixels black."""
    from fer_core.labels import FER7
    from fer_core.training.train import augmenter, make_dataset, scheme_arrays

    x, y = scheme_arrays(load_folder(small_tree).data.split("Training"), FER7)
    config = TrainConfig(data="", out="", augmentation=recipe, erasing=0.5)
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        batch, target = next(iter(make_dataset(x, y, 7, 84, training=True, augment=augmenter(config))))
    finally:
        keras.mixed_precision.set_global_policy("float32")
    batch = np.asarray(batch)
    assert batch.dtype == np.float32 and batch.shape == x.shape
    assert abs(batch.mean() - x.mean()) < 15
    assert (batch < 1).mean() < 0.2
    assert not np.array_equal(np.sort(batch.ravel()), np.sort(x.ravel()))  # something was augmented
    np.testing.assert_array_equal(np.asarray(target).sum(0), np.bincount(y, minlength=7))


def test_one_pass_affine_leaves_kept_faces_on_the_pixel_grid():
    """Faces drawn as "unresampled" come out exactly as they went in (or mirrored): no blur at all."""
    from fer_core.training.augment import AffineRanges, one_pass_augment

    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (64, 48, 48, 1)).astype(np.float32)
    out = np.asarray(one_pass_augment(x, keras.random.SeedGenerator(0), AffineRanges(keep_unresampled=1.0)))
    # Brightness and contrast are affine in the pixel values: undo them by least squares per face.
    for face, aug in zip(x, out):
        candidates = [face, face[:, ::-1]]
        errors = []
        for c in candidates:
            unclipped = (aug.ravel() > 0) & (aug.ravel() < 255)
            a = np.stack([c.ravel(), np.ones(c.size)], 1)[unclipped]
            coef, *_ = np.linalg.lstsq(a, aug.ravel()[unclipped], rcond=None)
            errors.append(np.abs(a @ coef - aug.ravel()[unclipped]).max())
        assert min(errors) < 1e-2


def test_one_pass_affine_moves_the_other_faces_once():
    """With no face kept, a pure shift of the centre dot moves it; rotation/zoom keep it near the centre."""
    from fer_core.training.augment import AffineRanges, affine_transforms

    seed = keras.random.SeedGenerator(3)
    t = np.asarray(affine_transforms(256, 48, AffineRanges(rotation_degrees=0, zoom=0, shift=0.1, keep_unresampled=0.0),
                                     seed))
    np.testing.assert_allclose(t[:, [0, 1, 3, 4]], np.tile([1, 0, 0, 1], (256, 1)), atol=1e-6)
    assert np.abs(t[:, [2, 5]]).max() <= 4.8 + 1e-4 and np.abs(t[:, [2, 5]]).mean() > 1
    kept = np.asarray(affine_transforms(256, 48, AffineRanges(keep_unresampled=0.25), seed))
    identity = np.all(kept == [1, 0, 0, 0, 1, 0, 0, 0], axis=1)
    assert 0.1 < identity.mean() < 0.4


def test_random_erasing_replaces_one_rectangle():
    from fer_core.training.augment import random_erasing

    x = np.full((200, 48, 48, 1), 128.0, np.float32)
    out = np.asarray(random_erasing(x, 0.5, keras.random.SeedGenerator(0)))
    changed = (out != 128.0).reshape(200, -1)
    erased = changed.any(1)
    assert 0.3 < erased.mean() < 0.7
    for face in (out != 128.0)[erased][..., 0]:
        rows, cols = np.flatnonzero(face.any(1)), np.flatnonzero(face.any(0))
        box = face[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]
        assert box.mean() > 0.95  # one filled rectangle (noise can equal 128 by chance, rarely)
        assert box.size <= 0.2 * 48 * 48 + 2 * 48 + 1


@pytest.mark.slow
def test_training_with_each_recipe_option(trio_run, resnet_run):
    """Random erasing under each optimizer: AdamW (the three-class run), SGD (the resnet_preact member)."""
    for run, optimizer, erasing in ((trio_run, "adamw", 0.5), (resnet_run, "sgd", 0.3)):
        config = json.loads((run / "training.json").read_text())["config"]
        assert (config["optimizer"], config["erasing"], config["augmentation"]) == (optimizer, erasing, "one_pass")


def test_ensemble_is_one_model_averaging_its_members(published, student_run, small_tree, tmp_path):
    """Two published models (``published`` and its student) become one .keras file whose
    probabilities are the members' mean."""
    from fer_core.training.publish import publish_ensemble

    first = copy_published(published, tmp_path)
    # The input blur is not the point here: the second member is published without trying one.
    second = publish(student_run, small_tree, "second", models_dir=tmp_path, blur_candidates=(0.0,))
    dest = publish_ensemble([first, second], small_tree, "pair_ensemble", models_dir=tmp_path)
    faces = load_folder(small_tree).data.split("validation").images
    members = [EmotionRecognizer(first).raw_probabilities(faces), EmotionRecognizer(second).raw_probabilities(faces)]
    ensemble = EmotionRecognizer(dest)
    np.testing.assert_allclose(ensemble.raw_probabilities(faces), np.mean(members, axis=0), atol=1e-5)
    card = json.loads(dest.with_suffix(".json").read_text())
    assert card["architecture"] == "ensemble"
    assert [m["file"] for m in card["members"]] == ["unit.keras", "second.keras"]
    assert card["metrics"]["validation"]["n"] == 42
    assert "ensemble" in card["regenerate"]
    history = pd.read_csv(history_path(dest))  # the members' curves, under their names
    assert history.groupby("member")["epoch"].count().to_dict() == {"unit": 2, "second": 1}


def test_smile_view_sums_the_model_classes_and_decides_at_the_card_threshold(published, small_tree):
    dest = published
    card = json.loads(dest.with_suffix(".json").read_text())
    smile = card["views"]["smile"]
    assert 0.05 <= smile["threshold"] <= 0.95 and smile["accuracy"] >= smile["accuracy_at_0.5"]
    recognizer = EmotionRecognizer(dest)
    view = recognizer.for_scheme("smile")
    assert view.labels == ("not_happy", "happy") and recognizer.labels == FER_LABELS
    assert view.model is recognizer.model
    faces = load_folder(small_tree).data.split("validation").images
    happy = recognizer.predict_proba(faces)[:, FER_LABELS.index("happy")]
    probs = view.predict_proba(faces)
    np.testing.assert_allclose(probs.sum(1), 1, atol=1e-5)
    np.testing.assert_array_equal(probs[:, 1] >= 0.5, happy >= smile["threshold"])
    result = evaluate_faces(view, load_folder(small_tree).data.split("validation"))
    assert result["labels"] == ["not_happy", "happy"] and result["n"] == 42
    assert result["accuracy"] == pytest.approx(smile["accuracy"], abs=1e-9)


def test_choose_threshold_maximises_accuracy_nearest_one_half():
    from fer_core.training.metrics import choose_threshold

    positive = np.array([0.1, 0.2, 0.3, 0.35, 0.6, 0.9])
    y = np.array([0, 0, 1, 1, 1, 1])
    chosen = choose_threshold(positive, y)
    assert chosen["accuracy"] == 1.0 and 0.2 < chosen["threshold"] <= 0.3
    assert chosen["accuracy_at_0.5"] == pytest.approx(4 / 6)


def test_projection_refuses_a_scheme_it_cannot_fill():
    from fer_core.labels import FER6, FER7, SMILE, projection_matrix

    assert projection_matrix(FER6, SMILE)[:, 1].tolist() == [0, 0, 1, 0, 0, 0]
    with pytest.raises(ValueError, match="splits"):
        projection_matrix(SMILE, FER7)


def test_remeasure_keeps_the_training_record_and_adds_views(published, small_tree, tmp_path):
    from fer_core.training.publish import remeasure

    dest = copy_published(published, tmp_path)
    card = json.loads(dest.with_suffix(".json").read_text())
    del card["views"]
    card["training"]["command"] = "the recorded command"
    dest.with_suffix(".json").write_text(json.dumps(card))
    remeasure(dest, small_tree)
    again = json.loads(dest.with_suffix(".json").read_text())
    assert again["training"]["command"] == "the recorded command"
    assert again["input_blur"] == card["input_blur"]
    assert again["metrics"] == card["metrics"] and "smile" in again["views"]


def test_a_scheme_view_is_made_once_per_recognizer(tiny_recognizer):
    view = tiny_recognizer.for_scheme("smile")
    assert tiny_recognizer.for_scheme("smile") is view and tiny_recognizer.for_scheme(None) is tiny_recognizer


def test_distillation_targets_mix_the_label_with_the_teachers_probabilities():
    x = np.zeros((3, 48, 48, 1), np.float32)
    y = np.array([0, 1, 2])
    soft = np.full((3, 3), 1 / 3, np.float32)
    from fer_core.training.train import make_dataset

    (_, targets), = make_dataset(x, y, 3, batch_size=3, training=False, soft_targets=soft, soft_weight=0.6).take(1)
    expected = 0.4 * np.eye(3) + 0.6 / 3
    np.testing.assert_allclose(targets.numpy(), expected, atol=1e-6)
    (_, plain), = make_dataset(x, y, 3, batch_size=3, training=False).take(1)
    np.testing.assert_array_equal(plain.numpy(), np.eye(3))


def _student_config(data: Path, out: Path, teacher: Path) -> TrainConfig:
    """One epoch of a ``tiny`` model learning from ``teacher`` (``--teacher``)."""
    config = _config(data, out, epochs=1)
    config.teacher, config.teacher_weight, config.teacher_temperature = str(teacher), 0.7, 2.0
    return config


@pytest.fixture(scope="module")
def student_run(published, small_tree, tmp_path_factory) -> Path:
    """A run of :func:`_student_config` taught by ``published``."""
    out = tmp_path_factory.mktemp("student")
    train(_student_config(small_tree, out, published), verbose=0)
    return out


@pytest.mark.slow
def test_a_student_learns_from_a_published_teacher(published, student_run, small_tree, tmp_path):
    """``--teacher``: the teacher's softened probabilities come from the recognizer (mirror averaged),
    the run records its teacher, and a teacher with other classes is refused by name."""
    from fer_core.training.train import teacher_targets

    teacher = published
    config = _student_config(small_tree, tmp_path / "student", teacher)
    faces = load_folder(small_tree).data.split("train").images
    soft = teacher_targets(config, faces[..., None].astype(np.float32), get_scheme("fer7"))
    expected = apply_temperature(EmotionRecognizer(teacher).raw_probabilities(faces), 2.0)
    np.testing.assert_allclose(soft, expected, atol=1e-5)
    assert soft.max() < EmotionRecognizer(teacher).raw_probabilities(faces).max() + 1e-6
    info = json.loads((student_run / "training.json").read_text())
    assert info["config"]["teacher"] == str(teacher) and info["config"]["teacher_weight"] == 0.7

    config.out, config.scheme = str(tmp_path / "smile_student"), "smile"
    with pytest.raises(ValueError, match="teacher .* has classes angry.*smile"):
        train(config, verbose=0)


@pytest.mark.parametrize(("weight", "temperature"), [(1.5, 2.0), (0.5, 0.0)])
def test_a_bad_teacher_setting_is_refused_before_any_data_is_read(tmp_path, weight, temperature):
    config = TrainConfig(data=str(tmp_path / "nowhere"), out=str(tmp_path / "run"), teacher="t.keras",
                         teacher_weight=weight, teacher_temperature=temperature)
    with pytest.raises(ValueError, match="teacher weight must be in"):
        train(config, verbose=0)


@pytest.mark.parametrize(("gpus", "flags", "expected"), [
    ([], ("avx2",), "float32"),  # bf16 emulated: about ten times slower than float32
    ([], ("avx2", "avx512f", "avx512_bf16"), "mixed_bfloat16"),
    ([], ("avx2", "amx_tile", "amx_bf16"), "mixed_bfloat16"),
    (["NVIDIA H200"], ("avx2",), "mixed_bfloat16"),
])
def test_auto_precision_is_bf16_only_where_the_device_computes_it_natively(gpus, flags, expected):
    assert resolve_precision("auto", gpus, flags) == expected
    assert resolve_precision("float32", gpus, flags) == "float32"
    assert resolve_precision("mixed_bfloat16", gpus, flags) == "mixed_bfloat16"


def test_a_run_records_the_precision_auto_chose(small_tree, tmp_path):
    config = TrainConfig(data=str(small_tree), out=str(tmp_path / "run"), arch="tiny", epochs=1, batch_size=32,
                         warmup_epochs=0, precision="auto", limit=14)
    train(config, verbose=0)
    info = json.loads((tmp_path / "run" / "training.json").read_text())
    assert info["config"]["precision"] == "auto"
    assert info["precision"] == resolve_precision("auto", info["device"]["gpus"], machine_info().flags)
    assert training_summary(tmp_path / "run")["precision"] == info["precision"]  # what publish puts in the card
    assert keras.mixed_precision.global_policy().name == "float32"  # restored after the run


def test_an_unknown_precision_is_refused_before_any_data_is_read(tmp_path):
    config = TrainConfig(data=str(tmp_path / "nowhere"), out=str(tmp_path / "run"), precision="float16")
    with pytest.raises(ValueError, match="precision must be one of auto, mixed_bfloat16, float32, got 'float16'"):
        train(config, verbose=0)


# Any import of TensorFlow fails as if it were not installed (a None in sys.modules would not do:
# Keras reads the presence of the name there as "TensorFlow is loaded").
NO_TENSORFLOW = """
import importlib.abc, sys
class NoTensorFlow(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.split(".")[0] == "tensorflow":
            raise ModuleNotFoundError(f"No module named {name!r}")
sys.meta_path.insert(0, NoTensorFlow())
"""


def _without_tensorflow(code: str, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """Run ``code`` in a child Python on Keras' JAX backend with TensorFlow made unimportable: what the
    lent GPU machines have (JAX, no TensorFlow)."""
    env = {**os.environ, "KERAS_BACKEND": "jax", "JAX_PLATFORMS": "cpu"}
    guarded = NO_TENSORFLOW + code
    return subprocess.run([sys.executable, "-c", guarded, *args], env=env, cwd=cwd, capture_output=True, text=True,
                          timeout=600)


@pytest.mark.slow
def test_augmentation_runs_on_jax_without_tensorflow():
    """Every recipe is written in keras.ops: under JAX it augments (new draws each call, pixels kept in
    0–255) and is the identity outside training (both recipes in one child: JAX starts once)."""
    code = """
import numpy as np
from fer_core.training.augment import augmentation_layer
faces = np.random.default_rng(0).integers(0, 256, (64, 48, 48, 1)).astype(np.float32)
for recipe in ("one_pass", "three_pass"):
    layer = augmentation_layer(recipe, erasing=0.5, crop=2, seed=0)
    first, second = (np.asarray(layer(faces, training=True)) for _ in range(2))
    assert first.shape == faces.shape and first.min() >= 0 and first.max() <= 255, recipe
    assert not np.array_equal(first, faces) and not np.array_equal(first, second), recipe
    assert np.array_equal(np.asarray(layer(faces, training=False)), faces), recipe
    print(recipe, "ok")
"""
    result = _without_tensorflow(code)
    assert result.returncode == 0 and result.stdout.split() == ["one_pass", "ok", "three_pass", "ok"], \
        result.stderr[-2000:]


def test_resnet_preact_is_a_preactivation_resnet18_of_four_to_five_million_parameters(tmp_path):
    """Eight residual blocks in four stages (three change the shape through a 1×1 projection), about
    4.4 M parameters at the default width 40, a configurable width, and a file that loads in safe mode."""
    model = build_model("resnet_preact", 7, crop=4)
    assert model.name == "resnet_preact_w40" and 4.0e6 < model.count_params() < 5.0e6
    kinds = [layer.__class__.__name__ for layer in model.layers]
    assert kinds.count("Add") == 8
    projections = [layer for layer in model.layers if getattr(layer, "kernel_size", None) == (1, 1)]
    assert len(projections) == 3
    assert model.get_layer("center_crop").output.shape[1:3] == (40, 40)
    assert [layer.output.shape[1] for layer in model.layers if layer.__class__.__name__ == "Add"] == \
        [40, 40, 20, 20, 10, 10, 5, 5]
    narrow = build_model("resnet_preact", 7, width=8)
    assert narrow.name == "resnet_preact_w8" and narrow.count_params() < model.count_params() / 20
    narrow.save(tmp_path / "narrow.keras")
    faces = np.random.default_rng(0).integers(0, 256, (2, 48, 48, 1)).astype(np.float32)
    reloaded = keras.models.load_model(tmp_path / "narrow.keras", safe_mode=True)
    np.testing.assert_allclose(reloaded(faces).numpy(), narrow(faces).numpy(), atol=1e-6)
    with pytest.raises(ValueError, match="'vgg_wide' has a fixed width; a width is for vgg_compact, resnet_preact"):
        build_model("vgg_wide", 7, width=8)


@pytest.mark.parametrize("residual", ["resnet_preact", "ensemble"])
def test_input_blur_rewires_a_graph_that_is_not_a_chain(tmp_path, residual):
    """A residual network (the shortcut reads what the block's first layer reads) and an ensemble of
    a chain and a residual member: every layer that read the input reads the blurred input."""
    import cv2

    from fer_core.training.architectures import build_ensemble

    model = build_model("resnet_preact", 7, crop=2, width=8)
    if residual == "ensemble":
        model = build_ensemble([build_model("tiny", 7), model])
    blurred = with_input_blur(model, 0.6)
    faces = np.random.default_rng(1).integers(0, 256, (3, 48, 48, 1)).astype(np.float32)
    by_hand = np.stack([cv2.filter2D(f[..., 0], -1, gaussian_kernel_3x3(0.6), borderType=cv2.BORDER_CONSTANT)
                        for f in faces])[..., None]
    np.testing.assert_allclose(blurred(faces).numpy(), model(by_hand).numpy(), atol=1e-5)
    assert blurred.count_params() == model.count_params() + 9 and blurred.name == model.name
    blurred.save(tmp_path / "blurred.keras")
    reloaded = keras.models.load_model(tmp_path / "blurred.keras", safe_mode=True)
    np.testing.assert_allclose(reloaded(faces).numpy(), blurred(faces).numpy(), atol=1e-6)


def test_a_width_for_an_architecture_without_one_is_refused_before_any_data_is_read(tmp_path):
    config = TrainConfig(data=str(tmp_path / "nowhere"), out=str(tmp_path / "run"), arch="seed", width=16)
    with pytest.raises(ValueError, match="'seed' has a fixed width"):
        train(config, verbose=0)


def _resnet_recipe(data: Path, out: Path) -> TrainConfig:
    """The resnet_preact member's recipe (docs/ensemble-members.md), narrow and for one epoch."""
    return TrainConfig(data=str(data), out=str(out), arch="resnet_preact", width=8, crop=4, epochs=1, batch_size=32,
                       optimizer="sgd", learning_rate=0.1, weight_decay=5e-4, warmup_epochs=1, erasing=0.3,
                       precision="float32")


def test_the_sgd_recipe_warms_up_from_a_tenth_of_its_rate_then_decays_to_one_percent(tmp_path):
    from fer_core.training.train import learning_rate_schedule

    config = _resnet_recipe(tmp_path, tmp_path / "run")
    config.epochs = 5
    schedule = learning_rate_schedule(config, steps_per_epoch=10)
    rates = [float(schedule(step)) for step in (0, 5, 10, 30, 50)]
    assert rates[0] == pytest.approx(0.01) and rates[1] == pytest.approx(0.055) and rates[2] == pytest.approx(0.1)
    assert rates[2] > rates[3] > rates[4] == pytest.approx(0.001)


@pytest.fixture(scope="module")
def resnet_run(small_tree, tmp_path_factory) -> Path:
    """A run of :func:`_resnet_recipe`."""
    out = tmp_path_factory.mktemp("resnet")
    train(_resnet_recipe(small_tree, out), verbose=0)
    return out


@pytest.mark.slow
def test_a_resnet_preact_member_trains_with_the_sgd_recipe_and_publishes(resnet_run, small_tree, tmp_path):
    info = json.loads((resnet_run / "training.json").read_text())
    assert info["config"]["arch"] == "resnet_preact" and info["config"]["width"] == 8
    assert info["config"]["optimizer"] == "sgd" and info["parameters"] == build_model("resnet_preact", 7,
                                                                                        width=8).count_params()
    dest = publish(resnet_run, small_tree, "resnet_member", models_dir=tmp_path / "models", blur_candidates=(0.0, 0.6))
    card = json.loads(dest.with_suffix(".json").read_text())
    assert card["architecture"] == "resnet_preact" and (card["tta"], card["tta_crop"]) == ("ten_crop", 4)
    assert set(card["input_blur"]["validation_accuracy_by_sigma"]) == {"0", "0.6"}
    assert card["export"]["max_abs_diff"] <= 1e-3
    model = keras.models.load_model(dest, safe_mode=True)
    assert model.name == "resnet_preact_w8" and model.output_shape == (None, 7)


@pytest.mark.slow
def test_the_train_command_runs_unchanged_on_jax_without_tensorflow(small_tree, tmp_path):
    """The resnet_preact member's command line on the lent GPU machines' backend (JAX, no TensorFlow):
    every recipe option is a train option, augmentation moves into the training step, the run records
    its backend, and ``best.keras`` is the network alone, which TensorFlow's Keras loads with ``safe_mode``."""
    out = tmp_path / "jax_resnet"
    code = "from fer_core.cli import main; sys.exit(main(sys.argv[1:]))"
    result = _without_tensorflow(code, "train", "--data", str(small_tree), "--out", str(out), "--arch", "resnet_preact",
                                 "--width", "8", "--crop", "4", "--epochs", "2", "--batch-size", "32", "--optimizer",
                                 "sgd", "--lr", "0.1", "--weight-decay", "5e-4", "--warmup-epochs", "1",
                                 "--erasing", "0.3", "--class-weights", cwd=ROOT)
    assert result.returncode == 0, result.stderr[-3000:]
    info = json.loads((out / "training.json").read_text())
    assert info["device"]["backend"] == "jax" and info["device"]["gpus"] == [] and info["completed"]
    assert info["precision"] == resolve_precision("auto", [], machine_info().flags)
    assert info["config"]["warmup_epochs"] == 1 and info["config"]["weight_decay"] == 5e-4
    assert [row["epoch"] for row in read_history(out)] == [0, 1]
    model = keras.models.load_model(out / "best.keras", safe_mode=True)
    assert model.name == "resnet_preact_w8" and model.input.shape[1:] == (48, 48, 1)
    assert not any(layer.name.startswith("augment") for layer in model.layers)
    assert model.predict(np.zeros((2, 48, 48, 1), np.float32), verbose=0).shape == (2, 7)
