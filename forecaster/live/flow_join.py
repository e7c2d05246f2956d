"""Each minute of the kline stream with its order-flow bar, for predictors whose features read flow.

The bar of a minute is cut on the exchange's clock `source.flow_grace_ms` after its end
(forecaster.flow.minutes), about when the kline's confirmation arrives; a confirmed candle waits
for its bar at most `live.flow_wait_ms` of wall time. A candle whose bar does not come by then (the
flow stream down or behind), and every warm-up candle (REST has no trades), gets an incomplete bar:
never None, never passed off as complete. The flow block then gives no row until its window holds
only complete bars again, so no prediction is made on a guess (forecaster/features/flow.py).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from forecaster.candles import MINUTE_MS, Candle
from forecaster.flow.bars import FlowBar, missing_bar
from forecaster.flow.types import Trade
from forecaster.sources.base import FlowSource

if TYPE_CHECKING:
    from forecaster.sources.bybit.flow_feed import FlowFeed

KEEP_MINUTES = 24 * 60  # a bar or candle waiting this long for its other half is dropped (live and record)
MS_PER_S = 1000


@dataclass
class JoinCounters:
    joined: int = 0  # candles given the bar cut from the flow stream
    waited_out: int = 0  # candles whose bar did not come within live.flow_wait_ms: incomplete
    no_flow: int = 0  # candles the flow stream had passed without a bar (before it began): incomplete


class FlowJoin:
    """The source's flow feed, entered with this; candles out with their bar (`attach`).

    While the flow stream is down no candle waits: after one wait in vain the next candles take an
    incomplete bar at once, until bars come again (other predictors of the session are not held up).
    """

    def __init__(self, source: FlowSource, wait_ms: int) -> None:
        self.feed: FlowFeed = source.flow_feed(self.bar, keep_trades=False)
        self.wait_s = wait_ms / MS_PER_S
        self.counters = JoinCounters()
        self._bars: dict[int, FlowBar] = {}
        self._first: int | None = None  # the first minute the flow stream cut
        self._stalled = False  # the last wait was in vain and no bar came since
        self._arrived = asyncio.Event()

    async def __aenter__(self) -> FlowJoin:
        await self.feed.__aenter__()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.feed.__aexit__(*exc)

    def bar(self, bar: FlowBar, _trades: list[Trade]) -> None:
        """The flow feed's callback: a minute's bar is cut."""
        self._bars[bar.start_ms] = bar
        self._first = bar.start_ms if self._first is None else self._first
        for start in [s for s in self._bars if s < bar.start_ms - KEEP_MINUTES * MINUTE_MS]:
            del self._bars[start]
        self._stalled = False
        self._arrived.set()

    @staticmethod
    def warm(candles: Sequence[Candle]) -> list[Candle]:
        """Warm-up candles (from REST: no trades) with incomplete bars."""
        return [c if c.flow is not None else replace(c, flow=missing_bar(c.start_ms)) for c in candles]

    async def attach(self, minute: Candle) -> Candle:
        """`minute` with its bar; waits up to live.flow_wait_ms for a bar still to be cut. Raises what
        stopped the flow stream, if it stopped (Bybit refused the topic, say)."""
        self.feed.check()
        bar = await self._wait(minute.start_ms)
        if bar is None:
            bar = missing_bar(minute.start_ms)
        else:
            self.counters.joined += 1
        return replace(minute, flow=bar)

    async def _wait(self, start: int) -> FlowBar | None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + (0 if self._stalled else self.wait_s)
        while (bar := self._bars.pop(start, None)) is None:
            if self._first is not None and start < self._first:
                self.counters.no_flow += 1
                return None
            if (left := deadline - loop.time()) <= 0:
                self.counters.waited_out += 1
                self._stalled = True
                return None
            self._arrived.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._arrived.wait(), left)
        for older in [s for s in self._bars if s < start]:
            del self._bars[older]
        return bar
