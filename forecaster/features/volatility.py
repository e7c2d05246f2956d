"""Block `volatility`: realised volatility over several windows, and how the short ones compare with
the long ones (a ratio above 1: the market is waking up)."""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field

import numpy as np

from forecaster.candles import Candle, CandleArray
from forecaster.features.rolling import check_windows, log_returns, ratio, ratio_of, rolling_rms
from forecaster.features.running import Window

# Two windows without any move are equally calm.
EQUALLY_CALM = 1.0


@dataclass(frozen=True)
class Volatility:
    """vol_w = RMS of the last w one-candle log returns; vol_a_b = vol_a / vol_b for consecutive windows."""

    windows: list[int] = field(default_factory=lambda: [5, 15, 60])

    def __post_init__(self) -> None:
        check_windows("volatility", "windows", self.windows, 2)

    @property
    def window(self) -> int:
        return max(self.windows) + 1

    @property
    def names(self) -> list[str]:
        pairs = itertools.pairwise(self.windows)
        return [f"vol_{w}" for w in self.windows] + [f"vol_{a}_{b}" for a, b in pairs]

    def columns(self, candles: CandleArray) -> list[np.ndarray]:
        returns = log_returns(candles.close)
        vols = []
        for w in self.windows:
            vol = np.full(len(candles), np.nan)
            vol[1:] = rolling_rms(returns[1:], w)
            vols.append(vol)
        ratios = [ratio(a, b, EQUALLY_CALM) for a, b in itertools.pairwise(vols)]
        return vols + ratios

    def live(self) -> _VolatilityLive:
        return _VolatilityLive(self)


class _VolatilityLive:
    def __init__(self, block: Volatility) -> None:
        self._windows = [Window(w) for w in block.windows]
        self._log_close = math.nan

    def push(self, candle: Candle) -> list[float]:
        log_close = math.log(candle.close)
        if not math.isnan(self._log_close):
            for window in self._windows:
                window.push((log_close - self._log_close) ** 2)
        self._log_close = log_close
        if not all(window.full for window in self._windows):
            return [math.nan] * (2 * len(self._windows) - 1)
        vols = [math.sqrt(window.mean) for window in self._windows]
        return vols + [ratio_of(a, b, EQUALLY_CALM) for a, b in itertools.pairwise(vols)]
