"""The configured source as one thing: warm-up candles of the run's timeframe, then confirmed 1m candles.

`source=bybit`: warm-up from REST at the run's timeframe, then the WebSocket stream of 1m candles
starting right after the warm-up's last minute (gaps backfilled from REST). `source=replay`: a
recorded file, no warm-up (the consumer's window fills from the replay itself).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING

from forecaster.candles import MINUTE_MS, Candle, timeframe_ms
from forecaster.config import Config

if TYPE_CHECKING:
    from forecaster.sources.bybit_rest import BybitRest

log = logging.getLogger(__name__)
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class MinuteFeed:
    """`resume_after`: start of the last candle (of the run's timeframe) a previous session recorded.
    The warm-up then ends at it and the stream continues right after it, so the candles that
    closed while nothing ran are backfilled from REST instead of leaving a gap in the records.
    """

    def __init__(self, config: Config, warmup: int, resume_after: int | None = None) -> None:
        self.config = config
        self.warmup = warmup
        self.resume_after = resume_after
        self.warm: list[Candle] = []
        self.counters: object | None = None  # the stream's counters, for metrics
        self._stack = contextlib.AsyncExitStack()
        self._stream: AsyncIterator[Candle] | None = None

    async def __aenter__(self) -> MinuteFeed:
        config = self.config
        if config.source.name == "replay":
            from forecaster.sources.replay import ReplayStream, load_recorded

            self._stream = ReplayStream(load_recorded(config.source.path), config.source.speed)
            return self
        from forecaster.sources.bybit_rest import BybitRest
        from forecaster.sources.bybit_ws import BybitKlineStream

        timeframe = config.timeframe.name
        try:
            rest = await self._stack.enter_async_context(BybitRest(config.source, config.paths.data_cache))
            self.warm = await self._warm_up(rest, timeframe)
            log.info(
                "warmed up with %d %s candles from %s", len(self.warm), timeframe, config.source.rest_url
            )
            after = self.warm[-1].start_ms + timeframe_ms(timeframe) - MINUTE_MS if self.warm else None
            stream = await self._stack.enter_async_context(
                BybitKlineStream(config.source, rest, after_ms=after)
            )
        except BaseException:
            await self._stack.aclose()
            raise
        self.counters = stream.counters
        self._stream = stream
        return self

    async def _warm_up(self, rest: BybitRest, timeframe: str) -> list[Candle]:
        if self.resume_after is None:
            return (await rest.warmup(self.warmup, timeframe)).to_candles() if self.warmup else []
        step = timeframe_ms(timeframe)
        first = self.resume_after - (self.warmup - 1) * step
        log.info("resuming after the recorded candle %d", self.resume_after)
        return (await rest.klines(first, self.resume_after + step, timeframe)).to_candles()

    async def __aexit__(self, *exc: object) -> None:
        await self._stack.aclose()

    def __aiter__(self) -> AsyncIterator[Candle]:
        if self._stream is None:
            raise RuntimeError("use `async with MinuteFeed(...)` before iterating")
        return aiter(self._stream)


async def next_or_stop(candles: AsyncIterator[Candle], stop: asyncio.Event) -> Candle | None:
    """The next candle, or None when the stream ends or `stop` is set first."""
    following = asyncio.ensure_future(anext(candles))
    stopping = asyncio.ensure_future(stop.wait())
    await asyncio.wait({following, stopping}, return_when=asyncio.FIRST_COMPLETED)
    stopping.cancel()
    if not following.done():
        following.cancel()
        with contextlib.suppress(asyncio.CancelledError, StopAsyncIteration):
            await following
        return None
    try:
        return following.result()
    except StopAsyncIteration:
        return None


@contextlib.contextmanager
def stop_on_signals() -> Iterator[asyncio.Event]:
    """SIGINT / SIGTERM set the event instead of interrupting: the current candle is finished first."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in STOP_SIGNALS:
        loop.add_signal_handler(sig, stop.set)
    try:
        yield stop
    finally:
        for sig in STOP_SIGNALS:
            loop.remove_signal_handler(sig)
