"""`publicTrade.{symbol}` pushes -> Trades, and the dedupe of trade ids across reconnects.

Parsing is a tight loop over the decoded JSON (about 1024 trades per push at most): a bad item is
reported and skipped, the rest of the push kept; nothing here raises on what the network sends.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from forecaster.flow.types import Trade
from forecaster.json_decode import loads
from forecaster.recent_keys import RecentKeys
from forecaster.sources.bybit.protocol import BUY, SELL

LOGGED_CHARS = 200  # of a bad item or message, in a log line
_TAKER_BUY = {BUY: True, SELL: False}
DEDUPE_BULK_FROM = 8  # trades in a push from which one set operation beats one lookup each (measured)
_make_trade = tuple.__new__  # Trade from a tuple of its fields, without NamedTuple's keyword-handling __new__


def parse_trades(text: str) -> tuple[list[Trade], list[str]]:
    """One pushed text -> (trades, one error per malformed part)."""
    try:
        message = loads(text)
    except ValueError as exc:
        return [], [f"not JSON ({exc}): {text[:LOGGED_CHARS]!r}"]
    if not isinstance(message, dict):
        return [], [f"not a JSON object: {text[:LOGGED_CHARS]!r}"]
    return trades_from_push(message)


def trades_from_push(message: dict[str, Any]) -> tuple[list[Trade], list[str]]:
    """A decoded push -> (trades in the push's order, errors)."""
    data = message.get("data")
    if not isinstance(data, list):
        return [], [f"trade push without a data list: {str(message)[:LOGGED_CHARS]}"]
    trades: list[Trade] = []
    errors: list[str] = []
    append, make, taker_buy, inf = trades.append, _make_trade, _TAKER_BUY, math.inf
    for item in data:
        try:
            price, size = float(item["p"]), float(item["v"])
            if not (0 < price < inf and 0 < size < inf):
                raise ValueError("price and size must be positive and finite")
            trade_id = item["i"]
            if not isinstance(trade_id, str):
                raise TypeError("trade id `i` is not a string")
            row = (int(item["T"]), price, size, taker_buy[item["S"]], trade_id, int(item["seq"]))
            append(make(Trade, row))
        except (KeyError, TypeError, ValueError) as exc:  # TypeError: an item that is not an object
            errors.append(f"bad trade ({type(exc).__name__}: {exc}): {str(item)[:LOGGED_CHARS]}")
    return trades, errors


class TradeDedupe:
    """Drops trades whose id was already seen among the last `window` ids, across reconnects."""

    def __init__(self, window: int) -> None:
        self._seen = RecentKeys(window)
        self.duplicates = 0

    def new(self, trades: Sequence[Trade]) -> list[Trade]:
        seen = self._seen
        if len(trades) >= DEDUPE_BULK_FROM and seen.add_unseen([trade.trade_id for trade in trades]):
            return list(trades)
        fresh = []
        for trade in trades:
            if trade.trade_id in seen:
                self.duplicates += 1
            else:
                seen.add(trade.trade_id)
                fresh.append(trade)
        return fresh
