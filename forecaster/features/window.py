"""The live side of a feature set: the last `window` confirmed candles, and their newest feature row.

It runs the same `batch` as training over the window, so a live row equals the batch row of the
same candle (tested to 1e-9).
"""

from __future__ import annotations

from collections import deque

import numpy as np

from forecaster.candles import Candle, CandleArray
from forecaster.features.base import FeatureSet


class FeatureWindow:
    """The live side: the last `window` confirmed candles, and their newest feature row."""

    def __init__(self, features: FeatureSet) -> None:
        self.features = features
        self._candles: deque[Candle] = deque(maxlen=features.window)

    @property
    def ready(self) -> bool:
        return len(self._candles) == self.features.window

    def push(self, candle: Candle) -> np.ndarray | None:
        """Add the next candle; the feature row ending at it, or None while the window fills."""
        self._candles.append(candle)
        if not self.ready:
            return None
        window = CandleArray.from_candles(list(self._candles), candle.timeframe)
        return self.features.batch(window)[-1]
