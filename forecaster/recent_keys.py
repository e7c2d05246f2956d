"""The last N distinct keys seen: dedupe over weeks of records or trades in bounded memory."""

from __future__ import annotations

from collections import deque
from collections.abc import Hashable


class RecentKeys:
    """A set of at most `window` keys that forgets the oldest one added first.

    `add` returns the key it let go of, so a caller whose keys are ordered can keep a floor below
    which everything is taken as seen (JsonlWriter); unordered keys (trade ids) need no more.
    """

    def __init__(self, window: int) -> None:
        self.window = window
        self._order: deque[Hashable] = deque()
        self._keys: set[Hashable] = set()

    def __contains__(self, key: Hashable) -> bool:
        return key in self._keys

    def __len__(self) -> int:
        return len(self._keys)

    def add(self, key: Hashable) -> Hashable | None:
        """Remember `key` (a no-op if known); the key forgotten to make room, or None."""
        if key in self._keys:
            return None
        self._keys.add(key)
        self._order.append(key)
        if len(self._order) <= self.window:
            return None
        gone = self._order.popleft()
        self._keys.discard(gone)
        return gone
