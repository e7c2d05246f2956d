"""The emulator's server: Bybit v5 REST and WebSocket handlers over one Market, one Clock and live Faults."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web

from forecaster.candles import MINUTE_MS, CandleArray
from forecaster.emulator.clock import REAL_TIME, Clock
from forecaster.emulator.faults import BAN_PAGE, ERROR_PAGE, Faults, RateLimiter, broken_frame
from forecaster.emulator.flow import DEFAULT_TRADES_PER_CANDLE
from forecaster.emulator.flow_topics import FlowMarket, push_book, push_trades
from forecaster.emulator.market import Market
from forecaster.errors import UserError
from forecaster.sources.bybit.protocol import (
    ALREADY_SUBSCRIBED,
    BOOK_DEPTHS,
    BOOK_TOPIC,
    DEFAULT_LIMIT,
    INTERVALS,
    KLINE_PATH,
    KLINE_TOPIC,
    MAX_ARGS_PER_SUBSCRIBE,
    PAGE_LIMIT,
    RET_OK,
    RET_PARAM_ERROR,
    RET_RATE_LIMIT,
    SPOT,
    TIME_PATH,
    TRADE_TOPIC,
    WS_PATH,
)

HOST = "127.0.0.1"
DEFAULT_START_OFFSET = 1440  # candles of history before "now" when --now is not given: one day
SHUTDOWN_TIMEOUT_S = 1.0
SOCKETS = web.AppKey("sockets", set)


@dataclass
class EmulatorStats:
    """What clients did; tests use it to check, e.g., that a cached range costs no request."""

    rest_requests: int = 0  # every REST request, answered or refused
    kline_requests: int = 0
    ws_connections: int = 0
    pushes: int = 0
    refused: dict[str, int] = field(default_factory=dict)

    def refuse(self, why: str) -> None:
        self.refused[why] = self.refused.get(why, 0) + 1


def _envelope(code: int, message: str, result: dict[str, Any], now_ms: int) -> dict[str, Any]:
    return {"retCode": code, "retMsg": message, "result": result, "retExtInfo": {}, "time": now_ms}


class KlineParams:
    """The query of GET /v5/market/kline, checked the way Bybit answers: retCode 10001 on any problem."""

    def __init__(self, query: Any, symbol: str, now_ms: int) -> None:
        self.problem: str | None = None
        try:
            self.interval = query.get("interval", "")
            self.limit = int(query.get("limit", DEFAULT_LIMIT))
            self.start = int(query["start"]) if "start" in query else None
            self.end = int(query["end"]) if "end" in query else now_ms
        except ValueError as exc:
            self.problem = f"params error: {exc}"
            return
        if query.get("category") != SPOT:
            self.problem = f"params error: category must be {SPOT} here"
        elif query.get("symbol") != symbol:
            self.problem = "Not supported symbols"
        elif self.interval not in INTERVALS:
            self.problem = f"params error: interval {self.interval!r} not supported"
        elif not 1 <= self.limit <= PAGE_LIMIT:
            self.problem = f"params error: limit must be in [1, {PAGE_LIMIT}]"
        elif self.start is not None and self.start > self.end:
            self.problem = "params error: start is after end"


class WsSession:
    """One client connection (the server's `number`-th, from 1): counts pushes and applies the
    per-connection faults."""

    def __init__(
        self,
        ws: web.WebSocketResponse,
        request: web.Request,
        faults: Faults,
        stats: EmulatorStats,
        number: int,
    ) -> None:
        self.ws = ws
        self.number = number
        self.request = request
        self.faults = faults
        self.stats = stats
        self.conn_id = str(uuid.uuid4())
        self.pushed = 0
        self.malformed = 0
        self.book_deltas = 0  # across resubscribes: the book faults count them
        self.stalled = False
        self.topics: dict[str, asyncio.Task[None]] = {}

    async def send(self, message: dict[str, Any]) -> None:
        if not self.stalled and not self.ws.closed:
            await self.ws.send_str(json.dumps(message))

    async def push(self, topic: str, item: dict[str, Any], ts: int) -> None:
        if self.stalled or self.ws.closed:
            return
        self.pushed += 1
        self.stats.pushes += 1
        if Faults.hits(self.faults.malformed_every, self.pushed):
            self.malformed += 1
            await self.ws.send_str(broken_frame(self.malformed, topic, item, ts))
        await self.ws.send_str(json.dumps({"topic": topic, "data": [item], "ts": ts, "type": "snapshot"}))
        drop_after, stall_after = self.faults.cut_after(self.number)
        if stall_after and self.pushed >= stall_after:
            self.stalled = True
        if drop_after and self.pushed >= drop_after and self.request.transport:
            self.request.transport.abort()  # no close frame: what a network failure looks like

    def cancel_topics(self) -> None:
        for task in self.topics.values():
            task.cancel()


class Emulator:
    """The server: `async with Emulator(candles) as emu:`, then point clients at emu.rest_url / emu.ws_url."""

    def __init__(
        self,
        candles: CandleArray,
        *,
        symbol: str = "BTCUSDT",
        speed: float = REAL_TIME,  # 1m candles per real second, as source.speed
        now_ms: int | None = None,
        faults: Faults | None = None,
        updates_per_candle: int = 3,
        seed: int = 0,  # of the trades and book (flow.trades_for)
        trades_per_candle: int = DEFAULT_TRADES_PER_CANDLE,
        port: int = 0,
    ) -> None:
        if len(candles) == 0:
            raise ValueError("the emulator needs candles to serve")
        self.market = Market(candles, symbol)
        self.flow = FlowMarket(self.market, seed, trades_per_candle)
        first = int(candles.start_ms[0])
        offset = min(DEFAULT_START_OFFSET, len(candles) - 1)
        self.clock = Clock(first + offset * MINUTE_MS if now_ms is None else now_ms, speed)
        self.faults = faults or Faults()
        self.stats = EmulatorStats()
        self.updates_per_candle = updates_per_candle
        self._port = port
        self._limiter = RateLimiter()
        self._runner: web.AppRunner | None = None
        self.base_url = ""

    @property
    def rest_url(self) -> str:
        return self.base_url

    @property
    def ws_url(self) -> str:
        return self.base_url.replace("http://", "ws://", 1) + WS_PATH

    async def start(self) -> None:
        app = web.Application()
        app[SOCKETS] = set()
        app.on_shutdown.append(_close_sockets)
        app.router.add_get(KLINE_PATH, self._rest(self._kline))
        app.router.add_get(TIME_PATH, self._rest(self._time))
        app.router.add_get(WS_PATH, self._websocket)
        self._runner = web.AppRunner(app, shutdown_timeout=SHUTDOWN_TIMEOUT_S, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, HOST, self._port)
        try:
            await site.start()
        except OSError as exc:
            await self.close()
            raise UserError(
                f"cannot listen on {HOST}:{self._port} ({os.strerror(exc.errno) if exc.errno else exc}); "
                "choose another port, or 0 for any free one"
            ) from exc
        host, port = self._runner.addresses[0][:2]
        self.base_url = f"http://{host}:{port}"

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> Emulator:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # REST ------------------------------------------------------------------------------------

    def _rest(
        self, handler: Callable[[web.Request], Awaitable[web.Response]]
    ) -> Callable[[web.Request], Awaitable[web.Response]]:
        """The faults every REST endpoint shares, in the order Bybit's front door applies them."""

        async def wrapped(request: web.Request) -> web.Response:
            faults = self.faults
            self.stats.rest_requests += 1
            if faults.rest_delay_s:
                await asyncio.sleep(faults.rest_delay_s)
            if Faults.hits(faults.http_error_every, self.stats.rest_requests):
                self.stats.refuse("http_503")
                return web.Response(status=503, text=ERROR_PAGE, content_type="text/html")
            if faults.rate_limit:
                count = self._limiter.count(faults.rate_window_s)
                if count > faults.rate_limit * faults.ban_factor:
                    self.stats.refuse("http_403")
                    return web.Response(status=403, text=BAN_PAGE, content_type="text/html")
                if count > faults.rate_limit:
                    self.stats.refuse("ret_10006")
                    return web.json_response(
                        _envelope(RET_RATE_LIMIT, "Too many visits!", {}, self.clock.now_ms())
                    )
            return await handler(request)

        return wrapped

    async def _kline(self, request: web.Request) -> web.Response:
        self.stats.kline_requests += 1
        now = self.clock.now_ms()
        params = KlineParams(request.query, self.market.symbol, now)
        if params.problem:
            return web.json_response(_envelope(RET_PARAM_ERROR, params.problem, {}, now))
        rows = self.market.rows(params.interval, params.start, params.end, params.limit, now)
        result = {"category": SPOT, "symbol": self.market.symbol, "list": rows}
        return web.json_response(_envelope(RET_OK, "OK", result, now))

    async def _time(self, request: web.Request) -> web.Response:
        now = self.clock.now_ms()
        result = {"timeSecond": str(now // 1000), "timeNano": str(now * 1_000_000)}
        return web.json_response(_envelope(RET_OK, "OK", result, now))

    # WebSocket -------------------------------------------------------------------------------

    async def _websocket(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        self.stats.ws_connections += 1
        session = WsSession(ws, request, self.faults, self.stats, self.stats.ws_connections)
        request.app[SOCKETS].add(ws)
        try:
            async for msg in ws:
                if msg.type == aiohttp.WSMsgType.TEXT:
                    await self._command(session, msg.data)
        finally:
            session.cancel_topics()
            await asyncio.gather(*session.topics.values(), return_exceptions=True)
            request.app[SOCKETS].discard(ws)
        return ws

    async def _command(self, session: WsSession, text: str) -> None:
        try:
            command = json.loads(text)
            op = command["op"]
        except (ValueError, TypeError, KeyError):
            await session.send({"success": False, "ret_msg": "error:invalid op", "conn_id": session.conn_id})
            return
        reply: dict[str, Any] = {"success": True, "ret_msg": op, "conn_id": session.conn_id}
        if "req_id" in command:
            reply["req_id"] = command["req_id"]
        reply["op"] = op
        if op == "ping":
            reply["ret_msg"] = "pong"
        elif op == "subscribe":
            problem = self._subscribe(session, command.get("args"))
            if problem:
                reply.update(success=False, ret_msg=problem)
        elif op == "unsubscribe":
            for topic in command.get("args") or []:
                task = session.topics.pop(topic, None) if isinstance(topic, str) else None
                if task is not None:
                    task.cancel()
        else:
            reply.update(success=False, ret_msg="error:invalid op")
        await session.send(reply)

    def _subscribe(self, session: WsSession, args: Any) -> str | None:
        """Start a push task per topic; one bad topic fails the whole request, as on Bybit."""
        if not isinstance(args, list) or not args:
            return "error:args must be a non-empty list"
        if len(args) > MAX_ARGS_PER_SUBSCRIBE:
            return f"error:args size >{MAX_ARGS_PER_SUBSCRIBE}"
        pushers = [self._pusher(topic) for topic in args]
        for topic, pusher in zip(args, pushers, strict=True):
            if pusher is None:
                return f"error:handler not found,topic:{topic}"
            if topic in session.topics:
                return f"error:{ALREADY_SUBSCRIBED},topic:{topic}"
        for topic, pusher in zip(args, pushers, strict=True):
            assert pusher is not None
            session.topics[topic] = asyncio.create_task(self._push_topic(pusher(session, topic)))
        return None

    def _pusher(self, topic: Any) -> Callable[[WsSession, str], Awaitable[None]] | None:
        """What pushes a topic: kline.{interval}, publicTrade or orderbook.{depth}, of our symbol."""
        parts = topic.split(".") if isinstance(topic, str) else []
        if not parts or parts[-1] != self.market.symbol:
            return None
        if len(parts) == 3 and parts[0] == KLINE_TOPIC and parts[1] in INTERVALS:
            return self._push_candles
        if len(parts) == 2 and parts[0] == TRADE_TOPIC:
            return lambda session, topic: push_trades(session, self.flow, self.clock, self.faults, topic)
        if len(parts) == 3 and parts[0] == BOOK_TOPIC and parts[1] in {str(d) for d in BOOK_DEPTHS}:
            return lambda session, topic: push_book(session, self.flow, self.clock, self.faults, topic)
        return None

    @staticmethod
    async def _push_topic(pushing: Awaitable[None]) -> None:
        with contextlib.suppress(ConnectionResetError):  # the client left, or drop_after cut it
            await pushing

    async def _push_candles(self, session: WsSession, topic: str) -> None:
        """Several updates of the open candle, then its one confirm; the faults bend this schedule."""
        interval = topic.split(".")[1]
        step = int(interval) * MINUTE_MS
        start = self.clock.now_ms() // step * step
        held: dict[str, Any] | None = None  # a confirm delayed by reorder_every
        while not session.ws.closed:
            index = start // step
            skipped = Faults.hits(self.faults.skip_every, index)
            for k in range(1, self.updates_per_candle + 1):
                await self.clock.sleep_until(start + step * k // (self.updates_per_candle + 1))
                now = self.clock.now_ms()
                item = self.market.row(interval, start, now)
                if now >= start + step:
                    break
                if item is not None and not skipped:
                    await session.push(topic, item, now)
            await self.clock.sleep_until(start + step)
            now = self.clock.now_ms()
            item = self.market.row(interval, start, now)
            if item is not None and not skipped:
                if Faults.hits(self.faults.reorder_every, index):
                    held = item
                else:
                    for _ in range(2 if Faults.hits(self.faults.duplicate_every, index) else 1):
                        await session.push(topic, item, now)
                    if held is not None:
                        await session.push(topic, held, now)
                        held = None
            start = max(start + step, now // step * step)


async def _close_sockets(app: web.Application) -> None:
    for ws in set(app[SOCKETS]):
        await ws.close(code=aiohttp.WSCloseCode.GOING_AWAY, message=b"shutdown")
