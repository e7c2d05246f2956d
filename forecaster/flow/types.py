"""What flows between the order-flow parts: a trade, and the order book as seen at one moment.

Light (numpy only), so that parsers, the book, the emulator and the flow bars agree on one shape.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np


class Trade(NamedTuple):
    """One public spot trade (`publicTrade.{symbol}`): `buy` is the taker side (Bybit's `S` == "Buy").

    A named tuple: immutable, and made several times faster than a frozen dataclass (every trade
    of the stream is one)."""

    ts_ms: int  # fill time `T`
    price: float
    size: float
    buy: bool
    trade_id: str  # `i`, the only dedupe key
    seq: int  # cross sequence


@dataclass(frozen=True)
class BookView:
    """The order book at one moment: levels best first, each row (price, size)."""

    bids: np.ndarray  # (n, 2) float64, price descending
    asks: np.ndarray  # (n, 2) float64, price ascending
    update_id: int  # `u` of the last message applied
    ts_ms: int  # `cts` (matching-engine time) of the last message applied

    @property
    def crossed(self) -> bool:
        return len(self.bids) > 0 and len(self.asks) > 0 and self.bids[0, 0] >= self.asks[0, 0]
