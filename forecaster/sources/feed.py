"""The configured source as one thing: warm-up candles per requested timeframe, then confirmed 1m candles.

`source=bybit`: each warm-up comes from REST at its own timeframe, then one WebSocket stream of 1m
candles starts right after the latest minute that every warm-up covers (gaps backfilled from
REST). A consumer whose warm-up reaches further skips the minutes it already has (see
`WarmUp.covered_until`), so nobody misses or double-counts a candle. `source=replay`: a recorded
file, no warm-up (the consumer's window fills from the replay itself).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import AsyncIterator, Awaitable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

from forecaster.candles import MINUTE_MS, Candle, timeframe_ms
from forecaster.config import Config

if TYPE_CHECKING:
    from forecaster.sources.bybit.rest import BybitRest

log = logging.getLogger(__name__)
T = TypeVar("T")
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


@dataclass(frozen=True)
class WarmUp:
    """History one consumer needs before the stream: `candles` of `timeframe`.

    `resume_after`: start of the last candle (of this timeframe) a previous session recorded.
    The warm-up then ends at it and the stream continues right after it, so the candles that
    closed while nothing ran are backfilled from REST instead of leaving a gap in the records.
    """

    timeframe: str
    candles: int
    resume_after: int | None = None


def covered_until(warm: Sequence[Candle]) -> int | None:
    """Start of the last 1m candle inside a warm-up (None: empty); later minutes are new to it."""
    if not warm:
        return None
    return warm[-1].start_ms + timeframe_ms(warm[-1].timeframe) - MINUTE_MS


class MinuteFeed:
    """One stream of 1m candles for every consumer, after each consumer's own warm-up.

    `MinuteFeed(config, n, resume_after)` warms up one consumer at the run's timeframe (`.warm`);
    `MinuteFeed(config, warmups=[...])` warms up several (`.warmed`, in the same order).
    """

    def __init__(
        self,
        config: Config,
        warmup: int = 0,
        resume_after: int | None = None,
        *,
        warmups: Sequence[WarmUp] | None = None,
    ) -> None:
        self.config = config
        self.warmups = list(warmups) if warmups else [WarmUp(config.timeframe.name, warmup, resume_after)]
        self.warmed: list[list[Candle]] = [[] for _ in self.warmups]
        self.counters: object | None = None  # the stream's counters, for metrics
        self._stack = contextlib.AsyncExitStack()
        self._stream: AsyncIterator[Candle] | None = None

    @property
    def warm(self) -> list[Candle]:
        """The first (or only) consumer's warm-up."""
        return self.warmed[0]

    async def __aenter__(self) -> MinuteFeed:
        config = self.config
        if config.source.name == "replay":
            from forecaster.sources.replay import ReplayStream, load_recorded

            self._stream = ReplayStream(load_recorded(config.source.path), config.source.speed)
            return self
        from forecaster.sources.bybit.rest import BybitRest
        from forecaster.sources.bybit.ws import BybitKlineStream

        try:
            rest = await self._stack.enter_async_context(BybitRest(config.source, config.paths.data_cache))
            self.warmed = list(await asyncio.gather(*(self._warm_up(rest, w) for w in self.warmups)))
            for request, warm in zip(self.warmups, self.warmed, strict=True):
                log.info(
                    "warmed up with %d %s candles from %s",
                    len(warm),
                    request.timeframe,
                    config.source.rest_url,
                )
            ends = [end for end in map(covered_until, self.warmed) if end is not None]
            stream = await self._stack.enter_async_context(
                BybitKlineStream(config.source, rest, after_ms=min(ends, default=None))
            )
        except BaseException:
            await self._stack.aclose()
            raise
        self.counters = stream.counters
        self._stream = stream
        return self

    async def _warm_up(self, rest: BybitRest, request: WarmUp) -> list[Candle]:
        timeframe, n = request.timeframe, request.candles
        if request.resume_after is None:
            return (await rest.warmup(n, timeframe)).to_candles() if n else []
        step = timeframe_ms(timeframe)
        first = request.resume_after - (n - 1) * step
        log.info("resuming %s after the recorded candle %d", timeframe, request.resume_after)
        return (await rest.klines(first, request.resume_after + step, timeframe)).to_candles()

    async def __aexit__(self, *exc: object) -> None:
        await self._stack.aclose()

    def __aiter__(self) -> AsyncIterator[Candle]:
        if self._stream is None:
            raise RuntimeError("use `async with MinuteFeed(...)` before iterating")
        return aiter(self._stream)


class Stopped(Exception):
    """A stop signal arrived before the awaited work was done."""


async def until_stopped(work: Awaitable[T], stop: asyncio.Event) -> T:
    """`work`'s result, unless `stop` is set first: then the work is cancelled and Stopped raised."""
    doing = asyncio.ensure_future(work)
    stopping = asyncio.ensure_future(stop.wait())
    await asyncio.wait({doing, stopping}, return_when=asyncio.FIRST_COMPLETED)
    stopping.cancel()
    if not doing.done():
        doing.cancel()
        with contextlib.suppress(asyncio.CancelledError, StopAsyncIteration):
            await doing
        raise Stopped
    return doing.result()


async def next_or_stop(candles: AsyncIterator[Candle], stop: asyncio.Event) -> Candle | None:
    """The next candle, or None when the stream ends or `stop` is set first."""
    try:
        return await until_stopped(anext(candles), stop)
    except (Stopped, StopAsyncIteration):
        return None


@contextlib.asynccontextmanager
async def open_feed(feed: MinuteFeed, stop: asyncio.Event) -> AsyncIterator[MinuteFeed | None]:
    """Enter the feed (REST warm-up, first connection); None when a signal comes first, since the
    warm-up can take minutes of retries while Bybit is unreachable."""
    try:
        await until_stopped(feed.__aenter__(), stop)
    except Stopped:
        yield None
        return
    try:
        yield feed
    finally:
        await feed.__aexit__(None, None, None)


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
