"""A local Bybit v5 (spot, public market data) server that replays real candles, with fault injection.

Tests and demos run the real REST and WebSocket clients against it on 127.0.0.1 instead of the
internet. It serves REST `GET /v5/market/kline` and `/v5/market/time`, and the WebSocket
`/v5/public/spot` with `kline.<interval>.<symbol>` topics, in the shapes documented in
../shared/bybit/PROTOCOL.md. One simulated clock (running `speed` times real time, settable)
decides for both which candles are closed, so REST and WS always agree. `Faults` is a plain
mutable object: flip its fields while the server runs to break things the way the real service does.

    python -m forecaster.emulator --data ../shared/data/<file>.csv.gz --speed 60 [--drop-after 50 ...]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import math
import signal
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
from aiohttp import web

from forecaster.candles import MINUTE_MS, CandleArray, aggregate, parse_utc_ms, read_csv
from forecaster.data import SAMPLE_CSV
from forecaster.errors import UserError

log = logging.getLogger(__name__)

HOST = "127.0.0.1"
KLINE_PATH = "/v5/market/kline"
TIME_PATH = "/v5/market/time"
WS_PATH = "/v5/public/spot"
CATEGORY = "spot"
MAX_LIMIT = 1000
DEFAULT_LIMIT = 200
REST_ROW_FIELDS = ("open", "high", "low", "close", "volume", "turnover")  # after startTime; high before low
MAX_ARGS_PER_SUBSCRIBE = 10  # spot only
# Bybit's interval codes that are whole minutes; D, W and M are not served.
INTERVALS = ("1", "3", "5", "15", "30", "60", "120", "240", "360", "720")
RET_OK = 0
RET_PARAM_ERROR = 10001
RET_RATE_LIMIT = 10006
DEFAULT_START_OFFSET = 1440  # candles of history before "now" when --now is not given: one day
BAN_PAGE = "<html><body><h1>403 Forbidden</h1>access too frequent</body></html>"
ERROR_PAGE = "<html><body><h1>503 Service Temporarily Unavailable</h1></body></html>"
MALFORMED_FRAME = '{"topic": "kline.1.BTCUSDT", "data": [{"start": '
SHUTDOWN_TIMEOUT_S = 1.0
USER_ERROR_EXIT = 2  # as the main entry point does for a UserError
SOCKETS = web.AppKey("sockets", set)


def _fault(default: float, help_text: str) -> Any:
    return field(default=default, metadata={"help": help_text})


@dataclass
class Faults:
    """What to break; 0 switches a fault off. On the WebSocket "every N" counts candles by start
    time (the same candles on every connection) and "after N" counts the kline pushes of one
    connection; on REST "every N" counts requests. Tests flip these fields while the server runs."""

    drop_after: int = _fault(0, "WS: the server cuts each connection abruptly after N kline pushes")
    stall_after: int = _fault(0, "WS: after N kline pushes the connection stays open, silent, no pong")
    malformed_every: int = _fault(0, "WS: a broken frame before every Nth kline push of a connection")
    duplicate_every: int = _fault(0, "WS: the confirm push of every Nth candle is sent twice")
    reorder_every: int = _fault(0, "WS: every Nth candle's confirm comes after the next candle's confirm")
    skip_every: int = _fault(0, "WS: every Nth candle gets no push at all (REST still has it)")
    rest_delay_s: float = _fault(0.0, "REST: every answer is this late")
    http_error_every: int = _fault(0, "REST: every Nth request is answered HTTP 503 with an HTML page")
    rate_limit: int = _fault(0, "REST: requests allowed per rate_window_s; beyond: retCode 10006")
    rate_window_s: float = _fault(1.0, "seconds per rate_limit window")
    ban_factor: float = _fault(2.0, "REST: beyond rate_limit * ban_factor: HTTP 403 (IP ban page)")

    @staticmethod
    def hits(every: int, index: int) -> bool:
        return every > 0 and index % every == 0


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


class Clock:
    """Simulated exchange time: `speed` times real time from a settable origin."""

    def __init__(self, now_ms: int, speed: float) -> None:
        if not speed > 0:
            raise ValueError(f"speed must be > 0, got {speed}")
        self.speed = speed
        self._changed = asyncio.Event()
        self._anchor(now_ms)

    def _anchor(self, now_ms: int) -> None:
        self._origin_ms = now_ms
        self._origin_real = time.monotonic()

    def now_ms(self) -> int:
        return self._origin_ms + int((time.monotonic() - self._origin_real) * self.speed * 1000)

    def set_now(self, now_ms: int) -> None:
        """Jump (forward, normally). Sleepers wake and see the new time."""
        self._anchor(now_ms)
        self._changed.set()
        self._changed = asyncio.Event()

    async def sleep_until(self, sim_ms: int) -> None:
        while (delay := (sim_ms - self.now_ms()) / (self.speed * 1000)) > 0:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):  # not wait_for: on 3.11 it can swallow a cancel
                    await self._changed.wait()


class Market:
    """The candles of one symbol, served natively at every interval (higher ones aggregated from 1m)."""

    def __init__(self, one_minute: CandleArray, symbol: str) -> None:
        self.symbol = symbol
        self._series: dict[str, CandleArray] = {"1": one_minute}

    def series(self, interval: str) -> CandleArray:
        if interval not in self._series:
            self._series[interval] = aggregate(self._series["1"], f"{interval}m").candles
        return self._series[interval]

    def row(self, interval: str, start_ms: int, now_ms: int) -> dict[str, Any] | None:
        """The candle starting at start_ms as seen at now_ms (partial while open), or None."""
        series = self.series(interval)
        i = int(np.searchsorted(series.start_ms, start_ms))
        if i == len(series) or series.start_ms[i] != start_ms or start_ms > now_ms:
            return None
        step = int(interval) * MINUTE_MS
        fraction = min(1.0, (now_ms - start_ms) / step)
        o, h, lo, c = (float(col[i]) for col in (series.open, series.high, series.low, series.close))
        volume, turnover = float(series.volume[i]), float(series.turnover[i])
        if not math.isfinite(turnover):  # some CSVs have none; Bybit always sends one
            turnover = volume * (h + lo + c) / 3
        if fraction < 1.0:  # a plausible candle in progress: the close walks from open to the final close
            c = o + (c - o) * fraction
            h, lo = max(o, c), min(o, c)
            volume, turnover = volume * fraction, turnover * fraction
        return {
            "start": start_ms,
            "end": start_ms + step - 1,
            "interval": interval,
            "open": repr(o),
            "close": repr(c),
            "high": repr(h),
            "low": repr(lo),
            "volume": repr(volume),
            "turnover": repr(turnover),
            "confirm": fraction >= 1.0,
            "timestamp": min(now_ms, start_ms + step - 1),
        }

    def rows(self, interval: str, start: int | None, end: int, limit: int, now_ms: int) -> list[list[str]]:
        """REST rows with start in [start, end], started by now_ms: newest first, at most limit."""
        series = self.series(interval)
        hi = int(np.searchsorted(series.start_ms, min(end, now_ms), side="right"))
        lo = 0 if start is None else int(np.searchsorted(series.start_ms, start))
        lo = max(lo, hi - limit)
        out = []
        for i in range(hi - 1, lo - 1, -1):
            item = self.row(interval, int(series.start_ms[i]), now_ms)
            assert item is not None
            out.append([str(item["start"]), *(item[k] for k in REST_ROW_FIELDS)])
        return out


class RateLimiter:
    """A fixed window counter, like Bybit's per-window IP limit."""

    def __init__(self) -> None:
        self._window_start = 0.0
        self._count = 0

    def count(self, window_s: float) -> int:
        now = time.monotonic()
        if now - self._window_start >= window_s:
            self._window_start, self._count = now, 0
        self._count += 1
        return self._count


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
        if query.get("category") != CATEGORY:
            self.problem = f"params error: category must be {CATEGORY} here"
        elif query.get("symbol") != symbol:
            self.problem = "Not supported symbols"
        elif self.interval not in INTERVALS:
            self.problem = f"params error: interval {self.interval!r} not supported"
        elif not 1 <= self.limit <= MAX_LIMIT:
            self.problem = f"params error: limit must be in [1, {MAX_LIMIT}]"
        elif self.start is not None and self.start > self.end:
            self.problem = "params error: start is after end"


class WsSession:
    """One client connection: counts pushes and applies the per-connection faults."""

    def __init__(
        self, ws: web.WebSocketResponse, request: web.Request, faults: Faults, stats: EmulatorStats
    ) -> None:
        self.ws = ws
        self.request = request
        self.faults = faults
        self.stats = stats
        self.conn_id = str(uuid.uuid4())
        self.pushed = 0
        self.malformed = 0
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
            self.malformed += 1  # alternate broken JSON and a well-formed but impossible candle
            await self.ws.send_str(
                MALFORMED_FRAME if self.malformed % 2 else _impossible_candle(topic, item, ts)
            )
        await self.ws.send_str(json.dumps({"topic": topic, "data": [item], "ts": ts, "type": "snapshot"}))
        if self.faults.stall_after and self.pushed >= self.faults.stall_after:
            self.stalled = True
        if self.faults.drop_after and self.pushed >= self.faults.drop_after and self.request.transport:
            self.request.transport.abort()  # no close frame: what a network failure looks like

    def cancel_topics(self) -> None:
        for task in self.topics.values():
            task.cancel()


def _impossible_candle(topic: str, item: dict[str, Any], ts: int) -> str:
    """Valid JSON, invalid candle (high below low): a parser must reject it without dying."""
    bad = {**item, "high": "1", "low": "2"}
    return json.dumps({"topic": topic, "data": [bad], "ts": ts, "type": "snapshot"})


class Emulator:
    """The server: `async with Emulator(candles) as emu:`, then point clients at emu.rest_url / emu.ws_url."""

    def __init__(
        self,
        candles: CandleArray,
        *,
        symbol: str = "BTCUSDT",
        speed: float = 1.0,
        now_ms: int | None = None,
        faults: Faults | None = None,
        updates_per_candle: int = 3,
        port: int = 0,
    ) -> None:
        if len(candles) == 0:
            raise ValueError("the emulator needs candles to serve")
        self.market = Market(candles, symbol)
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
        await site.start()
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
        result = {"category": CATEGORY, "symbol": self.market.symbol, "list": rows}
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
        session = WsSession(ws, request, self.faults, self.stats)
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
        else:
            reply.update(success=False, ret_msg="error:invalid op")
        await session.send(reply)

    def _subscribe(self, session: WsSession, args: Any) -> str | None:
        """Start a push task per topic; one bad topic fails the whole request, as on Bybit."""
        if not isinstance(args, list) or not args:
            return "error:args must be a non-empty list"
        if len(args) > MAX_ARGS_PER_SUBSCRIBE:
            return f"error:args size >{MAX_ARGS_PER_SUBSCRIBE}"
        for topic in args:
            parts = topic.split(".") if isinstance(topic, str) else []
            known = len(parts) == 3 and parts[0] == "kline" and parts[1] in INTERVALS
            if not known or parts[2] != self.market.symbol:
                return f"error:handler not found,topic:{topic}"
            if topic in session.topics:
                return f"error:already subscribed,topic:{topic}"
        for topic in args:
            session.topics[topic] = asyncio.create_task(self._push_topic(session, topic))
        return None

    async def _push_topic(self, session: WsSession, topic: str) -> None:
        with contextlib.suppress(ConnectionResetError):  # the client left, or drop_after cut it
            await self._push_candles(session, topic)

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


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m forecaster.emulator", description=__doc__.split("\n")[0])
    parser.add_argument(
        "--data", type=Path, default=SAMPLE_CSV, help="1m candle CSV(.gz) (default: the sample)"
    )
    parser.add_argument("--port", type=int, default=0, help="0 = any free port (printed at start)")
    parser.add_argument("--speed", type=float, default=1.0, help="simulated seconds per real second")
    parser.add_argument(
        "--now", type=parse_utc_ms, help="start time, ms or ISO (default: one day into the data)"
    )
    parser.add_argument("--symbol", default="BTCUSDT")
    parser.add_argument("--updates-per-candle", type=int, default=3, help="unconfirmed pushes per candle")
    group = parser.add_argument_group("faults (0 = off)")
    for f in fields(Faults):
        default = getattr(Faults(), f.name)
        flag = f"--{f.name.replace('_', '-')}"
        group.add_argument(flag, type=type(default), default=default, help=f.metadata["help"])
    return parser


async def _serve(args: argparse.Namespace) -> None:
    faults = Faults(**{f.name: getattr(args, f.name) for f in fields(Faults)})
    emulator = Emulator(
        read_csv(args.data),
        symbol=args.symbol,
        speed=args.speed,
        now_ms=args.now,
        faults=faults,
        updates_per_candle=args.updates_per_candle,
        port=args.port,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with emulator:
        now = datetime.fromtimestamp(emulator.clock.now_ms() / 1000, UTC).isoformat()
        print(
            f"emulator rest_url={emulator.rest_url} ws_url={emulator.ws_url} now={now} speed={args.speed}",
            flush=True,
        )
        await stop.wait()


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    parser = _parser()
    args = parser.parse_args()
    if not args.speed > 0:
        parser.error(f"--speed must be > 0, got {args.speed}")
    try:
        asyncio.run(_serve(args))
    except UserError as exc:
        print(f"emulator: {exc}", file=sys.stderr)
        sys.exit(USER_ERROR_EXIT)


if __name__ == "__main__":
    main()
