"""Evaluation of a recognizer on labelled faces: accuracy, per-class figures, confusion matrix, ECE."""

from __future__ import annotations

import io
import math

import numpy as np

from fer_core.data import FaceData
from fer_core.inference.recognizer import EmotionRecognizer
from fer_core.labels import FER_LABELS


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> np.ndarray:
    """Counts with rows = true class, columns = predicted class."""
    return np.bincount(y_true * n_classes + y_pred, minlength=n_classes * n_classes).reshape(n_classes, n_classes)


def per_class_figures(cm: np.ndarray, labels: tuple[str, ...]) -> dict[str, dict[str, float]]:
    """Precision, recall, F1 and support per class from a confusion matrix."""
    out = {}
    for i, label in enumerate(labels):
        tp = cm[i, i]
        predicted, actual = cm[:, i].sum(), cm[i, :].sum()
        precision = tp / predicted if predicted else 0.0
        recall = tp / actual if actual else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        out[label] = {"precision": float(precision), "recall": float(recall), "f1": float(f1), "support": int(actual)}
    return out


def expected_calibration_error(probs: np.ndarray, y_true: np.ndarray, n_bins: int = 15) -> float:
    """ECE: confidence-vs-accuracy gap averaged over equal-width confidence bins, weighted by size."""
    if len(probs) == 0:
        return 0.0
    bins = reliability_bins(probs, y_true, n_bins)
    return float(sum(b["count"] / len(probs) * abs(b["accuracy"] - b["confidence"]) for b in bins if b["count"]))


def reliability_bins(probs: np.ndarray, y_true: np.ndarray, n_bins: int = 15) -> list[dict[str, float]]:
    """Per confidence bin: its range, the number of faces, mean confidence and accuracy."""
    confidence = probs.max(axis=1)
    correct = probs.argmax(axis=1) == y_true
    bins = np.minimum((confidence * n_bins).astype(int), n_bins - 1)
    rows = []
    for b in range(n_bins):
        in_bin = bins == b
        rows.append({
            "low": b / n_bins,
            "high": (b + 1) / n_bins,
            "count": int(in_bin.sum()),
            "confidence": float(confidence[in_bin].mean()) if in_bin.any() else None,
            "accuracy": float(correct[in_bin].mean()) if in_bin.any() else None,
        })
    return rows


def summarise_predictions(probs: np.ndarray, y_true: np.ndarray, labels: tuple[str, ...]) -> dict:
    """The figures of a set of predictions (``probs`` rows in label order, ``y_true`` class indices)."""
    y_pred = probs.argmax(axis=1) if len(probs) else np.zeros(0, np.int64)
    cm = confusion_matrix(y_true, y_pred, len(labels))
    per_class = per_class_figures(cm, labels)
    return {
        "n": int(len(y_true)),
        "accuracy": float((y_pred == y_true).mean()) if len(y_true) else 0.0,
        "macro_f1": float(np.mean([v["f1"] for v in per_class.values()])),
        "labels": list(labels),
        "confusion_matrix": cm.tolist(),
        "per_class": per_class,
        "ece": expected_calibration_error(probs, y_true),
    }


def evaluate_faces(recognizer: EmotionRecognizer, data: FaceData, tta: bool = True,
                   list_misclassified: bool = True) -> dict:
    """Classify the dataset's 48×48 faces directly, as the app does (same preprocessing, TTA, calibration).

    Faces whose FER label has no class in the model's scheme are counted under ``excluded`` and left
    out of every figure.
    """
    y = recognizer.scheme.map_fer(data.labels)
    keep = y >= 0
    excluded = {FER_LABELS[i]: int(n) for i, n in enumerate(np.bincount(data.labels[~keep], minlength=7)) if n}
    probs = recognizer.predict_proba(data.images[keep], tta=tta)
    result = summarise_predictions(probs, y[keep], recognizer.labels)
    result.update({"model": str(recognizer.model_path), "tta": tta, "temperature": recognizer.temperature,
                   "excluded": excluded})
    if list_misclassified:
        result["misclassified"] = misclassified_faces(probs, y[keep], data.subset(keep), recognizer.labels)
    return result


def misclassified_faces(probs: np.ndarray, y_true: np.ndarray, data: FaceData, labels: tuple[str, ...]) -> list[dict]:
    """Each wrong prediction: where the face came from, true and predicted label, probabilities."""
    wrong = np.flatnonzero(probs.argmax(axis=1) != y_true)
    return [
        {
            "source": str(data.sources[i]),
            "split": str(data.splits[i]),
            "true": labels[y_true[i]],
            "predicted": labels[int(probs[i].argmax())],
            "confidence": float(probs[i].max()),
            "probabilities": {lab: round(float(p), 4) for lab, p in zip(labels, probs[i])},
        }
        for i in wrong
    ]


def report_text(result: dict) -> str:
    """Accuracy, per-class table and confusion matrix as plain text."""
    labels = result["labels"]
    out = io.StringIO()
    out.write(f"accuracy {result['accuracy']:.4f} on {result['n']} faces (TTA {'on' if result.get('tta') else 'off'}), "
              f"macro F1 {result['macro_f1']:.4f}, ECE {result['ece']:.4f}\n")
    if result.get("excluded"):
        out.write("left out (not in the model's scheme): "
                  + ", ".join(f"{k} {v}" for k, v in result["excluded"].items()) + "\n")
    out.write(f"\n{'class':<12}{'precision':>10}{'recall':>10}{'f1':>10}{'support':>10}\n")
    for label, fig in result["per_class"].items():
        out.write(f"{label:<12}{fig['precision']:>10.3f}{fig['recall']:>10.3f}{fig['f1']:>10.3f}{fig['support']:>10}\n")
    width = max(9, max(len(lab) for lab in labels) + 1)
    out.write("\nconfusion matrix (rows true, columns predicted)\n")
    out.write(" " * 12 + "".join(f"{lab[:width - 1]:>{width}}" for lab in labels) + "\n")
    for label, row in zip(labels, result["confusion_matrix"]):
        out.write(f"{label:<12}" + "".join(f"{n:>{width}}" for n in row) + "\n")
    return out.getvalue()


def choose_threshold(positive: np.ndarray, y_true: np.ndarray, grid: np.ndarray | None = None) -> dict:
    """The decision threshold on the positive-class probability with the best accuracy on ``y_true``
    (1 = positive); among ties the one closest to 0.5. Returns it with its accuracy and 0.5's."""
    grid = np.round(np.arange(0.05, 0.951, 0.01), 2) if grid is None else np.asarray(grid)
    positive, y_true = np.asarray(positive), np.asarray(y_true)
    accuracy = np.array([np.mean((positive >= t) == (y_true == 1)) for t in grid])
    best = grid[np.lexsort((np.abs(grid - 0.5), -accuracy))[0]]
    return {"threshold": float(best), "accuracy": float(accuracy.max()),
            "accuracy_at_0.5": float(np.mean((positive >= 0.5) == (y_true == 1))), "n": int(len(y_true))}


def paired_comparison(first_correct: np.ndarray, second_correct: np.ndarray) -> dict:
    """Two models on the same faces: how many faces only one of them gets right, and the exact
    two-sided McNemar p-value (a binomial test on those faces). A small difference in accuracy with
    a large p-value is noise, not a better model."""
    first_correct, second_correct = np.asarray(first_correct, bool), np.asarray(second_correct, bool)
    if first_correct.shape != second_correct.shape:
        raise ValueError(f"the two models were scored on different faces: {first_correct.shape} and "
                         f"{second_correct.shape}")
    only_first = int((first_correct & ~second_correct).sum())
    only_second = int((second_correct & ~first_correct).sum())
    n, k = only_first + only_second, min(only_first, only_second)
    p_value = min(1.0, 2 * sum(math.comb(n, i) for i in range(k + 1)) / 2**n) if n else 1.0
    return {"n": int(first_correct.size), "first_accuracy": float(first_correct.mean()),
            "second_accuracy": float(second_correct.mean()), "only_first_right": only_first,
            "only_second_right": only_second, "p_value": p_value}
