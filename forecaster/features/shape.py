"""Block `shape`: how the candle was drawn (range, body, wicks, body fraction, close location), raw and
relative to its recent typical size.

Research on our data found these among the most useful inputs at 1m (../shared/RESEARCH.md).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from forecaster.candles import Candle, CandleArray
from forecaster.features.ring import Ring
from forecaster.features.rolling import ratio, rolling_mean
from forecaster.schema import bounded

# A candle with no range has its close neither high nor low in it, and no body.
NO_RANGE = 0.0
# A quantity whose recent size is zero, seen at size zero, is at its usual size.
USUAL_SIZE = 1.0
SHAPES = ("range", "body", "upper_wick", "lower_wick", "body_frac", "clv")


@dataclass(frozen=True)
class Shape:
    """range=(h-l)/c, body=(c-o)/c, upper_wick=(h-max(o,c))/c, lower_wick=(min(o,c)-l)/c,
    body_frac=(c-o)/(h-l), clv=((c-l)-(h-c))/(h-l); each `<x>_rel` = x / mean(|x|) over `norm_window`."""

    norm_window: int = bounded(60, ge=2)

    @property
    def window(self) -> int:
        return self.norm_window

    @property
    def names(self) -> list[str]:
        return list(SHAPES) + [f"{name}_rel" for name in SHAPES]

    def batch(self, candles: CandleArray) -> np.ndarray:
        raw = _raw(candles.open, candles.high, candles.low, candles.close)
        relative = [ratio(x, rolling_mean(np.abs(x), self.norm_window), USUAL_SIZE) for x in raw]
        out = np.stack(raw + relative, axis=1)
        out[: self.window - 1] = np.nan
        return out

    def live(self) -> _ShapeLive:
        return _ShapeLive(self)


def _raw(o: np.ndarray, h: np.ndarray, lo: np.ndarray, c: np.ndarray) -> list[np.ndarray]:
    """The SHAPES of each candle, in order."""
    spread = h - lo
    return [
        spread / c,
        (c - o) / c,
        (h - np.maximum(o, c)) / c,
        (np.minimum(o, c) - lo) / c,
        ratio(c - o, spread, NO_RANGE),
        ratio((c - lo) - (h - c), spread, NO_RANGE),
    ]


class _ShapeLive:
    def __init__(self, block: Shape) -> None:
        self._window = block.norm_window
        self._sizes = Ring(block.norm_window, len(SHAPES))

    def push(self, candle: Candle) -> np.ndarray:
        prices = np.array([[candle.open], [candle.high], [candle.low], [candle.close]])
        raw = np.concatenate(_raw(*prices))
        self._sizes.push(np.abs(raw))
        if self._sizes.count < self._window:
            return np.full(2 * len(SHAPES), np.nan)
        return np.concatenate([raw, ratio(raw, self._sizes.last(self._window).mean(axis=0), USUAL_SIZE)])
