"""Training page (AppTest) and the report tables behind it, on a tiny model published in the test."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from helpers import SHIPPED_AND_OWN_LABELS, copy_real_faces, shipped_pair_and_own_models
from streamlit.testing.v1 import AppTest

from fer_core.app.reports import (
    confusion_frame,
    curves_frame,
    filter_misclassified,
    load_evaluation,
    load_history,
    load_misclassified_faces,
    misclassified_frame,
    per_class_frame,
    reliability_frame,
)
from fer_core.labels import FER_LABELS
from fer_core.model_card import DEFAULT_MODEL_NAME, FAST_MODEL_NAME
from fer_core.training.publish import publish
from fer_core.training.train import TrainConfig, train

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def published_model(fer_dir, tmp_path_factory) -> Path:
    """A ``tiny`` model trained for one epoch on a few real faces, published with its reports."""
    tree = copy_real_faces(fer_dir, tmp_path_factory.mktemp("faces"), {"train": 8, "validation": 5})
    run = tmp_path_factory.mktemp("run")
    train(TrainConfig(data=str(tree), out=str(run), arch="tiny", epochs=1, batch_size=16, warmup_epochs=0,
                      precision="float32"), verbose=0)
    return publish(run, tree, "tiny_page", models_dir=tmp_path_factory.mktemp("models"))


def test_report_tables(published_model):
    history = load_history(published_model)
    assert history["epoch"].tolist() == [1]
    assert set(curves_frame(history, "accuracy")["set"]) == {"train", "validation"}
    evaluation = load_evaluation(published_model)
    counts = confusion_frame(evaluation["tta"])
    assert counts.values.sum() == 35
    shares = confusion_frame(evaluation["tta"], normalise=True)
    np.testing.assert_allclose(shares.sum(axis=1), 1.0)
    table = per_class_frame(evaluation["tta"])
    assert list(table.index) == list(FER_LABELS) and table["support"].sum() == 35
    wrong = misclassified_frame(evaluation)
    happy = filter_misclassified(wrong, ["happy"], [])
    assert (happy["true"] == "happy").all() and happy["confidence"].is_monotonic_decreasing
    assert len(filter_misclassified(wrong, [], [])) == len(wrong)
    faces = load_misclassified_faces(published_model)
    assert len(faces) == len(wrong)
    assert all(face.shape == (48, 48) for face in faces.values())
    assert all(source.startswith("validation/") for source in wrong["source"])
    assert set(reliability_frame(evaluation)["calibration"]) == {"before scaling", "after scaling"}


def test_training_page_shows_the_model(published_model, monkeypatch):
    monkeypatch.setenv("FER_MODEL", str(published_model))
    at = AppTest.from_file(str(ROOT / "app_pages" / "2_Training.py"), default_timeout=60).run()
    assert not at.exception
    assert "tiny_page" in at.caption[0].value
    assert [m.label for m in at.metric][:2] == ["Validation accuracy (TTA)", "Without TTA"]
    assert len(at.get("plotly_chart")) >= 4  # loss, accuracy, learning rate, confusion matrix (+ reliability)
    at.toggle[0].set_value(False).run()
    assert not at.exception
    at.multiselect(key="mis_true").set_value(["happy"]).run()
    assert not at.exception
    assert any("misclassified faces match" in c.value for c in at.caption)
    at.toggle(key="mis_cam").set_value(True).run()
    assert not at.exception


def test_training_page_without_reports(tmp_path, monkeypatch, tiny_model_path):
    bare = tmp_path / "bare.keras"
    shutil.copy(tiny_model_path, bare)
    monkeypatch.setenv("FER_MODEL", str(bare))
    at = AppTest.from_file(str(ROOT / "app_pages" / "2_Training.py"), default_timeout=60).run()
    assert not at.exception
    assert any("No training history" in i.value for i in at.info)


def test_training_page_compares_the_models_of_the_folder(published_model, tmp_path, monkeypatch):
    from fer_core.app.reports import comparison_frame, recall_long_frame

    for name in ("first", "second"):
        for suffix in (".keras", ".json", ".history.csv", ".eval.json", ".misclassified.npz"):
            shutil.copy(published_model.with_suffix(suffix), tmp_path / f"{name}{suffix}")
    table = comparison_frame([tmp_path / "first.keras", tmp_path / "second.keras"])
    assert list(table.index) == ["first", "second"]
    evaluation = load_evaluation(published_model)
    assert table.loc["first", "accuracy"] == evaluation["tta"]["accuracy"]
    assert table.loc["first", "tta"] == "hflip"
    assert table.loc["second", "recall happy"] == evaluation["tta"]["per_class"]["happy"]["recall"]
    assert len(recall_long_frame(table)) == 2 * len(FER_LABELS)

    monkeypatch.setenv("FER_MODELS_DIR", str(tmp_path))
    monkeypatch.setenv("FER_MODEL", str(tmp_path / "first.keras"))
    at = AppTest.from_file(str(ROOT / "app_pages" / "2_Training.py"), default_timeout=120).run()
    assert not at.exception
    shown = at.dataframe[-1].value
    assert list(shown.index) == ["first", "second"]
    at.toggle(key="compare_speed").set_value(True).run()
    assert not at.exception
    speeds = at.dataframe[-1].value["faces_per_s"]
    assert (speeds > 0).all()


def test_the_model_picker_shows_roles_and_accuracy(monkeypatch, tmp_path):
    shipped_pair_and_own_models(tmp_path)
    monkeypatch.setenv("FER_MODELS_DIR", str(tmp_path))
    monkeypatch.setenv("FER_MODEL", str(tmp_path / DEFAULT_MODEL_NAME))
    at = AppTest.from_file(str(ROOT / "app_pages" / "2_Training.py"), default_timeout=60).run()
    assert not at.exception
    picker = at.sidebar.selectbox(key="model")
    assert picker.options == SHIPPED_AND_OWN_LABELS and picker.index == 0


def fake_member(folder: Path, name: str, epochs: int) -> Path:
    """A published member's card and history (no weights: nothing here loads it)."""
    import json

    from fer_core.labels import FER7

    path = folder / f"{name}.keras"
    path.write_bytes(b"weights are not read")
    card = {"name": name, "scheme": FER7.to_dict(), "architecture": "tiny", "parameters": 1000,
            "metrics": {"validation": {"accuracy": 0.5, "accuracy_no_tta": 0.45, "macro_f1": 0.4}},
            "training": {"command": f"python -m fer_core train --out runs/{name}", "epochs_run": epochs,
                         "best_epoch": epochs - 1},
            "regenerate": f"python -m fer_core publish --run runs/{name} --name {name}"}
    path.with_suffix(".json").write_text(json.dumps(card))
    rows = [f"{e},{0.3 + e / 10},{2 - e / 10},{0.25 + e / 10},{2.1 - e / 10}" for e in range(epochs)]
    path.with_suffix(".history.csv").write_text("epoch,accuracy,loss,val_accuracy,val_loss\n" + "\n".join(rows) + "\n")
    return path


def test_an_ensemble_keeps_its_members_records_and_curves(tmp_path, monkeypatch):
    """What the Training page shows of an ensemble comes from its own card and history: the members'
    files may be gone."""
    import json

    from fer_core.labels import FER7
    from fer_core.model_card import ModelCard
    from fer_core.training.publish import record_members

    members = [fake_member(tmp_path, "first", 2), fake_member(tmp_path, "second", 3)]
    ensemble = tmp_path / "both.keras"
    ensemble.write_bytes(b"weights are not read")
    ensemble.with_suffix(".json").write_text(json.dumps({"name": "both", "scheme": FER7.to_dict(),
                                                         "architecture": "ensemble"}))
    record_members(ensemble, members)
    for member in members:
        for suffix in (".keras", ".json", ".history.csv"):
            member.with_suffix(suffix).unlink()
    history = load_history(ensemble)
    assert history.groupby("member")["epoch"].max().to_dict() == {"first": 2, "second": 3}
    recorded = ModelCard.load(ensemble).data["members"]
    assert [(m["epochs_run"], m["best_epoch"]) for m in recorded] == [(2, 1), (3, 2)]
    assert recorded[1]["publish_command"] == "python -m fer_core publish --run runs/second --name second"

    monkeypatch.setenv("FER_MODELS_DIR", str(tmp_path))
    monkeypatch.setenv("FER_MODEL", str(ensemble))
    at = AppTest.from_file(str(ROOT / "app_pages" / "2_Training.py"), default_timeout=60).run()
    assert not at.exception
    assert not any("No training history" in i.value for i in at.info)
    assert {m.label: m.value for m in at.metric}["Epochs per member"] == "2–3"
    assert len(at.get("plotly_chart")) == 2  # loss and accuracy, one panel per member each
    table = at.dataframe[0].value
    assert table.index.tolist() == ["first", "second"] and table["epochs"].tolist() == [2, 3]
    assert "python -m fer_core train --out runs/second" in [c.value for c in at.code][1]


@pytest.mark.parametrize("model_name", [DEFAULT_MODEL_NAME, FAST_MODEL_NAME])
def test_the_training_page_shows_curves_for_each_shipped_model(model_name, monkeypatch):
    from fer_core.model_card import MODELS_DIR

    monkeypatch.setenv("FER_MODEL", str(MODELS_DIR / model_name))
    at = AppTest.from_file(str(ROOT / "app_pages" / "2_Training.py"), default_timeout=60).run()
    assert not at.exception
    assert not any("No training history" in i.value for i in at.info)
    history = load_history(MODELS_DIR / model_name)
    if "member" in history:
        assert history["member"].nunique() == 6
        assert len(at.dataframe[0].value) == 6  # the members table
    assert len(at.get("plotly_chart")) >= 2
