"""Block `volume`: how busy the candle was against its recent past (z-score and ratio to the mean), for
volume and, where the source has it, turnover (quote volume).

A history without turnover is refused with the fix, never filled with zeros a model would learn from.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from forecaster.candles import Candle, CandleArray
from forecaster.errors import UserError
from forecaster.features.ring import Ring
from forecaster.features.rolling import check_windows, ratio, rolling_mean, rolling_zscore, zscore

# A candle as busy as a window that was silent throughout is as busy as usual.
USUAL_ACTIVITY = 1.0


@dataclass(frozen=True)
class Volume:
    """volume_z_w, volume_ratio_w = v / mean(v) over w candles; the same for turnover when `turnover`."""

    windows: list[int] = field(default_factory=lambda: [20, 60])
    turnover: bool = True

    def __post_init__(self) -> None:
        check_windows("volume", "windows", self.windows, 2)

    @property
    def window(self) -> int:
        return max(self.windows)

    @property
    def names(self) -> list[str]:
        columns = ["volume", "turnover"] if self.turnover else ["volume"]
        return [f"{column}_{kind}_{w}" for column in columns for kind in ("z", "ratio") for w in self.windows]

    def batch(self, candles: CandleArray) -> np.ndarray:
        columns = [candles.volume]
        if self.turnover:
            columns.append(_with_turnover(candles.turnover))
        out = []
        for values in columns:
            out += [rolling_zscore(values, w) for w in self.windows]
            out += [ratio(values, rolling_mean(values, w), USUAL_ACTIVITY) for w in self.windows]
        return np.stack(out, axis=1)

    def live(self) -> _VolumeLive:
        return _VolumeLive(self)


def _with_turnover(turnover: np.ndarray) -> np.ndarray:
    if np.isnan(turnover).any():
        raise UserError(
            "features: the candles have no turnover (the file or source lacks that column); use a "
            "history with turnover or set the volume block's turnover: false"
        )
    return turnover


class _VolumeLive:
    def __init__(self, block: Volume) -> None:
        self._block = block
        self._values = Ring(block.window, 2 if block.turnover else 1)

    def push(self, candle: Candle) -> np.ndarray:
        values = np.array([candle.volume, candle.turnover][: self._values.width])
        if self._block.turnover:
            _with_turnover(values)
        self._values.push(values)
        if self._values.count < self._block.window:
            return np.full(len(self._block.names), np.nan)
        out = []
        for column, last in enumerate(values):
            windows = [self._values.last(w)[:, column] for w in self._block.windows]
            means = np.array([window.mean() for window in windows])
            squares = np.array([(window * window).mean() for window in windows])
            out += [zscore(last, means, squares), ratio(last, means, USUAL_ACTIVITY)]
        return np.concatenate(out)
