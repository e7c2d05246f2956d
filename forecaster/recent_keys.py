"""The last N distinct keys seen: dedupe over weeks of records or trades in bounded memory."""

from __future__ import annotations

from collections import deque
from collections.abc import Hashable, Sequence


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

    def add_unseen(self, keys: Sequence[Hashable]) -> bool:
        """Remember all of `keys` if none is known and none repeats (then True); else change nothing.

        One set operation for a batch instead of an `add` per key (a push of trades).
        """
        known = self._keys
        if not known.isdisjoint(keys) or len(set(keys)) != len(keys):
            return False
        known.update(keys)
        order = self._order
        order.extend(keys)
        for _ in range(len(order) - self.window):
            known.discard(order.popleft())
        return True
