"""Which shipped model the app uses where: the accurate default and the live camera's fast one."""

from __future__ import annotations

from helpers import SHIPPED_AND_OWN_LABELS, shipped_pair_and_own_models

from fer_core import model_card as card


def test_accurate_default_and_fast_live_model(tmp_path, monkeypatch):
    monkeypatch.delenv("FER_MODEL", raising=False)
    monkeypatch.delenv("FER_FAST_MODEL", raising=False)
    monkeypatch.setattr(card, "MODELS_DIR", tmp_path)
    fast = tmp_path / card.FAST_MODEL_NAME
    fast.touch()
    assert card.default_model_path() == fast  # no accurate model shipped: the fast one serves all
    accurate = tmp_path / card.DEFAULT_MODEL_NAME
    accurate.touch()
    assert card.default_model_path() == accurate and card.fast_model_path() == fast
    monkeypatch.setenv("FER_MODEL", str(tmp_path / "mine.keras"))
    assert card.default_model_path() == card.fast_model_path() == tmp_path / "mine.keras"
    monkeypatch.setenv("FER_FAST_MODEL", str(tmp_path / "quick.keras"))
    assert card.fast_model_path() == tmp_path / "quick.keras"


def test_a_card_is_validated_before_it_is_written(tmp_path):
    import json

    import pytest

    from fer_core.labels import SMILE
    from fer_core.model_card import ModelCard

    model = tmp_path / "m.keras"
    card = ModelCard(model, {"name": "m", "scheme": SMILE.to_dict(), "temperature": 1.2,
                             "views": {"smile": {"threshold": 0.4}}})
    assert card.save() == tmp_path / "m.json"
    loaded = ModelCard.load(model)
    assert loaded.labels == SMILE.labels and loaded.temperature == 1.2 and not loaded.is_published
    assert loaded.view_threshold("smile") == 0.4 and loaded.view_threshold("other") == 0.5
    assert loaded.history_path == tmp_path / "m.history.csv"
    with pytest.raises(ValueError, match="fer_to_class"):
        ModelCard(model, {"name": "m", "scheme": {**SMILE.to_dict(), "fer_to_class": [0, 1]}}).save()
    with pytest.raises(ValueError, match="temperature"):
        ModelCard(model, {"name": "m", "scheme": SMILE.to_dict(), "temperature": 0}).save()
    assert json.loads((tmp_path / "m.json").read_text())["temperature"] == 1.2  # the bad ones never landed


def test_models_are_listed_shipped_first_with_readable_labels(tmp_path):
    shipped_pair_and_own_models(tmp_path)
    models = card.list_models(tmp_path)
    assert [p.name for p in models] == [card.DEFAULT_MODEL_NAME, card.FAST_MODEL_NAME, "bare.keras", "mine.keras"]
    assert [card.model_label(p) for p in models] == SHIPPED_AND_OWN_LABELS
    (tmp_path / "broken.keras").touch()
    (tmp_path / "broken.json").write_text("{not json")
    assert card.model_label(tmp_path / "broken.keras") == "broken"


def test_git_tracks_only_the_two_shipped_models_and_their_files():
    """`models/` holds what the product ships; other models live in docs/models.md with their commands."""
    import shutil
    import subprocess

    import pytest

    if shutil.which("git") is None or not (card.MODELS_DIR.parent / ".git").exists():
        pytest.skip("not a git checkout")
    tracked = subprocess.run(["git", "ls-files", "models"], cwd=card.MODELS_DIR.parent, check=True,
                             capture_output=True, text=True).stdout.split()
    companions = (card.card_path, card.history_path, card.eval_path, card.misclassified_faces_path,
                  card.exported_model_path)
    expected = set()
    for name in (card.DEFAULT_MODEL_NAME, card.FAST_MODEL_NAME):
        model = card.MODELS_DIR / name
        expected |= {f"models/{path.name}" for path in (model, *(f(model) for f in companions))}
    assert sorted(tracked) == sorted(expected)
