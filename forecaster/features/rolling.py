"""Window arithmetic shared by the feature blocks: rolling sums, means, extremes and z-scores.

A rolling statistic at t must not depend on how much history came before t, or the live window
(which holds only the last candles) would drift from the batch rows. Sums therefore never run over
the whole history: the series is cut into blocks of `window` values, and the window ending at t is
the tail of one block plus the head of the next (van Herk / Gil-Werman), so every value is a sum of
at most `window` terms, O(T) in all, whatever T is.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from forecaster.errors import ConfigError

# Relative spread (std / RMS) below which a window counts as constant: rounding of the sums, not data.
CONSTANT_SPREAD = 1e-6

# A grid of blocks (one block of `window` values per row) -> running values from each block's
# start (head) and to each block's end (tail).
Scan = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]
Combine = Callable[[np.ndarray, np.ndarray], np.ndarray]  # np.add, np.maximum, np.minimum


def _windows(values: np.ndarray, window: int, scan: Scan, combine: Combine) -> np.ndarray:
    """`combine` over the `window` values ending at each t, from a block scan; NaN before."""
    out = np.full(len(values), np.nan)
    if len(values) < window:
        return out
    blocks = -(-len(values) // window)
    padded = np.zeros(blocks * window)
    padded[: len(values)] = values
    head, tail = (part.ravel()[: len(values)] for part in scan(padded.reshape(blocks, window)))
    starts = len(values) - window + 1  # the window ending at t starts at t - window + 1
    rows = combine(tail[:starts], head[window - 1 :])
    rows[::window] = tail[:starts:window]  # a window starting on a block's start is that whole block
    out[window - 1 :] = rows
    return out


def _sums(grid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    head = np.cumsum(grid, axis=1)
    return head, head[:, -1:] - head + grid  # the tail from the head: a sum of at most 2 x window terms


def rolling_sum(values: np.ndarray, window: int) -> np.ndarray:
    """Sum of the `window` values ending at each t; NaN before."""
    return _windows(values, window, _sums, np.add)


def _extremes(accumulate: np.ufunc) -> Scan:
    def scan(grid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return accumulate.accumulate(grid, axis=1), accumulate.accumulate(grid[:, ::-1], axis=1)[:, ::-1]

    return scan


def rolling_max(values: np.ndarray, window: int) -> np.ndarray:
    return _windows(values, window, _extremes(np.maximum), np.maximum)


def rolling_min(values: np.ndarray, window: int) -> np.ndarray:
    return _windows(values, window, _extremes(np.minimum), np.minimum)


def rolling_mean(values: np.ndarray, window: int) -> np.ndarray:
    return rolling_sum(values, window) / window


def rolling_rms(values: np.ndarray, window: int) -> np.ndarray:
    """Root mean square: the realised volatility of log returns (mean taken as zero)."""
    return np.sqrt(rolling_mean(np.square(values), window))


def rolling_zscore(values: np.ndarray, window: int) -> np.ndarray:
    """(last - mean) / std over the window ending at each t (see `zscore`); NaN before."""
    mean = rolling_mean(values, window)
    z = zscore(values, mean, rolling_mean(np.square(values), window))
    return np.where(np.isnan(mean), np.nan, z)


def zscore(last: Any, mean: Any, square: Any) -> Any:
    """(last - mean) / std from a window's mean and mean square (arrays or numbers); 0 where constant.

    The variance comes from sums (E[x^2] - E[x]^2), so a constant window leaves a rounding residue
    instead of an exact 0: a spread below CONSTANT_SPREAD of the window's RMS counts as none.
    """
    spread = np.sqrt(np.maximum(square - mean * mean, 0.0))
    varying = spread > CONSTANT_SPREAD * np.sqrt(square)
    return np.where(varying, (last - mean) / np.where(varying, spread, 1.0), 0.0)


def ratio(num: Any, den: Any, fill: float) -> Any:
    """num / den (arrays or numbers), `fill` where den is 0; NaN stays NaN (rows before the window)."""
    zero = den == 0
    return np.where(zero, fill, num / np.where(zero, 1.0, den))


def ratio_of(num: float, den: float, fill: float) -> float:
    """`ratio` for plain numbers (the live forms: no numpy call per value)."""
    return fill if den == 0 else num / den


def zscore_of(last: float, mean: float, square: float) -> float:
    """`zscore` for plain numbers (the live forms: no numpy call per value)."""
    spread = math.sqrt(max(square - mean * mean, 0.0))
    return (last - mean) / spread if spread > CONSTANT_SPREAD * math.sqrt(square) else 0.0


def lagged_difference(values: np.ndarray, lag: int) -> np.ndarray:
    """values[t] - values[t - lag]; NaN for the first `lag` rows."""
    out = np.full(len(values), np.nan)
    out[lag:] = values[lag:] - values[:-lag]
    return out


def log_returns(close: np.ndarray) -> np.ndarray:
    """log(close[t] / close[t-1]); NaN for the first candle."""
    return lagged_difference(np.log(close), 1)


def check_windows(block: str, key: str, windows: Sequence[int], minimum: int) -> None:
    """A one-line ConfigError unless `windows` is a non-empty list of ints >= minimum."""
    if not windows or any(w < minimum for w in windows):
        raise ConfigError(
            f"features: {block}.{key}={list(windows)} is not allowed; give a non-empty list of ints"
            f" >= {minimum}"
        )
