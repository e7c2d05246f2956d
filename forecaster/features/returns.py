"""Block `returns`: the last N one-candle log returns of close, newest first."""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

import numpy as np

from forecaster.candles import Candle, CandleArray
from forecaster.features.rolling import log_returns
from forecaster.schema import bounded


@dataclass(frozen=True)
class Returns:
    """ret_k = log(close[t-k] / close[t-k-1]) for k < n."""

    n: int = bounded(8, ge=1)

    @property
    def window(self) -> int:
        return self.n + 1

    @property
    def names(self) -> list[str]:
        return [f"ret_{k}" for k in range(self.n)]

    def columns(self, candles: CandleArray) -> list[np.ndarray]:
        returns = log_returns(candles.close)
        out = np.full((self.n, len(candles)), np.nan)
        for k in range(self.n):
            out[k, k:] = returns[: len(returns) - k]
        return list(out)

    def live(self) -> _ReturnsLive:
        return _ReturnsLive(self)


class _ReturnsLive:
    def __init__(self, block: Returns) -> None:
        self._n = block.n
        self._returns: deque[float] = deque(maxlen=block.n)  # newest first
        self._log_close = math.nan

    def push(self, candle: Candle) -> list[float]:
        log_close = math.log(candle.close)
        if not math.isnan(self._log_close):
            self._returns.appendleft(log_close - self._log_close)
        self._log_close = log_close
        return list(self._returns) if len(self._returns) == self._n else [math.nan] * self._n
