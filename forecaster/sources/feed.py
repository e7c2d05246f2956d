"""The configured source as one thing: warm-up candles per consumer, then confirmed 1m candles.

How the warm-ups and the stream are obtained is the source's business (CandleSource.connect);
this module only enters it, and stops waiting for it when a signal arrives.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from typing import TYPE_CHECKING, TypeVar

from forecaster.candles import Candle
from forecaster.interrupts import STOP_SIGNALS
from forecaster.sources.base import CandleSource, WarmUp

if TYPE_CHECKING:
    from forecaster.config import PathsConfig

log = logging.getLogger(__name__)
T = TypeVar("T")


class MinuteFeed:
    """One stream of 1m candles for every consumer, after each consumer's own warm-up.

    `.warmed` holds the warm-ups in the order of `warmups`; `.counters` the stream's counters (None
    for a source without any).
    """

    def __init__(self, source: CandleSource, paths: PathsConfig, warmups: Sequence[WarmUp]) -> None:
        self.source = source
        self.paths = paths
        self.warmups = list(warmups)
        self.warmed: list[list[Candle]] = [[] for _ in self.warmups]
        self.counters: object | None = None
        self._stack = contextlib.AsyncExitStack()
        self._stream: AsyncIterator[Candle] | None = None

    async def __aenter__(self) -> MinuteFeed:
        try:
            connection = await self.source.connect(self._stack, self.warmups, self.paths)
        except BaseException:
            await self._stack.aclose()
            raise
        self.warmed, self._stream, self.counters = connection.warmed, connection.stream, connection.counters
        return self

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


async def next_or_stop(items: AsyncIterator[T], stop: asyncio.Event) -> T | None:
    """The next candle (or event), or None when the stream ends or `stop` is set first.

    Once stopped, candles already queued are not taken: a restart in the run dir backfills them.
    """
    if stop.is_set():
        return None
    try:
        return await until_stopped(anext(items), stop)
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
def stop_on_signals(notify: Callable[[int], None] | None = None) -> Iterator[asyncio.Event]:
    """SIGINT / SIGTERM set the event instead of interrupting: the current candle is finished first.

    `notify` hears of every signal (forecaster.live.shutdown.ShutdownGuard: a deadline for the rest).
    """
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()

    def handle(signum: int) -> None:
        stop.set()
        if notify is not None:
            notify(signum)

    for sig in STOP_SIGNALS:
        loop.add_signal_handler(sig, handle, sig)
    try:
        yield stop
    finally:
        for sig in STOP_SIGNALS:
            loop.remove_signal_handler(sig)
