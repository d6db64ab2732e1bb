"""Model cards: the JSON file beside each ``.keras`` model (same stem) that says how to use it.

A card holds the label scheme, the input size and preprocessing, the test-time augmentation, the
temperature for calibrated probabilities, how the model was trained and what it measured.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from fer_core.labels import FER7, LabelScheme

PROJECT_ROOT = Path(__file__).resolve().parent.parent
MODELS_DIR = PROJECT_ROOT / "models"
# Two shipped models: the accurate one for photos, videos, explanations and the CLIs, and a fast
# one for the live camera, where every frame counts.
DEFAULT_MODEL_NAME = "vgg_ensemble_fer7.keras"
FAST_MODEL_NAME = "vgg_compact_fer7.keras"


def default_model_path() -> Path:
    """The model the app and CLIs use unless told otherwise: ``$FER_MODEL``, else the shipped accurate
    model (the fast one where the accurate one is absent)."""
    if "FER_MODEL" in os.environ:
        return Path(os.environ["FER_MODEL"])
    accurate = MODELS_DIR / DEFAULT_MODEL_NAME
    return accurate if accurate.is_file() else MODELS_DIR / FAST_MODEL_NAME


def fast_model_path() -> Path:
    """The live camera's default: ``$FER_FAST_MODEL``, else the shipped fast model, else
    :func:`default_model_path`."""
    if "FER_FAST_MODEL" in os.environ:
        return Path(os.environ["FER_FAST_MODEL"])
    fast = MODELS_DIR / FAST_MODEL_NAME
    return fast if fast.is_file() and "FER_MODEL" not in os.environ else default_model_path()


def card_path(model_path: str | os.PathLike) -> Path:
    return Path(model_path).with_suffix(".json")


def history_path(model_path: str | os.PathLike) -> Path:
    """The model's training history (epochs × metrics) beside it."""
    return Path(model_path).with_suffix(".history.csv")


def eval_path(model_path: str | os.PathLike) -> Path:
    """The model's full evaluation (confusion matrix, reports) beside it."""
    return Path(model_path).with_suffix(".eval.json")


def misclassified_faces_path(model_path: str | os.PathLike) -> Path:
    """The validation faces the model got wrong, beside it."""
    return Path(model_path).with_suffix(".misclassified.npz")


def read_card(model_path: str | os.PathLike) -> dict:
    """The card beside a model.

    A training run's ``best.keras`` has no card yet: its scheme comes from the run's
    ``training.json``; failing that, FER2013's 7 classes are assumed.
    """
    path = card_path(model_path)
    if path.is_file():
        return json.loads(path.read_text())
    run_info = Path(model_path).parent / "training.json"
    scheme = json.loads(run_info.read_text())["scheme"] if run_info.is_file() else FER7.to_dict()
    return {"name": Path(model_path).stem, "scheme": scheme, "temperature": 1.0, "tta": "hflip"}


def write_card(model_path: str | os.PathLike, card: dict) -> Path:
    path = card_path(model_path)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(card, indent=2) + "\n")
    os.replace(tmp, path)
    return path


def card_scheme(card: dict) -> LabelScheme:
    return LabelScheme.from_dict(card["scheme"])


def models_dir() -> Path:
    """Where the app looks for models: ``$FER_MODELS_DIR`` or the shipped ``models/``."""
    return Path(os.environ.get("FER_MODELS_DIR", MODELS_DIR))


def list_models(folder: str | os.PathLike | None = None) -> list[Path]:
    """``.keras`` files in a folder (default :func:`models_dir`), the default model first."""
    folder = Path(folder) if folder is not None else models_dir()
    if not folder.is_dir():
        return []
    models = sorted(folder.glob("*.keras"))
    return sorted(models, key=lambda p: p.name != DEFAULT_MODEL_NAME)
