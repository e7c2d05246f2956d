"""Block `volume`: how busy the candle was against its recent past (z-score and ratio to the mean), for
volume and, where the source has it, turnover (quote volume).

A history without turnover is refused with the fix, never filled with zeros a model would learn from.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from forecaster.candles import CandleArray
from forecaster.errors import UserError
from forecaster.features.rolling import check_windows, ratio, rolling_mean, rolling_zscore

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
            if np.isnan(candles.turnover).any():
                raise UserError(
                    "features: the candles have no turnover (the file or source lacks that column); use a "
                    "history with turnover or set the volume block's turnover: false"
                )
            columns.append(candles.turnover)
        out = []
        for values in columns:
            out += [rolling_zscore(values, w) for w in self.windows]
            out += [ratio(values, rolling_mean(values, w), USUAL_ACTIVITY) for w in self.windows]
        return np.stack(out, axis=1)
