"""Row-local window arithmetic shared by the feature blocks.

Every statistic of row t is computed from the `w` values ending at t alone (sliding windows, never a
running cumulative sum over the whole history), so the live window, which holds only the last
candles, reproduces the batch row to rounding. Work is done in chunks of rows so that temporaries
stay a few MB however long the history is.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from forecaster.errors import ConfigError

# Rows of windows reduced at once: rows x window floats per temporary.
CHUNK_ROWS = 8192

Reduce = Callable[[np.ndarray], np.ndarray]


def rolling(values: np.ndarray, window: int, reduce: Reduce) -> np.ndarray:
    """`reduce` (rows of windows -> a value per row) over the `window` values ending at each t; NaN before."""
    out = np.full(len(values), np.nan)
    if len(values) < window:
        return out
    windows = sliding_window_view(values, window)
    for start in range(0, len(windows), CHUNK_ROWS):
        block = windows[start : start + CHUNK_ROWS]
        out[window - 1 + start : window - 1 + start + len(block)] = reduce(block)
    return out


def rolling_mean(values: np.ndarray, window: int) -> np.ndarray:
    return rolling(values, window, lambda block: block.mean(axis=1))


def rolling_rms(values: np.ndarray, window: int) -> np.ndarray:
    """Root mean square: the realised volatility of log returns (mean taken as zero)."""
    return rolling(values, window, lambda block: np.sqrt(np.square(block).mean(axis=1)))


def rolling_zscore(values: np.ndarray, window: int) -> np.ndarray:
    """(last - mean) / std over the window; 0 where the window is constant."""

    def z(block: np.ndarray) -> np.ndarray:
        mean = block.mean(axis=1)
        std = block.std(axis=1)
        return np.divide(block[:, -1] - mean, std, out=np.zeros_like(mean), where=std > 0)

    return rolling(values, window, z)


def ratio(num: np.ndarray, den: np.ndarray, fill: float) -> np.ndarray:
    """num / den, `fill` where den is 0 (NaN stays NaN: rows before the window)."""
    out = np.full(np.broadcast(num, den).shape, fill)
    np.divide(num, den, out=out, where=den != 0)
    return np.where(np.isnan(num) | np.isnan(den), np.nan, out)


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
