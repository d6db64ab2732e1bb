"""Temperature scaling: one scalar T that makes the model's confidence match its accuracy."""

from __future__ import annotations

import numpy as np

from .recognizer import apply_temperature


def negative_log_likelihood(probs: np.ndarray, y_true: np.ndarray) -> float:
    return float(-np.log(np.clip(probs[np.arange(len(y_true)), y_true], 1e-12, 1.0)).mean())


def fit_temperature(probs: np.ndarray, y_true: np.ndarray, low: float = 0.2, high: float = 5.0) -> float:
    """The T minimising the negative log-likelihood of ``softmax(log p / T)`` on labelled faces.

    A coarse log-spaced grid then a finer one around its best point: the NLL is smooth and unimodal
    in T, and this needs no optimiser dependency.
    """
    if len(y_true) == 0:
        raise ValueError("cannot fit a temperature on no faces")
    grid = np.geomspace(low, high, 60)
    for _ in range(2):
        losses = [negative_log_likelihood(apply_temperature(probs, t), y_true) for t in grid]
        best = int(np.argmin(losses))
        grid = np.geomspace(grid[max(best - 1, 0)], grid[min(best + 1, len(grid) - 1)], 40)
    losses = [negative_log_likelihood(apply_temperature(probs, t), y_true) for t in grid]
    return float(grid[int(np.argmin(losses))])
