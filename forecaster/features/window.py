"""The live side of a feature set: the newest feature row as each confirmed candle arrives.

A feature set with an incremental form (composed sets: running window sums, see
forecaster/features/running.py) steps it; any other set keeps its last `window` candles and runs the
same `batch` as training over them. Either way a live row equals the batch row of the same candle
(tested to 1e-9, and by the leak audit).
"""

from __future__ import annotations

from collections import deque

import numpy as np

from forecaster.candles import Candle, CandleArray
from forecaster.features.base import FeatureSet, IncrementalFeatures


class FeatureWindow:
    """The live side: candles in, and the newest feature row once `window` candles have arrived."""

    def __init__(self, features: FeatureSet) -> None:
        self.features = features
        self._live = features.live() if isinstance(features, IncrementalFeatures) else None
        self._candles: deque[Candle] = deque(maxlen=features.window)
        self._count = 0

    @property
    def ready(self) -> bool:
        return self._count >= self.features.window

    def push(self, candle: Candle) -> np.ndarray | None:
        """Add the next candle; the feature row ending at it, or None while the window fills."""
        self._count += 1
        if self._live is not None:
            row = self._live.push(candle)
            return row if self.ready else None
        self._candles.append(candle)
        if not self.ready:
            return None
        window = CandleArray.from_candles(list(self._candles), candle.timeframe)
        return self.features.batch(window)[-1]
