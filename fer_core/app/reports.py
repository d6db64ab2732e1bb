"""Tables behind the Training page, read from the files ``publish`` writes beside a model."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd

from fer_core.model_card import ModelCard, eval_path, history_path, misclassified_faces_path


def load_history(model_path: str | os.PathLike) -> pd.DataFrame | None:
    """Per-epoch history (epoch counted from 1), or ``None`` if the model has none."""
    path = history_path(model_path)
    if not path.is_file():
        return None
    frame = pd.read_csv(path)
    frame["epoch"] = frame["epoch"].astype(int) + 1
    return frame


def curves_frame(history: pd.DataFrame, metric: str) -> pd.DataFrame:
    """Long form of train vs. validation ``metric`` (``loss`` or ``accuracy``) per epoch, for plotting
    (per member too, for an ensemble's history)."""
    columns = {metric: "train", f"val_{metric}": "validation"}
    present = [c for c in columns if c in history]
    keys = ["member", "epoch"] if "member" in history else ["epoch"]
    long = history.melt(id_vars=keys, value_vars=present, var_name="set", value_name="value")
    long["set"] = long["set"].map(columns)
    return long.rename(columns={"value": metric})


def load_evaluation(model_path: str | os.PathLike) -> dict | None:
    path = eval_path(model_path)
    return json.loads(path.read_text()) if path.is_file() else None


def confusion_frame(figures: dict, normalise: bool = False) -> pd.DataFrame:
    """Confusion matrix (rows true, columns predicted); row-normalised to shares when ``normalise``."""
    cm = np.asarray(figures["confusion_matrix"], dtype=float)
    if normalise:
        cm = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
    labels = figures["labels"]
    return pd.DataFrame(cm, index=pd.Index(labels, name="true"), columns=pd.Index(labels, name="predicted"))


def per_class_frame(figures: dict) -> pd.DataFrame:
    frame = pd.DataFrame(figures["per_class"]).T
    frame.index.name = "class"
    frame["support"] = frame["support"].astype(int)
    return frame[["precision", "recall", "f1", "support"]]


def misclassified_frame(evaluation: dict) -> pd.DataFrame:
    """One row per misclassified validation face: source, true, predicted, confidence."""
    rows = evaluation.get("misclassified", [])
    return pd.DataFrame(rows, columns=["source", "split", "true", "predicted", "confidence", "probabilities"])


def filter_misclassified(frame: pd.DataFrame, true: list[str], predicted: list[str]) -> pd.DataFrame:
    """Rows whose true / predicted class is among those chosen (an empty choice keeps all), most
    confident mistakes first."""
    keep = pd.Series(True, index=frame.index)
    if true:
        keep &= frame["true"].isin(true)
    if predicted:
        keep &= frame["predicted"].isin(predicted)
    return frame[keep].sort_values("confidence", ascending=False)


def load_misclassified_faces(model_path: str | os.PathLike) -> dict[str, np.ndarray]:
    """``{source: 48×48 face}`` for the misclassified faces stored beside the model (empty if none)."""
    path = misclassified_faces_path(model_path)
    if not path.is_file():
        return {}
    with np.load(path) as z:
        return dict(zip(z["sources"].tolist(), z["images"]))


def reliability_frame(evaluation: dict) -> pd.DataFrame:
    """Reliability-diagram points before and after temperature scaling (non-empty bins only)."""
    calibration = evaluation.get("calibration", {})
    frames = []
    for key, name in (("reliability_before", "before scaling"), ("reliability_after", "after scaling")):
        frame = pd.DataFrame(calibration.get(key, []))
        if not frame.empty:
            frame = frame[frame["count"] > 0].assign(calibration=name)
            frames.append(frame)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def card_overview(model_path: str | os.PathLike) -> dict:
    """The headline figures of a model card, for the page's metrics row. An ensemble's epochs are its
    members' (a range where they differ); it has no epoch time of its own."""
    card = ModelCard.load(model_path)
    validation, training = card.validation, card.training
    return {
        "accuracy": validation.get("accuracy"),
        "accuracy_no_tta": validation.get("accuracy_no_tta"),
        "macro_f1": validation.get("macro_f1"),
        "ece": validation.get("ece"),
        "ece_before": validation.get("ece_before_calibration"),
        "epochs": training.get("epochs_run") or members_epochs(card),
        "seconds_per_epoch": training.get("seconds_per_epoch_median"),
        "parameters": card.parameters,
        "members": len(card.data.get("members", [])),
    }


def members_epochs(card: ModelCard) -> str | None:
    """``74–80`` (fewest to most epochs its members ran), ``80`` when they agree, ``None`` when the
    card records none."""
    epochs = [m["epochs_run"] for m in card.data.get("members", []) if m.get("epochs_run")]
    if not epochs:
        return None
    return str(min(epochs)) if min(epochs) == max(epochs) else f"{min(epochs)}–{max(epochs)}"


def members_frame(model_path: str | os.PathLike) -> pd.DataFrame:
    """One row per member of an ensemble, from its card: epochs run, best epoch, validation figures
    and the commands that train and publish the member again (empty for a single model)."""
    columns = {"name": "member", "epochs_run": "epochs", "best_epoch": "best epoch",
               "validation_accuracy": "accuracy", "validation_accuracy_no_tta": "accuracy_no_tta",
               "macro_f1": "macro_f1", "training_command": "training command",
               "publish_command": "publish command"}
    members = ModelCard.load(model_path).data.get("members", [])
    frame = pd.DataFrame([{key: member.get(key) for key in columns} for member in members], columns=list(columns))
    return frame.rename(columns=columns).set_index("member")


def comparison_frame(model_paths: list[str | os.PathLike]) -> pd.DataFrame:
    """One row per model from its card: its test-time augmentation, validation accuracy with and
    without it, macro F1, ECE, recall per class, parameters (figures missing from a card stay empty)."""
    rows = []
    for path in model_paths:
        card = ModelCard.load(path)
        validation = card.validation
        row = {
            "model": Path(path).stem,
            "architecture": card.architecture,
            "tta": card.tta if not card.tta_crop else f"{card.tta} ({48 - 2 * card.tta_crop} px)",
            "accuracy": validation.get("accuracy"),
            "accuracy_no_tta": validation.get("accuracy_no_tta"),
            "macro_f1": validation.get("macro_f1"),
            "ece": validation.get("ece"),
            "parameters": card.parameters,
        }
        row.update({f"recall {label}": value for label, value in validation.get("recall", {}).items()})
        rows.append(row)
    return pd.DataFrame(rows).set_index("model") if rows else pd.DataFrame()


def recall_long_frame(comparison: pd.DataFrame) -> pd.DataFrame:
    """Per-class recall of each model in long form (model, class, recall), for a grouped bar chart."""
    recall = comparison[[c for c in comparison.columns if c.startswith("recall ")]]
    long = recall.reset_index().melt(id_vars="model", var_name="class", value_name="recall")
    long["class"] = long["class"].str.removeprefix("recall ")
    return long
