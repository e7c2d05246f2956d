"""Order flow from Bybit's public v5 WebSocket: trades and the order book of one symbol, as events.

One connection carries `publicTrade.{symbol}` and `orderbook.{depth}.{symbol}`. Trades are deduped
by id across reconnects (they cannot be backfilled: Bybit's REST keeps only the last 60 spot
trades); the book is rebuilt from each snapshot and its deltas (forecaster.flow.book). A gap in
the book's update ids, a crossed book or a broken delta is counted, reported as a BookResync
event and answered by resubscribing to the book topic, which starts again with a snapshot; the
book is never patched up. Connected / Disconnected events let the consumer mark the time the
stream was down as incomplete.

    async with BybitFlowStream(source) as stream:
        async for event in stream: ...  # Trades | BookUpdate | BookResync | Connected | Disconnected
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import aiohttp

from forecaster.flow.book import Applied, BookMessageError, OrderBook
from forecaster.flow.trades import TradeDedupe, trades_from_push
from forecaster.flow.types import BookView, Trade
from forecaster.sources.bybit.connection import BybitConnection, ReconnectingStream
from forecaster.sources.bybit.messages import Kind
from forecaster.sources.bybit.protocol import book_topic, trade_topic
from forecaster.sources.bybit.source import BybitSource

log = logging.getLogger(__name__)
FLOW_SETTINGS = "source.symbol and source.book_depth"  # what to check when Bybit refuses a topic


@dataclass
class FlowCounters:
    """For logs and the session's metrics."""

    connects: int = 0
    reconnects: int = 0
    stale: int = 0  # connections given up for silence (no data, no pong)
    malformed: int = 0  # unparsable or unexpected messages, trades and book messages, skipped
    messages: int = 0  # pushes of the trade and book topics received
    trades: int = 0  # trades emitted
    duplicates: int = 0  # trades dropped as already emitted
    book_updates: int = 0  # snapshots and deltas applied and emitted
    snapshots: int = 0
    gaps: int = 0  # book deltas whose update id did not follow the last one
    crossed: int = 0  # books crossed (best bid >= best ask) after a message
    resyncs: int = 0  # resubscribes of the book topic (after a gap, a crossed book or a broken delta)
    ignored: int = 0  # book deltas dropped while waiting for a snapshot


@dataclass(frozen=True)
class Trades:
    """New trades of one push, in Bybit's order (by fill time), none seen before."""

    trades: tuple[Trade, ...]


@dataclass(frozen=True)
class BookUpdate:
    """The book after a snapshot (the book starts over) or a delta."""

    view: BookView
    snapshot: bool


@dataclass(frozen=True)
class BookResync:
    """The book went wrong (`reason`: gap, crossed, malformed): unknown until the next snapshot."""

    reason: str
    update_id: int  # the last `u` applied before it went wrong
    at_ms: int  # local clock


@dataclass(frozen=True)
class Connected:
    """Every topic is subscribed: trades flow again; the book follows with a snapshot."""

    at_ms: int  # local clock


@dataclass(frozen=True)
class Disconnected:
    """The connection was lost: trades until the next Connected are missing, the book unknown."""

    reason: str
    at_ms: int  # local clock


FlowEvent = Trades | BookUpdate | BookResync | Connected | Disconnected


class BybitFlowStream(ReconnectingStream[FlowEvent]):
    """Async iterator of FlowEvents for source.symbol; `depth` defaults to source.book_depth.

    `clock` (seconds, like time.time) stamps the link and resync events.
    """

    def __init__(
        self,
        source: BybitSource,
        depth: int | None = None,
        *,
        rng: random.Random | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.depth = source.book_depth if depth is None else depth
        self.trade_topic = trade_topic(source.symbol)
        self.book_topic = book_topic(self.depth, source.symbol)
        super().__init__(source, FlowCounters(), f"{self.trade_topic},{self.book_topic}", rng)
        self.counters: FlowCounters
        self.clock = clock
        self.dedupe = TradeDedupe(source.trade_dedupe_window)

    async def __aenter__(self) -> BybitFlowStream:
        self.start()
        return self

    def _now_ms(self) -> int:
        return int(self.clock() * 1000)

    async def _disconnected(self, reason: str) -> None:
        await self._queue.put(Disconnected(reason, self._now_ms()))

    async def _serve(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        topics = [self.trade_topic, self.book_topic]
        connection = BybitConnection(ws, self.source, topics, self.counters, FLOW_SETTINGS)
        book = OrderBook(self.depth)  # each connection starts with a snapshot
        async for event in connection.events():
            if event.kind == Kind.ACK:
                await self._queue.put(Connected(self._now_ms()))
                continue
            assert event.message is not None
            self.counters.messages += 1
            if event.message["topic"] == self.trade_topic:
                await self._on_trades(connection, event.message)
                continue
            outcome, reason = self._on_book(connection, book, event.message)
            if outcome in (Applied.SNAPSHOT, Applied.DELTA):
                if outcome is Applied.SNAPSHOT:
                    connection.started_over(self.book_topic)
                await self._queue.put(BookUpdate(book.view(), outcome is Applied.SNAPSHOT))
            elif reason is not None:
                self.counters.resyncs += 1
                topic, last = self.book_topic, book.update_id
                log.warning("Bybit WS %s: book out of sync (%s) at u=%d: resubscribing", topic, reason, last)
                await self._queue.put(BookResync(reason, book.update_id, self._now_ms()))
                await connection.resubscribe(self.book_topic)

    async def _on_trades(self, connection: BybitConnection, message: dict[str, Any]) -> None:
        trades, errors = trades_from_push(message)
        for error in errors:
            connection.malformed(error)
        before = self.dedupe.duplicates
        fresh = self.dedupe.new(trades)
        self.counters.duplicates += self.dedupe.duplicates - before
        if fresh:
            self.counters.trades += len(fresh)
            await self._queue.put(Trades(tuple(fresh)))

    def _on_book(
        self, connection: BybitConnection, book: OrderBook, message: dict[str, Any]
    ) -> tuple[Applied | None, str | None]:
        """Apply one push: what it did (None: malformed), and why a resync is needed (None: it is not)."""
        was_synced = book.synced
        try:
            outcome = book.apply(message)
        except BookMessageError as exc:
            connection.malformed(str(exc))
            return None, "malformed" if was_synced and not book.synced else None
        if outcome is Applied.IGNORED:
            self.counters.ignored += 1
        elif outcome is Applied.GAP:
            self.counters.gaps += 1
            return outcome, "gap"
        elif outcome is Applied.CROSSED:
            self.counters.crossed += 1
            return outcome, "crossed"
        else:
            self.counters.book_updates += 1
            self.counters.snapshots += outcome is Applied.SNAPSHOT
        return outcome, None
