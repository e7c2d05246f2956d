"""The flow stream's events in, one FlowBar per closed minute out (forecaster/flow/bars.py).

Minutes follow the exchange's clock: each trade counts in the minute of its fill time, and the book
at a minute's close is the book just before the first book message stamped (matching-engine time)
at or past the minute's end. A minute is given out once the exchange's clock, as the stream shows
it, is `grace_ms` past its end, so a trade pushed a little after a later book message still counts
where it belongs; one later than that is counted as late, never moved to another minute. A minute
during which the stream was down, whose close found the book out of sync, or whose book at the close
is older than its last trade by more than `stale_ms` (a stale book: Bybit's books move with every
trade) is incomplete; minutes the stream skipped entirely come out empty and incomplete, never as
quiet minutes.
"""

from __future__ import annotations

from array import array
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

from forecaster.candles import MINUTE_MS
from forecaster.flow.bars import FlowBar, flow_bar_columns, missing_bar
from forecaster.flow.types import BookView, Trade


@dataclass
class _Minute:
    """A minute's trades as the columns its bar is made of, gathered as they come (flow_bar_columns)."""

    price: array[float] = field(default_factory=lambda: array("d"))
    size: array[float] = field(default_factory=lambda: array("d"))
    buy_size: array[float] = field(default_factory=lambda: array("d"))  # the taker buys' sizes
    last_trade_ms: int = -1  # the fill time of its latest trade (-1: none yet)
    trades: list[Trade] = field(default_factory=list)  # with keep_trades only
    updates: int = 0  # book messages applied during it
    close: BookView | None = None  # the book at its end, once a book message passed it
    closed: bool = False  # `close` is known (None then means: out of sync at the close)
    complete: bool = True

    def bar(self, start_ms: int, book: BookView | None, complete: bool) -> FlowBar:
        """Its bar, once it is over: the columns read in place (it takes no trade after)."""
        columns = np.frombuffer(self.price), np.frombuffer(self.size), np.frombuffer(self.buy_size)
        return flow_bar_columns(start_ms, *columns, book, self.updates, complete)


class FlowMinutes:
    """Each call returns the bars of the minutes it closed, oldest first."""

    def __init__(self, grace_ms: int, stale_ms: int, keep_trades: bool = False) -> None:
        self.grace_ms = grace_ms
        self.stale_ms = stale_ms  # a book last moved this long before the minute's last trade is stale
        self.keep_trades = keep_trades  # the trades of each minute given out stay until `trades_of`
        self.late = 0  # trades of a minute already given out
        self._kept: dict[int, list[Trade]] = {}
        self._minutes: dict[int, _Minute] = {}
        self._next: int | None = None  # the oldest minute not given out yet
        self._clock = 0  # the newest exchange time seen
        self._book: BookView | None = None  # None: unknown (no snapshot yet, or out of sync)
        self._down = False
        self._rejoined = True  # the stream (re)started: the minute it joins in is incomplete

    def trades(self, trades: Iterable[Trade]) -> list[FlowBar]:
        keep = self.keep_trades
        # the minute of the trade before, [start, end): a push's trades nearly always share one
        start = end = 0
        minute: _Minute | None = None
        newest = self._clock
        for trade in trades:
            ts_ms = trade.ts_ms
            if not start <= ts_ms < end:
                minute = self._minute(ts_ms)
                start = ts_ms - ts_ms % MINUTE_MS
                end = start + MINUTE_MS
            if ts_ms > newest:
                newest = ts_ms
            if minute is None:
                self.late += 1
                continue
            minute.price.append(trade.price)
            minute.size.append(trade.size)
            if trade.buy:
                minute.buy_size.append(trade.size)
            if ts_ms > minute.last_trade_ms:
                minute.last_trade_ms = ts_ms
            if keep:
                minute.trades.append(trade)
        self._clock = newest
        return self._ripe()

    def book(self, view: BookView) -> list[FlowBar]:
        """A snapshot or delta applied: the book as it is now."""
        start = view.ts_ms - view.ts_ms % MINUTE_MS
        for begin, minute in self._minutes.items():
            if begin < start and not minute.closed:
                minute.close, minute.closed = self._book, True
        if (minute := self._minute(view.ts_ms)) is not None:
            minute.updates += 1
        self._book = view
        return self._ripe()

    def trades_of(self, start_ms: int) -> list[Trade]:
        """The trades of a minute given out (with `keep_trades`; else none), handed over once."""
        return self._kept.pop(start_ms, [])

    def book_lost(self) -> None:
        """The book went out of sync (a resync follows): unknown until its next snapshot."""
        self._book = None

    def down(self) -> None:
        """The connection was lost: trades are missing from now until the stream is back."""
        self._down, self._book = True, None
        for minute in self._minutes.values():
            minute.complete = False

    def up(self) -> None:
        """Connected again; the minute it rejoins in stays incomplete (its start was missed)."""
        if self._down:  # a resubscribe's acknowledgement comes without an outage
            self._down, self._rejoined = False, True

    def _minute(self, ts_ms: int) -> _Minute | None:
        """The open minute of `ts_ms` (None if already given out); moves the exchange clock on."""
        self._clock = max(self._clock, ts_ms)
        start = ts_ms - ts_ms % MINUTE_MS
        if self._next is None:
            self._next = start
        if start < self._next:
            return None
        if start not in self._minutes:
            self._minutes[start] = _Minute(complete=not self._down and not self._rejoined)
            self._rejoined = False
        return self._minutes[start]

    def _ripe(self) -> list[FlowBar]:
        """Every minute whose end is `grace_ms` behind the exchange clock, with the skipped ones."""
        out: list[FlowBar] = []
        while self._next is not None and self._next + MINUTE_MS + self.grace_ms <= self._clock:
            minute = self._minutes.pop(self._next, None)
            if minute is None:  # nothing at all arrived in it
                out.append(missing_bar(self._next))
            else:
                book = minute.close if minute.closed else self._book
                # a live book moves with its trades: one left behind by the last trade has stalled
                last_trade = minute.last_trade_ms
                stale = book is not None and last_trade >= 0 and last_trade - book.ts_ms > self.stale_ms
                complete = minute.complete and book is not None and not self._down and not stale
                out.append(minute.bar(self._next, book, complete))
                if self.keep_trades:
                    self._kept[self._next] = minute.trades
            self._next += MINUTE_MS
        return out
