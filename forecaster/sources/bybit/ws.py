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

import asyncio
import contextlib
import itertools
import logging
import random
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass

import aiohttp

from forecaster.candles import Candle, timeframe_ms
from forecaster.errors import UserError
from forecaster.reachability import unreachable
from forecaster.sources.bybit.messages import Kind, Parsed, parse_message
from forecaster.sources.bybit.protocol import topic_for
from forecaster.sources.bybit.rest import BybitRest, BybitUnavailable, BybitUnreachable
from forecaster.sources.bybit.retry import Backoff, status_failure
from forecaster.sources.bybit.source import BybitSource, serving

log = logging.getLogger(__name__)

_FAR_FUTURE = 2**62  # "everything after the last candle": a reconnect asks REST up to now


class SubscriptionRejected(UserError):
    """Bybit refused the topic: retrying cannot help."""


class ConnectionLost(Exception):
    """The connection closed or went silent; the stream reconnects."""


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


class KlineConnection:
    """One WebSocket: subscribe, JSON ping on a timer, a silence watchdog; yields what arrives.

    Pings are sent from the receive loop rather than a task of their own, so nothing is left
    running when the consumer stops. `asyncio.timeout` bounds each receive: `ws.receive(timeout=)`
    never fires while aiohttp's own heartbeat is on (STACK.md 5), and Python 3.11's `wait_for`
    can swallow a cancellation that races with a message (the stream then never stops).
    """

    _ids = itertools.count(1)

    def __init__(
        self, ws: aiohttp.ClientWebSocketResponse, source: BybitSource, topic: str, counters: StreamCounters
    ) -> None:
        self.ws = ws
        self.source = source
        self.topic = topic
        self.counters = counters

    async def events(self, timeframe: str) -> AsyncIterator[Parsed]:
        """ACK once, then CANDLES (confirmed or not); pongs and junk are handled here."""
        loop = asyncio.get_running_loop()
        await self.ws.send_json({"req_id": f"sub-{next(self._ids)}", "op": "subscribe", "args": [self.topic]})
        acked = False
        ack_deadline = loop.time() + self.source.request_timeout_s
        last_heard = next_ping = loop.time()
        while True:
            now = loop.time()
            if now >= next_ping:
                await self.ws.send_json({"req_id": f"ping-{next(self._ids)}", "op": "ping"})
                next_ping = now + self.source.ping_interval_s
            silent_until = last_heard + self.source.stale_timeout_s
            if not acked and now >= ack_deadline:
                raise ConnectionLost(
                    f"no answer to the subscription within {self.source.request_timeout_s} s"
                )
            if now >= silent_until:
                self.counters.stale += 1
                raise ConnectionLost(
                    f"nothing received for {self.source.stale_timeout_s} s (no data, no pong)"
                )
            wake = min(next_ping, silent_until, ack_deadline if not acked else next_ping)
            try:
                async with asyncio.timeout(wake - now):
                    msg = await self.ws.receive()
            except TimeoutError:
                continue
            last_heard = loop.time()
            if msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSING, aiohttp.WSMsgType.CLOSED):
                raise ConnectionLost(f"closed by the server (code {self.ws.close_code})")
            if msg.type == aiohttp.WSMsgType.ERROR:
                raise ConnectionLost(f"connection error: {msg.data!r}")
            if msg.type != aiohttp.WSMsgType.TEXT:
                self._malformed(f"unexpected {msg.type.name} frame")
                continue
            parsed = parse_message(msg.data, self.topic, timeframe)
            for error in parsed.errors:
                self._malformed(error)
            if parsed.kind == Kind.REJECTED:
                raise SubscriptionRejected(
                    f"Bybit rejected the subscription to {self.topic} on {self.source.ws_url}: "
                    f"{parsed.detail!r}; check source.symbol and the timeframe"
                )
            if parsed.kind == Kind.ACK:
                acked = True
            if parsed.kind in (Kind.ACK, Kind.CANDLES):
                yield parsed

    def _malformed(self, what: str) -> None:
        self.counters.malformed += 1
        log.warning("Bybit WS %s: skipping %s", self.topic, what)


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


class BybitKlineStream:
    """Async iterator of confirmed candles for source.symbol at `timeframe` (native Bybit interval).

    `after_ms`: start of the last candle the consumer already has (e.g. the end of its warmup);
    the stream then begins right after it, backfilled. None: from the first confirm received.
    A background task reads the socket into a bounded queue, so a slow consumer never delays
    pings; if the queue is full the connection eventually goes stale and REST catches up later.
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
        self.source = source
        self.rest = rest
        self.timeframe = timeframe
        self.topic = topic_for(timeframe, source.symbol)
        self.counters = StreamCounters()
        self._sequence = Sequencer(timeframe_ms(timeframe), after_ms)
        self._backoff = Backoff.from_source(source, rng)
        self._queue: asyncio.Queue[Candle] = asyncio.Queue(maxsize=source.queue_size)
        self._task: asyncio.Task[None] | None = None
        self._asked_until = 0  # REST already asked for every start below this after an implicit close

    async def __aenter__(self) -> BybitKlineStream:
        self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=f"bybit-ws {self.topic}")

    async def aclose(self) -> None:
        """Stop the reader and close its connection; safe to call twice."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    def __aiter__(self) -> BybitKlineStream:
        return self

    async def __anext__(self) -> Candle:
        self.start()
        if not self._queue.empty():
            return self._queue.get_nowait()
        task = self._task
        assert task is not None
        getter = asyncio.ensure_future(self._queue.get())
        try:
            await asyncio.wait({getter, task}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            if not getter.done():
                getter.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await getter
        if getter.done() and not getter.cancelled():
            return getter.result()
        self._task = None
        task.result()  # re-raises why the reader stopped (e.g. SubscriptionRejected)
        raise StopAsyncIteration

    # the reader ------------------------------------------------------------------------------

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        connector = aiohttp.TCPConnector(ssl=ssl.create_default_context())
        timeout = aiohttp.ClientTimeout(total=self.source.request_timeout_s)
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
            while True:
                connected_at = loop.time()
                reason = "the connection closed"
                try:
                    await self._connection(session)
                except (ConnectionLost, aiohttp.ClientError, OSError, TimeoutError, BybitUnavailable) as exc:
                    if not self.counters.connects and (why := self._never_connected(exc)) is not None:
                        raise BybitUnreachable(why) from exc
                    reason = f"{type(exc).__name__}: {exc}"
                if loop.time() - connected_at >= self.source.healthy_reset_s:
                    self._backoff.reset()
                delay = self._backoff.next_delay()
                self.counters.reconnects += 1
                log.warning("Bybit WS %s: %s; reconnecting in %.2f s", self.topic, reason, delay)
                await asyncio.sleep(delay)

    def _never_connected(self, error: BaseException) -> str | None:
        """Why a stream that has never connected stops instead of retrying (a wrong ws_url, no network);
        None for a host that answered with a status worth waiting out. Once connected, it always retries."""
        url = self.source.ws_url
        if isinstance(error, aiohttp.WSServerHandshakeError):
            if status_failure(error.status):
                return None
            return f"{url} answered HTTP {error.status}, not a WebSocket upgrade (check source.ws_url)"
        return unreachable(url, error, "source.ws_url", serving(url), self.source.request_timeout_s)

    async def _connection(self, session: aiohttp.ClientSession) -> None:
        # an old-style attrs class, whose keyword arguments pyright cannot see
        ws_timeout = aiohttp.ClientWSTimeout(ws_close=self.source.request_timeout_s)  # pyright: ignore[reportCallIssue]
        async with session.ws_connect(
            self.source.ws_url, max_msg_size=self.source.max_message_bytes, timeout=ws_timeout
        ) as ws:
            self.counters.connects += 1
            log.info("Bybit WS %s: connected to %s", self.topic, self.source.ws_url)
            connection = KlineConnection(ws, self.source, self.topic, self.counters)
            async for event in connection.events(self.timeframe):
                if event.kind == Kind.ACK:
                    await self._backfill(self._sequence.missing_before(_FAR_FUTURE), up_to_now=True)
                for candle in event.candles:
                    await self._on_candle(candle)
        raise ConnectionLost("connection ended")

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
