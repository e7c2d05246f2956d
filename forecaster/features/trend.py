"""Block `trend`: where the close stands against its moving averages and inside its recent high-low range."""

from __future__ import annotations

import itertools
import math
from collections import deque
from dataclasses import dataclass, field

import numpy as np

from forecaster.candles import Candle, CandleArray
from forecaster.features.rolling import (
    check_windows,
    ratio,
    ratio_of,
    rolling_max,
    rolling_mean,
    rolling_min,
)
from forecaster.features.running import Window

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

    def columns(self, candles: CandleArray) -> list[np.ndarray]:
        close = candles.close
        out = [np.log(close / rolling_mean(close, w)) for w in self.ma_windows]
        for w in self.range_windows:
            low = rolling_min(candles.low, w)
            high = rolling_max(candles.high, w)
            out.append(ratio(close - low, high - low, MIDDLE))
        return out

    def live(self) -> _TrendLive:
        return _TrendLive(self)


class _TrendLive:
    def __init__(self, block: Trend) -> None:
        self._means = [Window(w) for w in block.ma_windows]
        self._range_windows = block.range_windows
        self._high: deque[float] = deque(maxlen=max(block.range_windows))
        self._low: deque[float] = deque(maxlen=max(block.range_windows))

    def push(self, candle: Candle) -> list[float]:
        close = candle.close
        for mean in self._means:
            mean.push(close)
        self._high.append(candle.high)
        self._low.append(candle.low)
        if not (all(mean.full for mean in self._means) and len(self._high) == self._high.maxlen):
            return [math.nan] * (len(self._means) + len(self._range_windows))
        row = [math.log(close / mean.mean) for mean in self._means]
        for w in self._range_windows:
            start = len(self._low) - w
            low, high = (
                min(itertools.islice(self._low, start, None)),
                max(itertools.islice(self._high, start, None)),
            )
            row.append(ratio_of(close - low, high - low, MIDDLE))
        return row
