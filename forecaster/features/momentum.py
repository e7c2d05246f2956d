"""Block `momentum`: the log return over k candles, raw and in units of the volatility expected over k.

The scaled form (return / (realised vol x sqrt(k))) compares a move with the noise of the moment, so
a calm and a wild hour give comparable numbers.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field

import numpy as np

from forecaster.candles import Candle, CandleArray
from forecaster.features.rolling import (
    check_windows,
    lagged_difference,
    log_returns,
    ratio,
    ratio_of,
    rolling_rms,
)
from forecaster.features.running import Window
from forecaster.schema import bounded

# A move over a window with no volatility at all is no move in volatility units.
NO_VOLATILITY = 0.0


@dataclass(frozen=True)
class Momentum:
    """mom_k = log(close[t] / close[t-k]); mom_k_z = mom_k / (rv * sqrt(k)), rv the RMS of the last
    `vol_window` one-candle log returns."""

    windows: list[int] = field(default_factory=lambda: [1, 5, 15, 60])
    vol_window: int = bounded(60, ge=2)

    def __post_init__(self) -> None:
        check_windows("momentum", "windows", self.windows, 1)

    @property
    def window(self) -> int:
        return max(*self.windows, self.vol_window) + 1

    @property
    def names(self) -> list[str]:
        return [f"mom_{k}" for k in self.windows] + [f"mom_{k}_z" for k in self.windows]

    def columns(self, candles: CandleArray) -> list[np.ndarray]:
        log_close = np.log(candles.close)
        vol = np.full(len(candles), np.nan)
        vol[1:] = rolling_rms(log_returns(candles.close)[1:], self.vol_window)
        moves = [lagged_difference(log_close, k) for k in self.windows]
        scaled = [ratio(m, vol * np.sqrt(k), NO_VOLATILITY) for m, k in zip(moves, self.windows, strict=True)]
        return moves + scaled

    def live(self) -> _MomentumLive:
        return _MomentumLive(self)


class _MomentumLive:
    def __init__(self, block: Momentum) -> None:
        self._block = block
        self._log_close: deque[float] = deque(maxlen=max(block.windows) + 1)
        self._squares = Window(block.vol_window)

    def push(self, candle: Candle) -> list[float]:
        log_close = math.log(candle.close)
        if self._log_close:
            self._squares.push((log_close - self._log_close[-1]) ** 2)
        self._log_close.append(log_close)
        windows = self._block.windows
        if not (self._squares.full and len(self._log_close) == self._log_close.maxlen):
            return [math.nan] * (2 * len(windows))
        moves = [log_close - self._log_close[-1 - k] for k in windows]
        vol = math.sqrt(self._squares.mean)
        return moves + [
            ratio_of(m, vol * math.sqrt(k), NO_VOLATILITY) for m, k in zip(moves, windows, strict=True)
        ]
