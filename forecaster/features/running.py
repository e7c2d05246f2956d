"""The latest values of a series with their running sum and sum of squares: O(1) per candle.

The live forms of the feature blocks keep their windows in these. The running sums are summed
afresh (math.fsum) once per `size` pushes, so their rounding never drifts with the length of a
session: a live value stays within rounding of the batch value of the same candle.
"""

from __future__ import annotations

import math
from collections import deque


class Window:
    """The latest `size` floats (plain Python: numpy's per-call cost dwarfs a 60-value window)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.values: deque[float] = deque(maxlen=size)
        self._sum = 0.0
        self._squares = 0.0
        self._since_exact = 0

    def push(self, value: float) -> None:
        if len(self.values) == self.size:
            old = self.values[0]
            self._sum -= old
            self._squares -= old * old
        self.values.append(value)
        self._sum += value
        self._squares += value * value
        self._since_exact += 1
        if self._since_exact >= self.size:
            self._sum = math.fsum(self.values)
            self._squares = math.fsum(v * v for v in self.values)
            self._since_exact = 0

    @property
    def full(self) -> bool:
        return len(self.values) == self.size

    @property
    def mean(self) -> float:
        return self._sum / self.size

    @property
    def mean_square(self) -> float:
        return self._squares / self.size
