"""Which shipped model the app uses where: the accurate default and the live camera's fast one."""

from __future__ import annotations

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
