"""Pure numeric helpers of the evaluation: losses, direction codes, confusion counts, Wilson
intervals and exact binomial tails. Arrays in, numbers or arrays out; no result types."""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from statistics import NormalDist
from typing import Any

import numpy as np

from forecaster.direction import Direction

# Probabilities are clipped this far from 0 and 1 in the log loss, so one confident miss is a
# large but finite penalty.
LOG_LOSS_EPS = 1e-7
LABELS = tuple(Direction)  # UP, DOWN, FLAT: codes 0, 1, 2 and the row/column order of the confusion matrix
UP_CODE, DOWN_CODE, FLAT_CODE = (LABELS.index(d) for d in (Direction.UP, Direction.DOWN, Direction.FLAT))
CONFIDENCE = 0.95  # two-sided level of the Wilson interval
CHANCE = 0.5  # hit rate of a coin flip between UP and DOWN, the first yardstick of decided accuracy


def brier(p: np.ndarray, y: np.ndarray) -> float:
    return float(np.mean((np.asarray(p, np.float64) - y) ** 2))


def log_loss(p: np.ndarray, y: np.ndarray) -> float:
    p = np.clip(np.asarray(p, np.float64), LOG_LOSS_EPS, 1 - LOG_LOSS_EPS)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))


def direction_codes(directions: np.ndarray, what: str) -> np.ndarray:
    """UP/DOWN/FLAT as 0/1/2 (the LABELS order), so counting is one bincount; anything else is an error."""
    directions = np.asarray(directions)
    codes = np.full(directions.shape, -1, np.int64)
    for code, label in enumerate(LABELS):
        codes[directions == label] = code
    if (codes < 0).any():
        bad = sorted({str(v) for v in directions[codes < 0][:5]})
        raise ValueError(f"{what}: directions must be one of {LABELS}, got {bad}")
    return codes


def checked_probabilities(p: np.ndarray, what: str) -> np.ndarray:
    p = np.asarray(p, np.float64)
    if not np.isfinite(p).all() or (p < 0).any() or (p > 1).any():
        raise ValueError(f"{what}: probabilities must be finite and in [0, 1]")
    return p


def confusion_counts(pred: np.ndarray, fact: np.ndarray) -> np.ndarray:
    """3x3 counts of direction codes, rows predicted and columns fact."""
    k = len(LABELS)
    return np.bincount(pred * k + fact, minlength=k * k).reshape(k, k)


def confusion_matrix(predicted: np.ndarray, actual: np.ndarray) -> np.ndarray:
    """3x3 counts, rows predicted and columns fact, both in LABELS order."""
    return confusion_counts(direction_codes(predicted, "predicted"), direction_codes(actual, "actual"))


def running_accuracy(predicted: np.ndarray, actual: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(positions of the decided rows, hits so far, decided so far) at each decided row: the decided
    accuracy over time is hits / decided (with `wilson_bounds` for its uncertainty)."""
    pred, fact = direction_codes(predicted, "predicted"), direction_codes(actual, "actual")
    where = np.flatnonzero(pred != FLAT_CODE)
    return where, np.cumsum(pred[where] == fact[where]), np.arange(1, len(where) + 1)


def wilson_bounds(
    hits: np.ndarray, n: np.ndarray, confidence: float = CONFIDENCE
) -> tuple[np.ndarray, np.ndarray]:
    """Vectorised Wilson score interval of hits/n (every n > 0): unlike the normal approximation it
    stays inside [0, 1] and is sensible for small n and for rates near 0 or 1."""
    hits, n = np.asarray(hits, np.float64), np.asarray(n, np.float64)
    if (n <= 0).any():
        raise ValueError("the Wilson interval needs n > 0")
    z = NormalDist().inv_cdf(0.5 + confidence / 2)
    rate, z2 = hits / n, z * z
    centre = (rate + z2 / (2 * n)) / (1 + z2 / n)
    half = z / (1 + z2 / n) * np.sqrt(rate * (1 - rate) / n + z2 / (4 * n * n))
    # At 0 or n hits the bound is exactly 0 or 1; rounding would leave it a hair off.
    low = np.where(hits <= 0, 0.0, np.maximum(0.0, centre - half))
    return low, np.where(hits >= n, 1.0, np.minimum(1.0, centre + half))


def wilson_interval(hits: int, n: int, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """Wilson score interval of one proportion hits/n (n > 0)."""
    low, high = wilson_bounds(np.array(hits), np.array(n), confidence)
    return float(low), float(high)


@functools.cache
def _scipy_binom_sf() -> Callable[..., Any] | None:
    """scipy.stats (installed with mlflow, not a declared dependency) if present; imported lazily (slow)."""
    try:
        from scipy.stats import binom
    except ImportError:  # pragma: no cover - depends on the environment
        return None
    return binom.sf


def binomial_tail_logspace(hits: int, n: int, p0: float) -> float:
    """P(X >= hits) for X ~ Binomial(n, p0), exact, summed in log space (fallback without scipy).

    The pmf from `hits` on follows from log pmf(hits) by cumulative sums of the ratios
    pmf(j+1)/pmf(j) = (n-j)/(j+1) * p0/(1-p0), so n up to millions costs one vectorised pass.
    """
    if hits <= 0:
        return 1.0
    if hits > n or p0 <= 0:
        return 0.0
    if p0 >= 1:
        return 1.0
    j = np.arange(hits, n, dtype=np.float64)
    log_ratio = np.log((n - j) / (j + 1)) + (math.log(p0) - math.log1p(-p0))
    log_first = (
        math.lgamma(n + 1)
        - math.lgamma(hits + 1)
        - math.lgamma(n - hits + 1)
        + hits * math.log(p0)
        + (n - hits) * math.log1p(-p0)
    )
    logs = log_first + np.concatenate(([0.0], np.cumsum(log_ratio)))
    top = float(logs.max())
    return float(min(1.0, math.exp(top) * float(np.exp(logs - top).sum())))


def binomial_p_value(hits: int, n: int, p0: float) -> float:
    """One-sided exact p-value P(X >= hits | n, p0): how surprising this many hits is if the true
    hit rate were only p0."""
    if hits <= 0:
        return 1.0
    if hits > n:
        return 0.0
    sf = _scipy_binom_sf()
    if sf is None:
        return binomial_tail_logspace(hits, n, p0)
    return float(min(1.0, max(0.0, sf(hits - 1, n, p0))))
