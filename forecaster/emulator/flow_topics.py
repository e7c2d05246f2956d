"""The emulator's order-flow topics, `publicTrade.{symbol}` and `orderbook.{depth}.{symbol}`: the trades
of `flow.trades_for` pushed as the clock passes their fill times, and the book of `flow.book_levels`
as a snapshot on subscribe, then deltas (depth 1: snapshots) after each group of trades."""

from __future__ import annotations

import bisect
import time
from collections import OrderedDict
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from forecaster.candles import MINUTE_MS
from forecaster.emulator.clock import Clock
from forecaster.emulator.faults import Faults
from forecaster.emulator.flow import (
    BOOK_GRID_TICKS,
    PRICE_SCALE,
    SIZE_SCALE,
    check_per_candle,
    grid_anchor,
    grid_sizes,
    price_text,
    size_text,
    touch_levels,
    trades_for,
)
from forecaster.emulator.market import Market
from forecaster.flow.types import Trade

BOOK_PUSH_S = {1: 0.01, 50: 0.02, 200: 0.1}  # Bybit's push interval per depth (protocol.BOOK_DEPTHS), s
MAX_TRADES_PER_MESSAGE = 1024  # Bybit's most per publicTrade push
CACHED_LADDERS = 8  # (side, minute) ladders of book level texts: the minutes being pushed now
CACHED_CANDLES = 8  # candles whose trades are kept: the few that connections are pushing now
LOOKBACK_CANDLES = 60  # how far back the book's subscribe snapshot looks for a last trade
RESTART_UPDATE_ID = 1  # the `u` of a snapshot after a service restart


Levels = dict[str, str]  # price text -> size text, best first


class Sender(Protocol):
    """What the topics need of a connection (server.WsSession)."""

    book_deltas: int  # the book deltas it was sent, across resubscribes (the book faults count them)

    async def send(self, message: dict[str, Any]) -> None: ...


@dataclass
class FlowCounts:
    trade_messages: int = 0
    trades: int = 0
    book_messages: int = 0


class FlowMarket:
    """The trades of each 1m candle of a Market, made on first use and kept for the recent few."""

    def __init__(self, market: Market, seed: int, per_candle: int) -> None:
        self.market = market
        self.seed = seed
        self.per_candle = check_per_candle(per_candle)
        self.counts = FlowCounts()
        self._cache: OrderedDict[int, tuple[list[Trade], list[int]]] = OrderedDict()
        self._ladders: OrderedDict[tuple[int, int], dict[int, tuple[str, str]]] = OrderedDict()

    def trades(self, start_ms: int) -> tuple[list[Trade], list[int]]:
        """(trades, their fill times) of the candle starting at start_ms; none where there is no candle."""
        if start_ms in self._cache:
            self._cache.move_to_end(start_ms)
            return self._cache[start_ms]
        series = self.market.series("1")
        i = int(np.searchsorted(series.start_ms, start_ms))
        found = i < len(series) and int(series.start_ms[i]) == start_ms
        trades = trades_for(series.candle(i), self.seed, self.per_candle) if found else []
        self._cache[start_ms] = (trades, [t.ts_ms for t in trades])
        if len(self._cache) > CACHED_CANDLES:
            self._cache.popitem(last=False)
        return self._cache[start_ms]

    def grid_text(self, side: int, anchor: int, minute: int, n: int) -> Levels:
        """flow.grid_levels as message text, from a per-minute ladder of level texts made on first use."""
        key = (side, minute)
        ladder = self._ladders.setdefault(key, {})
        self._ladders.move_to_end(key)
        if len(self._ladders) > CACHED_LADDERS:
            self._ladders.popitem(last=False)
        step = -BOOK_GRID_TICKS if side == 0 else BOOK_GRID_TICKS
        prices = range(anchor, anchor + n * step, step)
        missing = [p for p in prices if p not in ladder]
        if missing:
            sizes = grid_sizes(side, np.array(missing, dtype=np.int64), minute, self.seed)
            for p, size in zip(missing, sizes.tolist(), strict=True):
                ladder[p] = (price_text(p / PRICE_SCALE), size_text(size / SIZE_SCALE))
        return dict(ladder[p] for p in prices)

    def last_trade(self, now_ms: int) -> Trade | None:
        """The latest trade filled by now_ms, looking back a little."""
        minute = now_ms // MINUTE_MS * MINUTE_MS
        for start in range(minute, minute - LOOKBACK_CANDLES * MINUTE_MS, -MINUTE_MS):
            trades, times = self.trades(start)
            k = bisect.bisect_right(times, now_ms)
            if k:
                return trades[k - 1]
        return None

    async def batches(self, clock: Clock, since_ms: int) -> AsyncIterator[tuple[int, list[Trade], bool]]:
        """(candle start, trades, whether they end the candle's trades) for the trades filled after
        since_ms, a group each time the clock passes a fill time. A clock jump over whole candles
        skips them, as a client that was away."""
        minute = since_ms // MINUTE_MS * MINUTE_MS
        trades, times = self.trades(minute)
        i = bisect.bisect_right(times, since_ms)
        while True:
            if i == len(trades):
                await clock.sleep_until(minute + MINUTE_MS)
                now = clock.now_ms()
                minute = max(minute + MINUTE_MS, now // MINUTE_MS * MINUTE_MS)
                trades, times = self.trades(minute)
                i = bisect.bisect_right(times, now) if now >= minute + MINUTE_MS else 0
                continue
            await clock.sleep_until(times[i])
            j = bisect.bisect_right(times, clock.now_ms(), lo=i)
            yield minute, trades[i:j], j == len(trades)
            i = j


def trade_item(trade: Trade, symbol: str) -> dict[str, Any]:
    return {
        "i": trade.trade_id,
        "T": trade.ts_ms,
        "p": price_text(trade.price),
        "v": size_text(trade.size),
        "S": "Buy" if trade.buy else "Sell",
        "s": symbol,
        "BT": False,
        "RPI": False,
        "seq": trade.seq,
    }


async def push_trades(session: Sender, flow: FlowMarket, clock: Clock, faults: Faults, topic: str) -> None:
    """Every trade once (every trade_duplicate_every-th message twice), at most 1024 per message."""
    symbol = flow.market.symbol
    sent = 0
    async for _, batch, _ in flow.batches(clock, clock.now_ms()):
        for first in range(0, len(batch), MAX_TRADES_PER_MESSAGE):
            chunk = batch[first : first + MAX_TRADES_PER_MESSAGE]
            data = [trade_item(t, symbol) for t in chunk]
            message = {"topic": topic, "ts": clock.now_ms(), "type": "snapshot", "data": data}
            sent += 1
            for _ in range(2 if Faults.hits(faults.trade_duplicate_every, sent) else 1):
                await session.send(message)
                flow.counts.trade_messages += 1
                flow.counts.trades += len(chunk)


class BookFeed:
    """One connection's book topic: what it last sent, and the next message towards the true book."""

    def __init__(self, session: Sender, flow: FlowMarket, faults: Faults, topic: str, depth: int) -> None:
        self.session, self.flow, self.faults, self.topic, self.depth = session, flow, faults, topic, depth
        self.bids: Levels = {}
        self.asks: Levels = {}
        self.update_id = 0
        self.last: Trade | None = None

    def _levels(self) -> tuple[Levels, Levels]:
        if self.last is None:
            return {}, {}
        minute = self.last.ts_ms // MINUTE_MS
        sides = []
        for side, (price, size) in enumerate(touch_levels(self.last, self.flow.seed)):
            levels = {price_text(price / PRICE_SCALE): size_text(size / SIZE_SCALE)}
            levels.update(self.flow.grid_text(side, grid_anchor(side, price), minute, self.depth - 1))
            sides.append(levels)
        return sides[0], sides[1]

    def _message(self, kind: str, bids: list[list[str]], asks: list[list[str]], now: int) -> dict[str, Any]:
        seq, cts = (self.last.seq, self.last.ts_ms) if self.last else (0, now)
        data = {"s": self.flow.market.symbol, "b": bids, "a": asks, "u": self.update_id, "seq": seq}
        self.flow.counts.book_messages += 1
        return {"topic": self.topic, "ts": now, "type": kind, "data": data, "cts": cts}

    def snapshot(self, update_id: int, now: int) -> dict[str, Any]:
        self.bids, self.asks = self._levels()
        self.update_id = update_id
        return self._message("snapshot", _rows(self.bids), _rows(self.asks), now)

    def after(self, last: Trade, now: int) -> dict[str, Any] | None:
        """The message that brings the client's book to the one after `last`, or None if unchanged."""
        self.last = last
        if self.depth == 1:
            before = (self.bids, self.asks)
            return None if self._levels() == before else self.snapshot(self.update_id + 1, now)
        bids, asks = self._levels()
        changed = (_changes(self.bids, bids, reverse=True), _changes(self.asks, asks, reverse=False))
        if not (changed[0] or changed[1]):
            return None
        # counted per connection, not per subscription: with crosses more frequent than gaps, a count
        # started again at each resubscribe (after every cross) would never reach a gap
        self.session.book_deltas += 1
        sent = self.session.book_deltas
        self.update_id += 2 if Faults.hits(self.faults.book_gap_every, sent) else 1
        if Faults.hits(self.faults.book_cross_every, sent):  # a bid at the best ask
            best_ask = next(iter(asks))
            bids[best_ask] = asks[best_ask]
            changed = (_changes(self.bids, bids, reverse=True), changed[1])
        self.bids, self.asks = bids, asks
        return self._message("delta", *changed, now)


def _rows(levels: Levels) -> list[list[str]]:
    return [[p, s] for p, s in levels.items()]


def _changes(before: Levels, after: Levels, *, reverse: bool) -> list[list[str]]:
    """Delta rows from one side to the other: new or resized levels, and size "0" for gone ones."""
    rows = [[p, s] for p, s in after.items() if before.get(p) != s]
    rows += [[p, "0"] for p in before if p not in after]
    rows.sort(key=lambda row: float(row[0]), reverse=reverse)
    return rows


async def push_book(session: Sender, flow: FlowMarket, clock: Clock, faults: Faults, topic: str) -> None:
    """A snapshot, then a delta after each group of trades, at most one per BOOK_PUSH_S except the
    one after a candle's last trade (so the book at every candle close is exact); the book faults
    bend this."""
    feed = BookFeed(session, flow, faults, topic, int(topic.split(".")[1]))
    now = clock.now_ms()
    feed.last = flow.last_trade(now)
    await session.send(feed.snapshot(now, now))  # `u` from the clock: a resubscribe starts higher
    restarted, pushed_at, interval_s = None, time.monotonic(), BOOK_PUSH_S[int(topic.split(".")[1])]
    async for minute, batch, closing in flow.batches(clock, now):
        index, now = minute // MINUTE_MS, clock.now_ms()
        if Faults.hits(faults.book_restart_every, index) and restarted != minute:
            restarted, feed.last = minute, batch[-1]
            await session.send(feed.snapshot(RESTART_UPDATE_ID, now))
            continue
        if Faults.hits(faults.book_stale_every, index):
            continue
        if not closing and time.monotonic() - pushed_at < interval_s:
            feed.last = batch[-1]  # folded into the next push
            continue
        message = feed.after(batch[-1], now)
        if message is not None:
            await session.send(message)
            pushed_at = time.monotonic()
