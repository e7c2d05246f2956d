"""Block `activity`: the share of candles whose close did not move (a thin, quantised market)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from forecaster.candles import Candle, CandleArray
from forecaster.features.rolling import check_windows, rolling_mean
from forecaster.features.running import Window


@dataclass(frozen=True)
class Activity:
    """zero_share_w = share of the last w candles whose close equals the close before it."""

    windows: list[int] = field(default_factory=lambda: [60])

    def __post_init__(self) -> None:
        check_windows("activity", "windows", self.windows, 1)

    @property
    def window(self) -> int:
        return max(self.windows) + 1

    @property
    def names(self) -> list[str]:
        return [f"zero_share_{w}" for w in self.windows]

    def columns(self, candles: CandleArray) -> list[np.ndarray]:
        zero = np.full(len(candles), np.nan)
        zero[1:] = candles.close[1:] == candles.close[:-1]
        out = np.full((len(self.windows), len(candles)), np.nan)
        for column, w in enumerate(self.windows):
            out[column, 1:] = rolling_mean(zero[1:], w)
        return list(out)

    def live(self) -> _ActivityLive:
        return _ActivityLive(self)


class _ActivityLive:
    def __init__(self, block: Activity) -> None:
        self._windows = [Window(w) for w in block.windows]
        self._close = math.nan

    def push(self, candle: Candle) -> list[float]:
        if not math.isnan(self._close):
            for window in self._windows:
                window.push(float(candle.close == self._close))
        self._close = candle.close
        if not all(window.full for window in self._windows):
            return [math.nan] * len(self._windows)
        return [window.mean for window in self._windows]
