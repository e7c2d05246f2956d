"""Live mode's join of candles and flow bars: a candle gets its bar, waits a bounded time for one still
to be cut, and otherwise (or before the flow began) an incomplete bar, never None; while the flow is
down, candles stop waiting."""

from __future__ import annotations

import asyncio
import time

import numpy as np

from forecaster.candles import MINUTE_MS, Candle
from forecaster.flow.bars import FlowBar, flow_bar
from forecaster.flow.types import BookView
from forecaster.live.flow_join import FlowJoin
from forecaster.sources.bybit.source import BybitSource

WAIT_MS = 200
T0 = 1_733_100_000_000 - 1_733_100_000_000 % MINUTE_MS


def _candle(minute: int) -> Candle:
    start = T0 + minute * MINUTE_MS
    return Candle(start, start + MINUTE_MS - 1, 100.0, 101.0, 99.0, 100.5, 2.0, 201.0, True, "1m")


def _bar(minute: int) -> FlowBar:
    start = T0 + minute * MINUTE_MS
    book = BookView(np.array([[100.0, 1.0]]), np.array([[100.5, 2.0]]), 1, start + MINUTE_MS)
    return flow_bar(start, [], book, 3, True)


def test_candles_get_their_bar_wait_for_it_or_take_an_incomplete_one() -> None:
    async def scenario() -> None:
        join = FlowJoin(BybitSource(), WAIT_MS)
        join.bar(_bar(1), [])
        before = await join.attach(_candle(0))  # the flow began after it
        assert before.flow is not None and not before.flow.complete
        joined = await join.attach(_candle(1))
        assert joined.flow == _bar(1) and joined.close == _candle(1).close

        asyncio.get_running_loop().call_later(WAIT_MS / 4000, join.bar, _bar(2), [])
        waited = await join.attach(_candle(2))  # its bar is cut while it waits
        assert waited.flow == _bar(2)

        started = time.monotonic()
        late = await join.attach(_candle(3))  # no bar comes: incomplete after the wait
        assert late.flow is not None and not late.flow.complete
        assert time.monotonic() - started >= WAIT_MS / 1000 * 0.9
        started = time.monotonic()
        down = await join.attach(_candle(4))  # the flow is down: no second wait
        assert down.flow is not None and not down.flow.complete
        assert time.monotonic() - started < WAIT_MS / 1000 / 2

        join.bar(_bar(5), [])  # the flow is back
        assert (await join.attach(_candle(5))).flow == _bar(5)
        counted = join.counters
        assert (counted.joined, counted.waited_out, counted.no_flow) == (3, 2, 1)

    asyncio.run(scenario())


def test_warm_up_candles_get_incomplete_bars() -> None:
    warm = FlowJoin.warm([_candle(0), _candle(1)])
    assert [c.flow is not None and not c.flow.complete for c in warm] == [True, True]
