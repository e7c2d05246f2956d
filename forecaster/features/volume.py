"""Block `volume`: how busy the candle was against its recent past (z-score and ratio to the mean), for
volume and, where the source has it, turnover (quote volume).

A history without turnover is refused with the fix, never filled with zeros a model would learn from.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from forecaster.candles import Candle, CandleArray
from forecaster.errors import UserError
from forecaster.features.rolling import (
    check_windows,
    ratio,
    ratio_of,
    rolling_mean,
    rolling_zscore,
    zscore_of,
)
from forecaster.features.running import Window

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

    def columns(self, candles: CandleArray) -> list[np.ndarray]:
        columns = [candles.volume]
        if self.turnover:
            if np.isnan(candles.turnover).any():
                raise _no_turnover()
            columns.append(candles.turnover)
        out = []
        for values in columns:
            out += [rolling_zscore(values, w) for w in self.windows]
            out += [ratio(values, rolling_mean(values, w), USUAL_ACTIVITY) for w in self.windows]
        return out

    def live(self) -> _VolumeLive:
        return _VolumeLive(self)


def _no_turnover() -> UserError:
    return UserError(
        "features: the candles have no turnover (the file or source lacks that column); use a "
        "history with turnover or set the volume block's turnover: false"
    )


class _VolumeLive:
    def __init__(self, block: Volume) -> None:
        self._turnover = block.turnover
        columns = 2 if block.turnover else 1
        self._windows = [[Window(w) for w in block.windows] for _ in range(columns)]

    def push(self, candle: Candle) -> list[float]:
        values = [candle.volume]
        if self._turnover:
            if math.isnan(candle.turnover):
                raise _no_turnover()
            values.append(candle.turnover)
        row: list[float] = []
        for last, windows in zip(values, self._windows, strict=True):
            for window in windows:
                window.push(last)
            row += [zscore_of(last, w.mean, w.mean_square) for w in windows]
            row += [ratio_of(last, w.mean, USUAL_ACTIVITY) for w in windows]
        full = all(w.full for windows in self._windows for w in windows)
        return row if full else [math.nan] * len(row)
