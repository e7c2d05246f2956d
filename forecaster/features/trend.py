"""Block `trend`: where the close stands against its moving averages and inside its recent high-low range."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from forecaster.candles import Candle, CandleArray
from forecaster.features.ring import Ring
from forecaster.features.rolling import check_windows, ratio, rolling_max, rolling_mean, rolling_min

# A close in a range of width zero sits in its middle.
MIDDLE = 0.5


@dataclass(frozen=True)
class Trend:
    """ma_dist_w = log(close / mean(close over w)); range_pos_w = (close - min low) / (max high - min low)
    over the last w candles, 0 at the low and 1 at the high."""

    ma_windows: list[int] = field(default_factory=lambda: [5, 20, 60])
    range_windows: list[int] = field(default_factory=lambda: [20, 60])

    def __post_init__(self) -> None:
        check_windows("trend", "ma_windows", self.ma_windows, 2)
        check_windows("trend", "range_windows", self.range_windows, 2)

    @property
    def window(self) -> int:
        return max(*self.ma_windows, *self.range_windows)

    @property
    def names(self) -> list[str]:
        return [f"ma_dist_{w}" for w in self.ma_windows] + [f"range_pos_{w}" for w in self.range_windows]

    def batch(self, candles: CandleArray) -> np.ndarray:
        close = candles.close
        out = [np.log(close / rolling_mean(close, w)) for w in self.ma_windows]
        for w in self.range_windows:
            low = rolling_min(candles.low, w)
            high = rolling_max(candles.high, w)
            out.append(ratio(close - low, high - low, MIDDLE))
        return np.stack(out, axis=1)

    def live(self) -> _TrendLive:
        return _TrendLive(self)


class _TrendLive:
    def __init__(self, block: Trend) -> None:
        self._block = block
        self._close = Ring(max(block.ma_windows))
        self._high = Ring(max(block.range_windows))
        self._low = Ring(max(block.range_windows))

    def push(self, candle: Candle) -> np.ndarray:
        close = candle.close
        self._close.push(close)
        self._high.push(candle.high)
        self._low.push(candle.low)
        if self._close.count < self._block.window:
            return np.full(len(self._block.names), np.nan)
        means = np.array([self._close.last(w).mean() for w in self._block.ma_windows])
        lows = np.array([self._low.last(w).min() for w in self._block.range_windows])
        highs = np.array([self._high.last(w).max() for w in self._block.range_windows])
        return np.concatenate([np.log(close / means), ratio(close - lows, highs - lows, MIDDLE)])
