"""Block `shape`: how the candle was drawn (range, body, wicks, body fraction, close location), raw and
relative to its recent typical size.

Research on our data found these among the most useful inputs at 1m (../shared/RESEARCH.md).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from forecaster.candles import Candle, CandleArray
from forecaster.features.rolling import ratio, ratio_of, rolling_mean
from forecaster.features.running import Window
from forecaster.schema import bounded

# A candle with no range has its close neither high nor low in it, and no body.
NO_RANGE = 0.0
# A quantity whose recent size is zero, seen at size zero, is at its usual size.
USUAL_SIZE = 1.0
# `ratio` on arrays or `ratio_of` on numbers: (num, den, fill) -> num / den, fill where den is 0.
Divide = Callable[[Any, Any, float], Any]
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

    def columns(self, candles: CandleArray) -> list[np.ndarray]:
        o, h, lo, c = candles.open, candles.high, candles.low, candles.close
        raw = _raw(o, h, lo, c, np.maximum(o, c), np.minimum(o, c), ratio)
        relative = [ratio(x, rolling_mean(np.abs(x), self.norm_window), USUAL_SIZE) for x in raw]
        return raw + relative

    def live(self) -> _ShapeLive:
        return _ShapeLive(self)


def _raw(o: Any, h: Any, lo: Any, c: Any, top: Any, bottom: Any, divide: Divide) -> list[Any]:
    """The SHAPES of candles (arrays, with `ratio`) or of one candle (numbers, with `ratio_of`);
    top and bottom are the larger and smaller of open and close."""
    spread = h - lo
    return [
        spread / c,
        (c - o) / c,
        (h - top) / c,
        (bottom - lo) / c,
        divide(c - o, spread, NO_RANGE),
        divide((c - lo) - (h - c), spread, NO_RANGE),
    ]


class _ShapeLive:
    def __init__(self, block: Shape) -> None:
        self._sizes = [Window(block.norm_window) for _ in SHAPES]

    def push(self, candle: Candle) -> list[float]:
        o, c = candle.open, candle.close
        raw = _raw(o, candle.high, candle.low, c, max(o, c), min(o, c), ratio_of)
        for size, x in zip(self._sizes, raw, strict=True):
            size.push(abs(x))
        if not self._sizes[0].full:
            return [math.nan] * (2 * len(SHAPES))
        return raw + [ratio_of(x, size.mean, USUAL_SIZE) for x, size in zip(raw, self._sizes, strict=True)]
