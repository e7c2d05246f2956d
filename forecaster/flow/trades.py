"""`publicTrade.{symbol}` pushes -> Trades, and the dedupe of trade ids across reconnects.

Parsing is a tight loop over the decoded JSON (about 1024 trades per push at most): a bad item is
reported and skipped, the rest of the push kept; nothing here raises on what the network sends.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from typing import Any

from forecaster.flow.types import Trade
from forecaster.recent_keys import RecentKeys
from forecaster.sources.bybit.protocol import BUY, SELL

LOGGED_CHARS = 200  # of a bad item or message, in a log line
_TAKER_BUY = {BUY: True, SELL: False}


def parse_trades(text: str) -> tuple[list[Trade], list[str]]:
    """One pushed text -> (trades, one error per malformed part)."""
    try:
        message = json.loads(text)
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
    append = trades.append
    for item in data:
        try:
            price, size = float(item["p"]), float(item["v"])
            if not (0 < price < math.inf and 0 < size < math.inf):
                raise ValueError("price and size must be positive and finite")
            trade_id = item["i"]
            if not isinstance(trade_id, str):
                raise TypeError("trade id `i` is not a string")
            append(Trade(int(item["T"]), price, size, _TAKER_BUY[item["S"]], trade_id, int(item["seq"])))
        except (KeyError, TypeError, ValueError) as exc:  # TypeError: an item that is not an object
            errors.append(f"bad trade ({type(exc).__name__}: {exc}): {str(item)[:LOGGED_CHARS]}")
    return trades, errors


class TradeDedupe:
    """Drops trades whose id was already seen among the last `window` ids, across reconnects."""

    def __init__(self, window: int) -> None:
        self._seen = RecentKeys(window)
        self.duplicates = 0

    def new(self, trades: Iterable[Trade]) -> list[Trade]:
        fresh = []
        seen = self._seen
        for trade in trades:
            if trade.trade_id in seen:
                self.duplicates += 1
            else:
                seen.add(trade.trade_id)
                fresh.append(trade)
        return fresh
