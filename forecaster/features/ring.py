"""A fixed-size ring of the latest values whose last n entries are always one contiguous view.

Each value is written twice, at i and i + capacity, so `last(n)` is a slice, never a copy; a push
is O(1). The live forms of the feature blocks keep their windows in these.
"""

from __future__ import annotations

import numpy as np


class Ring:
    """The latest `capacity` rows of `width` floats (width 0: scalars)."""

    def __init__(self, capacity: int, width: int = 0) -> None:
        shape = (2 * capacity, width) if width else (2 * capacity,)
        self._data = np.full(shape, np.nan)
        self.capacity = capacity
        self.width = width
        self._next = 0
        self.count = 0

    def push(self, value: float | np.ndarray) -> None:
        self._data[self._next] = value
        self._data[self._next + self.capacity] = value
        self._next = (self._next + 1) % self.capacity
        self.count += 1

    def last(self, n: int) -> np.ndarray:
        """The latest n values, oldest first (n <= capacity and n <= count)."""
        end = self._next + self.capacity
        return self._data[end - n : end]

    def full(self, n: int) -> bool:
        """Whether n values have been pushed."""
        return self.count >= n
