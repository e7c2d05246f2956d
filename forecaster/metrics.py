"""How good predictions are: the one module training and evaluation both use.

Inputs are arrays over the same candles: the predicted direction (UP/DOWN/FLAT), the actual
direction of the next candle (a zero move is FLAT), the two probabilities and the two targets.
FLAT predictions are abstentions; a decided prediction against a zero move is a miss. Metrics
that are undefined on the input (no decided prediction, no rows) are left out rather than
reported as NaN or as a made-up number.
"""

from __future__ import annotations

import numpy as np

from forecaster.flat import DOWN, FLAT, UP

# Probabilities are clipped this far from 0 and 1 in the log loss, so one confident miss is a
# large but finite penalty.
LOG_LOSS_EPS = 1e-7


def actual_directions(next_ret: np.ndarray) -> np.ndarray:
    """UP / DOWN / FLAT of the next candle's move."""
    return np.where(next_ret > 0, UP, np.where(next_ret < 0, DOWN, FLAT))


def brier(p: np.ndarray, y: np.ndarray) -> float:
    return float(np.mean((np.asarray(p, np.float64) - y) ** 2))


def log_loss(p: np.ndarray, y: np.ndarray) -> float:
    p = np.clip(np.asarray(p, np.float64), LOG_LOSS_EPS, 1 - LOG_LOSS_EPS)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))


def score(
    predicted: np.ndarray,
    actual: np.ndarray,
    p_up: np.ndarray,
    p_down: np.ndarray,
    y_up: np.ndarray,
    y_down: np.ndarray,
) -> dict[str, float]:
    """Decided accuracy, FLAT share and, per head, Brier score and log loss."""
    n = len(predicted)
    if n == 0:
        return {"n": 0.0}
    decided = predicted != FLAT
    correct = decided & (predicted == actual)
    out = {
        "n": float(n),
        "decided": float(decided.sum()),
        "flat_share": float(1 - decided.mean()),
        "accuracy": float(correct.mean()),
        "zero_moves": float((actual == FLAT).sum()),
        "brier_up": brier(p_up, y_up),
        "brier_down": brier(p_down, y_down),
        "log_loss_up": log_loss(p_up, y_up),
        "log_loss_down": log_loss(p_down, y_down),
    }
    if decided.any():
        out["decided_accuracy"] = float(correct.sum() / decided.sum())
    return out
