"""An order book of depth D rebuilt from `orderbook.{D}.{symbol}` snapshots and deltas, with its checks.

Rules (PROTOCOL.md 7, Bybit's v5 orderbook docs): a snapshot replaces the book, whatever its `u`
(a service restart starts again at `u` = 1; depth 1 re-pushes the same `u` every 3 s); in a delta,
size 0 deletes a level, an unknown price inserts one and a known price updates it. Bybit documents
`u` as continuous per topic, so a delta whose `u` is not the last `u` + 1 (older, repeated or
skipping) is a gap. A gap, or a book crossed after a message (best bid >= best ask), means the
book can no longer be trusted: it is marked out of sync, never patched, and deltas are ignored
until the next snapshot (the stream resubscribes to get one).

Levels live in dicts keyed by price, the best of each side kept on every change (a rescan only
when the best level is deleted): a delta costs O(levels changed); `view()` sorts once per change.
"""

from __future__ import annotations

import enum
import math
from typing import Any

import numpy as np

from forecaster.flow.types import BookView
from forecaster.json_decode import loads
from forecaster.sources.bybit.protocol import BOOK_DELTA, BOOK_SNAPSHOT

LOGGED_CHARS = 200  # of a bad message, in an error


class Applied(enum.Enum):
    SNAPSHOT = "snapshot"  # the book was replaced
    DELTA = "delta"  # the book was patched
    IGNORED = "ignored"  # a delta while out of sync: waiting for a snapshot
    GAP = "gap"  # update ids not contiguous: resync needed
    CROSSED = "crossed"  # best bid >= best ask after the message: resync needed


class BookMessageError(ValueError):
    """A push that is not a valid book snapshot or delta."""


class OrderBook:
    """The book of one `orderbook.{depth}` topic; `apply` each push's decoded JSON in arrival order."""

    def __init__(self, depth: int) -> None:
        self.depth = depth
        self.bids: dict[float, float] = {}
        self.asks: dict[float, float] = {}
        self._best_bid = -math.inf
        self._best_ask = math.inf
        self.update_id = 0  # `u` of the last message applied
        self.ts_ms = 0  # `cts` of the last message applied (`ts` when it has none)
        self.synced = False  # a snapshot was applied and nothing has gone wrong since
        self._view: BookView | None = None

    def apply(self, message: dict[str, Any]) -> Applied:
        """One decoded push. A malformed snapshot leaves the book as it was; a malformed delta may have
        been applied in part, so it puts the book out of sync like a gap (the caller counts it)."""
        try:
            kind, data = message["type"], message["data"]
            update_id = data["u"]
            if type(update_id) is not int:
                raise BookMessageError(f"update id `u` {update_id!r} is not an integer")
            ts_ms = int(message.get("cts", message.get("ts", 0)))
            if kind == BOOK_SNAPSHOT:
                bids, asks = _levels(data["b"]), _levels(data["a"])
                self.bids = {p: s for p, s in bids if s > 0}
                self.asks = {p: s for p, s in asks if s > 0}
                self._best_bid = max(self.bids, default=-math.inf)
                self._best_ask = min(self.asks, default=math.inf)
                outcome = Applied.SNAPSHOT
            elif kind != BOOK_DELTA:
                raise BookMessageError(f"type {kind!r} is neither {BOOK_SNAPSHOT!r} nor {BOOK_DELTA!r}")
            elif not self.synced:
                return Applied.IGNORED
            elif update_id != self.update_id + 1:
                self.synced = False
                return Applied.GAP
            else:
                bids, asks = data["b"], data["a"]
                self.synced, self._view = False, None  # until the whole delta is in
                self._best_bid = _patch(self.bids, bids, self._best_bid, max, -math.inf)
                self._best_ask = _patch(self.asks, asks, self._best_ask, min, math.inf)
                outcome = Applied.DELTA
        except (KeyError, TypeError, ValueError) as exc:  # BookMessageError is a ValueError
            raise BookMessageError(f"{type(exc).__name__}: {exc}: {str(message)[:LOGGED_CHARS]}") from exc
        self.update_id, self.ts_ms, self._view = update_id, ts_ms, None
        self.synced = self._best_bid < self._best_ask
        return outcome if self.synced else Applied.CROSSED

    def view(self) -> BookView:
        """The book best first, at most `depth` levels a side; one sort per change, then cached."""
        if self._view is None:
            bids = _side(self.bids, self.depth, descending=True)
            asks = _side(self.asks, self.depth, descending=False)
            self._view = BookView(bids, asks, self.update_id, self.ts_ms)
        return self._view


def parse_book(text: str) -> dict[str, Any]:
    """A pushed text -> its decoded JSON object, for `OrderBook.apply`."""
    try:
        message = loads(text)
    except ValueError as exc:
        raise BookMessageError(f"not JSON ({exc}): {text[:LOGGED_CHARS]!r}") from exc
    if not isinstance(message, dict):
        raise BookMessageError(f"not a JSON object: {text[:LOGGED_CHARS]!r}")
    return message


def _patch(side: dict[float, float], rows: list[list[str]], best: float, better: Any, worst: float) -> float:
    """Apply one side's levels; the side's new best price (`better` is max for bids, min for asks)."""
    rescan = False
    for price_text, size_text in rows:
        price, size = float(price_text), float(size_text)
        if not 0 < price < math.inf:
            raise BookMessageError(f"level price {price_text!r} is not positive and finite")
        if size > 0:
            side[price] = size
            best = better(best, price)
        elif size == 0:
            if side.pop(price, None) is not None and price == best:
                rescan = True
        else:
            raise BookMessageError(f"level size {size_text!r} is negative or not a number")
    return better(side, default=worst) if rescan else best


def _levels(rows: list[list[str]]) -> list[tuple[float, float]]:
    """Checked before anything is applied, so a bad level leaves the book untouched."""
    levels = [(float(price), float(size)) for price, size in rows]
    for price, size in levels:
        if not (0 < price < math.inf and 0 <= size < math.inf):
            raise BookMessageError(f"level [{price}, {size}]: price must be positive, size >= 0, finite")
    return levels


def _side(levels: dict[float, float], depth: int, descending: bool) -> np.ndarray:
    """(n, 2) rows (price, size), best first, at most `depth`."""
    prices = np.fromiter(levels.keys(), np.float64, len(levels))
    sizes = np.fromiter(levels.values(), np.float64, len(levels))
    order = np.argsort(-prices if descending else prices, kind="stable")[:depth]
    return np.column_stack((prices[order], sizes[order]))
