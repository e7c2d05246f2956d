"""Block `context`: blocks computed on the enclosing higher-timeframe candles (5m, 15m, 60m) for a 1m
model, from the last such candle closed by t only.

The 1m history is aggregated on UTC boundaries (forecaster/candles.py `aggregate`, whose live form is
`Aggregator`); row t carries the inner blocks' row of the last bucket whose final minute is <= t.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from forecaster.candles import MINUTE_MS, Aggregator, Candle, CandleArray, aggregate, timeframe_ms
from forecaster.errors import UserError
from forecaster.features.base import LiveRows
from forecaster.features.composed import ComposedFeatures
from forecaster.schema import choice

BASE_TIMEFRAME = "1m"


@dataclass(frozen=True)
class Context:
    """`<timeframe>_<name>` for every feature of the inner `blocks`, computed on `timeframe` candles."""

    timeframe: str = choice("15m", "5m", "15m", "60m")
    blocks: list[Any] = field(default_factory=list)  # FeatureBlock objects, as in ComposedFeatures

    @property
    def _inner(self) -> ComposedFeatures:
        return ComposedFeatures(self.blocks, name=f"context {self.timeframe}")

    @property
    def _minutes(self) -> int:
        return timeframe_ms(self.timeframe) // MINUTE_MS

    @property
    def window(self) -> int:
        """1m candles that always hold the inner window of closed buckets, wherever t falls in its bucket."""
        return self._inner.window * self._minutes + self._minutes - 1

    @property
    def names(self) -> list[str]:
        return [f"{self.timeframe}_{name}" for name in self._inner.names]

    @property
    def reads_flow(self) -> bool:
        return self._inner.reads_flow

    def columns(self, candles: CandleArray) -> list[np.ndarray]:
        _check_base(candles.timeframe)
        buckets = aggregate(candles, self.timeframe).candles
        inner = self._inner.batch(buckets)
        closed_by = candles.start_ms + MINUTE_MS - timeframe_ms(self.timeframe)  # latest bucket start
        index = np.searchsorted(buckets.start_ms, closed_by, side="right") - 1
        rows = np.where((index >= 0)[:, None], inner[np.maximum(index, 0)], np.nan)
        return list(rows.T)

    def live(self) -> _ContextLive:
        return _ContextLive(self._inner.live(), self.timeframe, len(self.names))


def _check_base(timeframe: str) -> None:
    if timeframe != BASE_TIMEFRAME:
        raise UserError(
            f"features: the context block builds higher timeframes from 1m candles, got {timeframe}; "
            "use it with timeframe=1m or drop it from the features"
        )


class _ContextLive:
    def __init__(self, inner: LiveRows, timeframe: str, width: int) -> None:
        self._inner = inner
        self._aggregator = Aggregator(timeframe)
        self._row = [math.nan] * width

    def push(self, candle: Candle) -> list[float]:
        _check_base(candle.timeframe)
        bucket = self._aggregator.push(candle)
        if bucket is not None:
            self._row = self._inner.push(bucket).tolist()
        return self._row
