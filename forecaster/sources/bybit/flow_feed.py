"""Bybit's order flow as minute bars, cut in the background while the candles stream on.

mode=record stores each bar beside its candle; mode=live attaches it to its candle before the
features see it. Both need the same thing: the flow stream's events (forecaster.sources.bybit.
flow_stream) fed in order into FlowMinutes (forecaster.flow.minutes), each closed bar handed on.
A failure of the flow stream (Bybit refusing the topic, say) is raised to the consumer at its next
`check()`, never left to a task nobody awaits.

    async with FlowFeed(source, on_bar) as flow:
        ...; flow.check()
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

from forecaster.flow.bars import FlowBar
from forecaster.flow.minutes import FlowMinutes
from forecaster.flow.types import Trade
from forecaster.sources.bybit import flow_stream as events
from forecaster.sources.bybit.source import BybitSource


class FlowFeed:
    """`on_bar` gets each minute's bar once the minute is closed, in minute order, with its trades
    (with `keep_trades`; else none)."""

    def __init__(
        self, source: BybitSource, on_bar: Callable[[FlowBar, list[Trade]], None], keep_trades: bool = False
    ) -> None:
        self.stream = events.BybitFlowStream(source)
        self.minutes = FlowMinutes(source.flow_grace_ms, source.stale_book_ms, keep_trades)
        self.on_bar = on_bar
        self._task: asyncio.Task[None] | None = None

    @property
    def counters(self) -> events.FlowCounters:
        return self.stream.counters

    async def __aenter__(self) -> FlowFeed:
        await self.stream.__aenter__()
        self._task = asyncio.create_task(self._cut())
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.stream.__aexit__(*exc)

    def check(self) -> None:
        """Raise what stopped the flow stream, if it stopped."""
        if self._task is not None and self._task.done() and not self._task.cancelled():
            self._task.result()

    async def _cut(self) -> None:
        async for event in self.stream:
            for bar in _apply(self.minutes, event):
                self.on_bar(bar, self.minutes.trades_of(bar.start_ms))


def _apply(minutes: FlowMinutes, event: events.FlowEvent) -> list[FlowBar]:
    """One flow event into the minutes: the bars it closed."""
    if isinstance(event, events.Trades):
        return minutes.trades(event.trades)
    if isinstance(event, events.BookUpdate):
        return minutes.book(event.view)
    if isinstance(event, events.BookResync):
        minutes.book_lost()
    elif isinstance(event, events.Disconnected):
        minutes.down()
    elif isinstance(event, events.Connected):
        minutes.up()
    return []
