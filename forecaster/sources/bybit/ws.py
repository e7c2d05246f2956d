"""A stream of confirmed candles from Bybit's public v5 WebSocket that survives real-world faults.

The consumer sees each closed candle once, in strictly ascending start order, with no gap that
REST can fill: connections drop and stall, confirms go missing, arrive twice or out of order
(PROTOCOL.md 2.5, 4), so every reconnect and every detected hole is filled from REST history
and everything is deduplicated by start time. Liveness is judged on any message, pongs included,
because quiet markets can leave kline pushes silent for up to 60 s.

    async with BybitRest(source, cache) as rest, BybitKlineStream(source, rest, after_ms=last) as stream:
        async for candle in stream: ...
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass

import aiohttp

from forecaster.candles import Candle, timeframe_ms
from forecaster.sources.bybit.connection import (
    BybitConnection,
    ReconnectingStream,
    SubscriptionRejected,
)
from forecaster.sources.bybit.messages import Kind, candles_from_push
from forecaster.sources.bybit.protocol import topic_for
from forecaster.sources.bybit.rest import BybitRest
from forecaster.sources.bybit.source import BybitSource

log = logging.getLogger(__name__)

_FAR_FUTURE = 2**62  # "everything after the last candle": a reconnect asks REST up to now
KLINE_SETTINGS = "source.symbol and the timeframe"  # what to check when Bybit refuses the topic
__all__ = ["BybitKlineStream", "StreamCounters", "SubscriptionRejected"]


@dataclass
class StreamCounters:
    """For logs and the live session's metrics."""

    connects: int = 0
    reconnects: int = 0
    stale: int = 0  # connections given up for silence (no data, no pong)
    gaps: int = 0  # holes in the stream (after reconnects included) that REST was asked to fill
    backfilled: int = 0  # candles emitted from REST rather than the WebSocket
    unfilled: int = 0  # missing candles REST did not have either (exchange outage)
    duplicates: int = 0  # confirmed candles dropped as already emitted
    malformed: int = 0  # unparsable or unexpected messages and push items, skipped
    emitted: int = 0


class Sequencer:
    """Confirmed candles in any order, possibly repeated -> strictly ascending, each start once.

    It says which starts are missing; the stream fills them from REST.
    """

    def __init__(self, step_ms: int, after_ms: int | None) -> None:
        self.step = step_ms
        self.last = after_ms  # start of the last candle emitted (or the consumer already has)

    def is_new(self, start_ms: int) -> bool:
        return self.last is None or start_ms > self.last

    def missing_before(self, start_ms: int) -> tuple[int, int] | None:
        """[from, to) of starts that should have been emitted before a candle starting at start_ms."""
        if self.last is None or start_ms <= self.last + self.step:
            return None
        return self.last + self.step, start_ms

    def advance(self, start_ms: int) -> None:
        self.last = start_ms


class BybitKlineStream(ReconnectingStream[Candle]):
    """Async iterator of confirmed candles for source.symbol at `timeframe` (native Bybit interval).

    `after_ms`: start of the last candle the consumer already has (e.g. the end of its warmup);
    the stream then begins right after it, backfilled. None: from the first confirm received.
    If the queue is full the connection eventually goes stale and REST catches up later.
    """

    def __init__(
        self,
        source: BybitSource,
        rest: BybitRest,
        timeframe: str = "1m",
        *,
        after_ms: int | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.topic = topic_for(timeframe, source.symbol)
        super().__init__(source, StreamCounters(), self.topic, rng)
        self.counters: StreamCounters
        self.rest = rest
        self.timeframe = timeframe
        self._sequence = Sequencer(timeframe_ms(timeframe), after_ms)
        self._asked_until = 0  # REST already asked for every start below this after an implicit close

    async def __aenter__(self) -> BybitKlineStream:
        self.start()
        return self

    async def _serve(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        connection = BybitConnection(ws, self.source, [self.topic], self.counters, KLINE_SETTINGS)
        async for event in connection.events():
            if event.kind == Kind.ACK:
                await self._backfill(self._sequence.missing_before(_FAR_FUTURE), up_to_now=True)
                continue
            assert event.message is not None
            parsed = candles_from_push(event.message, self.timeframe, event.detail)
            for error in parsed.errors:
                connection.malformed(error)
            for candle in parsed.candles:
                await self._on_candle(candle)

    async def _on_candle(self, candle: Candle) -> None:
        missing = self._sequence.missing_before(candle.start_ms)
        if not candle.confirmed:
            # A newer candle is open, so everything before it has closed: fetch what never came
            # (once per hole; the confirm may still arrive and is then dropped as a duplicate).
            if missing and missing[1] > self._asked_until:
                await self._backfill(missing)
            return
        if not self._sequence.is_new(candle.start_ms):
            self.counters.duplicates += 1
            return
        await self._backfill(missing)
        await self._emit(candle)

    async def _backfill(self, missing: tuple[int, int] | None, up_to_now: bool = False) -> None:
        """Emit the closed candles REST has for [from, to); to is "now" after a (re)connect."""
        if missing is None:
            return
        lo, hi = missing
        history = await self.rest.klines(lo, None if up_to_now else hi, self.timeframe, self.source.symbol)
        emitted = 0
        for i in range(len(history)):
            candle = history.candle(i)
            if self._sequence.is_new(candle.start_ms):
                emitted += 1
                await self._emit(candle)
        absent = 0 if up_to_now else (hi - lo) // self._sequence.step - len(history)
        if not up_to_now:
            self._asked_until = max(self._asked_until, hi)
        if emitted or absent > 0:
            self.counters.gaps += 1
            self.counters.backfilled += emitted
            log.info("Bybit WS %s: backfilled %d candle(s) from REST", self.topic, emitted)
        if absent > 0:
            self.counters.unfilled += absent
            log.warning(
                "Bybit WS %s: %d candle(s) in [%d, %d) missed by the stream are not on REST (yet)",
                *(self.topic, absent, lo, hi),
            )

    async def _emit(self, candle: Candle) -> None:
        await self._queue.put(candle)
        self._sequence.advance(candle.start_ms)
        self.counters.emitted += 1
