"""features=basic: the last N log-returns, the last candle's range and body, and a volume z-score.

`batch` turns a whole history into a `(T, F)` matrix with numpy; the live window runs the same
`batch` over its candles (forecaster/features/window.py), so live and batch rows are the same
numbers by construction.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from forecaster.candles import CandleArray
from forecaster.schema import bounded

# Bump when the meaning of a feature changes: models trained on the old meaning must not load.
FEATURES_VERSION = 1
FINGERPRINT_CHARS = 12
# Rows of the rolling volume statistics computed at once: the temporaries stay a few MB instead of
# growing with the history (1M candles x 60 would be half a GB), and each row's arithmetic is the same.
CHUNK_ROWS = 8192


@dataclass(frozen=True)
class BasicFeatures:
    """Last N log-returns of close (newest first), range (h-l)/c and body (c-o)/c of the last candle,
    and the z-score of the last volume over `volume_window` candles (0 where the volume is constant).
    """

    n_returns: int = bounded(16, ge=1)
    volume_window: int = bounded(60, ge=2)
    name: str = "basic"

    @property
    def window(self) -> int:
        """Candles needed before the first complete row."""
        return max(self.n_returns + 1, self.volume_window)

    @property
    def names(self) -> list[str]:
        return [f"ret_{k}" for k in range(self.n_returns)] + ["range", "body", "volume_z"]

    @property
    def n_features(self) -> int:
        return self.n_returns + 3

    def fingerprint(self) -> str:
        """Saved with a model: a model only runs on the features it was trained on."""
        spec = json.dumps({**asdict(self), "version": FEATURES_VERSION}, sort_keys=True)
        return hashlib.sha256(spec.encode()).hexdigest()[:FINGERPRINT_CHARS]

    def batch(self, candles: CandleArray) -> np.ndarray:
        """(T, F) float64; rows before the first full window are NaN."""
        rows = len(candles)
        out = np.full((rows, self.n_features), np.nan)
        if rows < self.window:
            return out
        log_close = np.log(candles.close)
        returns = np.diff(log_close)  # returns[i] belongs to candle i + 1
        lagged = sliding_window_view(returns, self.n_returns)[:, ::-1]  # row j: candle j + n_returns
        first = self.window - 1
        out[first:, : self.n_returns] = lagged[first - self.n_returns :]
        close = candles.close[first:]
        out[first:, self.n_returns] = (candles.high[first:] - candles.low[first:]) / close
        out[first:, self.n_returns + 1] = (close - candles.open[first:]) / close
        volumes = sliding_window_view(candles.volume, self.volume_window)[first - self.volume_window + 1 :]
        for start in range(0, len(volumes), CHUNK_ROWS):  # bounded temporaries: rows x window floats each
            block = volumes[start : start + CHUNK_ROWS]
            mean = block.mean(axis=1)
            std = block.std(axis=1)
            z = np.divide(block[:, -1] - mean, std, out=np.zeros_like(mean), where=std > 0)
            out[first + start : first + start + len(block), self.n_returns + 2] = z
        return out
