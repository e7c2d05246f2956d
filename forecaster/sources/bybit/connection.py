"""Bybit's public v5 WebSocket: one connection carrying several topics, and a stream that keeps one open.

`BybitConnection` subscribes (at most MAX_ARGS_PER_SUBSCRIBE topics a request), pings on a timer,
gives up on silence and yields the pushes of its topics; `ReconnectingStream` runs it in a reader
task that reconnects with capped exponential backoff and feeds a bounded queue. The kline stream
(ws.py) and the order-flow stream (flow_stream.py) are both built on them: klines, trades and the
book may share one connection or use their own.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import math
import random
import ssl
from collections.abc import AsyncGenerator, Sequence
from typing import Generic, Protocol, TypeVar

import aiohttp

from forecaster.errors import UserError
from forecaster.reachability import unreachable
from forecaster.sources.bybit.messages import Kind, Parsed, parse_control
from forecaster.sources.bybit.protocol import MAX_ARGS_PER_SUBSCRIBE
from forecaster.sources.bybit.rest import BybitUnavailable, BybitUnreachable
from forecaster.sources.bybit.retry import Backoff, status_failure
from forecaster.sources.bybit.source import BybitSource, serving

log = logging.getLogger(__name__)
Item = TypeVar("Item")


class SubscriptionRejected(UserError):
    """Bybit refused the topic: retrying cannot help."""


class ConnectionLost(Exception):
    """The connection closed or went silent; the stream reconnects."""


class ConnectionCounters(Protocol):
    connects: int
    reconnects: int
    stale: int  # connections given up for silence (no data, no pong)
    malformed: int  # unparsable or unexpected messages and push items, skipped


class BybitConnection:
    """One WebSocket: subscribe, JSON ping on a timer, a silence watchdog; yields what arrives.

    Pings are sent from the receive loop rather than a task of their own, so nothing is left
    running when the consumer stops. `asyncio.timeout` bounds each receive: `ws.receive(timeout=)`
    never fires while aiohttp's own heartbeat is on (STACK.md 5), and Python 3.11's `wait_for`
    can swallow a cancellation that races with a message (the stream then never stops).
    """

    _ids = itertools.count(1)

    def __init__(
        self,
        ws: aiohttp.ClientWebSocketResponse,
        source: BybitSource,
        topics: Sequence[str],
        counters: ConnectionCounters,
        settings: str,
    ) -> None:
        self.ws = ws
        self.source = source
        self.topics = tuple(topics)
        self.counters = counters
        self.settings = settings  # what to check when Bybit refuses a topic, for the message
        self._due: dict[str, float] = {}  # topic resubscribed -> when its fresh start is overdue

    async def events(self) -> AsyncGenerator[Parsed, None]:
        """ACK once every topic is acknowledged, then each PUSH of a subscribed topic (decoded).

        Pongs and junk are handled here; the pushes' own parsers report their errors to `malformed`.
        """
        loop = asyncio.get_running_loop()
        requests = await self._send("subscribe", self.topics)
        acks = 0
        ack_deadline = loop.time() + self.source.request_timeout_s
        last_heard = next_ping = loop.time()
        while True:
            now = loop.time()
            acked = acks >= requests
            if now >= next_ping:
                await self.ws.send_json({"req_id": f"ping-{next(self._ids)}", "op": "ping"})
                next_ping = now + self.source.ping_interval_s
            silent_until = last_heard + self.source.stale_timeout_s
            due = min(self._due.values(), default=math.inf)
            if now >= due:
                raise ConnectionLost(
                    f"{', '.join(self._due)} did not start over within {self.source.request_timeout_s} s "
                    "of resubscribing"
                )
            if not acked and now >= ack_deadline:
                raise ConnectionLost(
                    f"no answer to the subscription within {self.source.request_timeout_s} s"
                )
            if now >= silent_until:
                self.counters.stale += 1
                raise ConnectionLost(
                    f"nothing received for {self.source.stale_timeout_s} s (no data, no pong)"
                )
            wake = min(next_ping, silent_until, due, ack_deadline if not acked else next_ping)
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
                self.malformed(f"unexpected {msg.type.name} frame")
                continue
            parsed = parse_control(msg.data)
            for error in parsed.errors:
                self.malformed(error)
            if parsed.kind == Kind.REJECTED:
                raise SubscriptionRejected(
                    f"Bybit rejected the subscription to {', '.join(self.topics)} on {self.source.ws_url}: "
                    f"{parsed.detail!r}; check {self.settings}"
                )
            if parsed.kind == Kind.ACK:
                acks += 1
                if acks == requests:  # later ones answer a resubscribe
                    yield parsed
            elif parsed.kind == Kind.PUSH:
                assert parsed.message is not None
                if parsed.message["topic"] in self.topics:
                    yield parsed
                else:
                    self.malformed(f"push for a topic not subscribed: {parsed.detail[:200]!r}")

    async def resubscribe(self, topic: str) -> None:
        """Unsubscribe and subscribe again: Bybit then starts the topic over (a book: with a snapshot).

        The caller says when it has by `started_over`; if that takes longer than
        source.request_timeout_s, the connection is given up (the stream reconnects).
        """
        await self._send("unsubscribe", [topic])
        await self._send("subscribe", [topic])
        self._due[topic] = asyncio.get_running_loop().time() + self.source.request_timeout_s

    def started_over(self, topic: str) -> None:
        self._due.pop(topic, None)

    async def _send(self, op: str, topics: Sequence[str]) -> int:
        """`op` for `topics`, MAX_ARGS_PER_SUBSCRIBE a request; how many requests were sent."""
        step = MAX_ARGS_PER_SUBSCRIBE
        chunks = [topics[i : i + step] for i in range(0, len(topics), step)]
        for chunk in chunks:
            await self.ws.send_json({"req_id": f"{op}-{next(self._ids)}", "op": op, "args": list(chunk)})
        return len(chunks)

    def malformed(self, what: str) -> None:
        self.counters.malformed += 1
        log.warning("Bybit WS %s: skipping %s", ",".join(self.topics), what)


class ReconnectingStream(Generic[Item]):
    """Async iterator of the items a subclass's `_serve` puts in a bounded queue, over connections
    that are reopened with capped exponential backoff for as long as the stream runs.

    A background task reads the socket into the queue, so a slow consumer never delays pings; a
    full queue holds the reader back (the connection may then go stale and is reopened).
    """

    def __init__(
        self, source: BybitSource, counters: ConnectionCounters, name: str, rng: random.Random | None
    ) -> None:
        self.source = source
        self.counters = counters
        self.name = name  # for logs and the reader task
        self._backoff = Backoff.from_source(source, rng)
        self._queue: asyncio.Queue[Item] = asyncio.Queue(maxsize=source.queue_size)
        self._task: asyncio.Task[None] | None = None

    async def _serve(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        """Read one open connection until it fails (raises ConnectionLost or a network error)."""
        raise NotImplementedError

    async def _disconnected(self, reason: str) -> None:
        """Called after each lost connection, before the backoff wait."""

    async def __aenter__(self) -> ReconnectingStream[Item]:
        self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=f"bybit-ws {self.name}")

    async def aclose(self) -> None:
        """Stop the reader and close its connection; safe to call twice."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    def __aiter__(self) -> ReconnectingStream[Item]:
        return self

    async def __anext__(self) -> Item:
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
                await self._disconnected(reason)
                if loop.time() - connected_at >= self.source.healthy_reset_s:
                    self._backoff.reset()
                delay = self._backoff.next_delay()
                self.counters.reconnects += 1
                log.warning("Bybit WS %s: %s; reconnecting in %.2f s", self.name, reason, delay)
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
            log.info("Bybit WS %s: connected to %s", self.name, self.source.ws_url)
            await self._serve(ws)
        raise ConnectionLost("connection ended")
