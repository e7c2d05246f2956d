"""The order-flow stream against a tiny scripted WebSocket server on 127.0.0.1: resyncs, dedupe, reconnect."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace

import aiohttp
import pytest
from aiohttp import web

from forecaster.sources.bybit.connection import BybitConnection, SubscriptionRejected
from forecaster.sources.bybit.flow_stream import (
    BookResync,
    BookUpdate,
    BybitFlowStream,
    Connected,
    Disconnected,
    FlowCounters,
    FlowEvent,
    Trades,
)
from forecaster.sources.bybit.messages import Kind
from forecaster.sources.bybit.source import BybitSource
from tests.bybit_fixtures import other_tasks

SYMBOL = "BTCUSDT"
TRADES, BOOK = f"publicTrade.{SYMBOL}", f"orderbook.50.{SYMBOL}"
CLOSE = "close"  # in a script: the server closes the connection
WAIT_S = 10.0


def trades(*ids: int, topic: str = TRADES) -> str:
    data = [{"i": str(i), "T": i, "p": "100.0", "v": "0.5", "S": "Buy", "s": SYMBOL, "seq": i} for i in ids]
    return json.dumps({"topic": topic, "ts": 1, "type": "snapshot", "data": data})


def book(kind: str, u: int, bid: str = "99.5", ask: str = "100.5", price: str | None = None) -> str:
    bids = [[price or bid, "1"]] if kind == "snapshot" or price is None else [[price, "1"]]
    data = {"s": SYMBOL, "b": bids, "a": [[ask, "2"]], "u": u, "seq": u}
    return json.dumps({"topic": BOOK, "ts": u, "type": kind, "data": data, "cts": u})


Script = dict[tuple[int, int], list[str]]  # (connection n, its k-th subscribe request) -> frames sent then
SCRIPT: Script = {
    (1, 1): [
        trades(1, 2),
        "{",  # junk
        trades(9, topic="publicTrade.ETHUSDT"),  # not subscribed
        book("snapshot", 10),
        book("delta", 11, price="99.6"),
        book("delta", 13, price="99.7"),  # gap: 12 is missing
        book("delta", 14, price="99.8"),  # ignored until the resubscribe's snapshot
    ],
    (1, 2): [book("snapshot", 20), book("delta", 21, price="100.5")],  # crossed: bid 100.5 >= ask 100.5
    (1, 3): [book("snapshot", 1), trades(2, 3), CLOSE],  # a service restart's u = 1; trade 2 again
    (2, 1): [trades(3, 4), book("snapshot", 5), book("delta", 6, price="x")],  # trade 3 again; broken delta
    (2, 2): [book("snapshot", 7)],
}


@asynccontextmanager
async def scripted_server(
    script: dict[tuple[int, int], list[str]], requests: list[dict]
) -> AsyncIterator[str]:
    """Answers pings, (un)subscribes (refusing topics of NOPE), then sends the script; logs requests."""
    connections = 0

    async def handler(request: web.Request) -> web.WebSocketResponse:
        nonlocal connections
        connections += 1
        n, subscribes = connections, 0
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        async for msg in ws:
            request_ = json.loads(msg.data)
            requests.append(request_)
            op = request_["op"]
            refused = any("NOPE" in topic for topic in request_.get("args", []))
            answer = {
                "success": not refused,
                "ret_msg": "pong" if op == "ping" else "",
                "op": op,
                "conn_id": "c",
            }
            if refused:
                answer["ret_msg"] = "error:handler not found"
            await ws.send_json({**answer, "req_id": request_.get("req_id", "")})
            if op != "subscribe":
                continue
            subscribes += 1
            for frame in script.get((n, subscribes), []):
                if frame == CLOSE:
                    await ws.close()
                    break
                await ws.send_str(frame)
        return ws

    app = web.Application()
    app.router.add_get("/v5/public/spot", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"ws://127.0.0.1:{port}/v5/public/spot"
    finally:
        await runner.cleanup()


def source(ws_url: str, symbol: str = SYMBOL) -> BybitSource:
    return BybitSource(
        ws_url=ws_url,
        symbol=symbol,
        ping_interval_s=0.2,
        stale_timeout_s=2.0,
        backoff_base_s=0.01,
        max_backoff_s=0.05,
        request_timeout_s=5.0,
    )


async def events_until_u(stream: BybitFlowStream, last_u: int) -> list[FlowEvent]:
    async def collect() -> list[FlowEvent]:
        got: list[FlowEvent] = []
        async for event in stream:
            got.append(event)
            if isinstance(event, BookUpdate) and event.view.update_id == last_u:
                return got
        return got

    return await asyncio.wait_for(collect(), WAIT_S)


def summary(event: FlowEvent) -> tuple:
    match event:
        case Trades(trades=got):
            return ("trades", *(t.trade_id for t in got))
        case BookUpdate(view=view, snapshot=snapshot):
            return ("snapshot" if snapshot else "delta", view.update_id)
        case BookResync(reason=reason, update_id=u):
            return ("resync", reason, u)
        case Connected():
            return ("connected",)
        case Disconnected():
            return ("disconnected",)
    raise AssertionError(event)


async def test_resyncs_dedupe_and_reconnect_against_a_scripted_server() -> None:
    requests: list[dict] = []
    async with (
        scripted_server(SCRIPT, requests) as url,
        BybitFlowStream(source(url), clock=lambda: 1.5) as stream,
    ):
        got = await events_until_u(stream, 7)
    assert [summary(e) for e in got] == [
        ("connected",),
        ("trades", "1", "2"),
        ("snapshot", 10),
        ("delta", 11),
        ("resync", "gap", 11),
        ("snapshot", 20),
        ("resync", "crossed", 21),
        ("snapshot", 1),
        ("trades", "3"),
        ("disconnected",),
        ("connected",),
        ("trades", "4"),
        ("snapshot", 5),
        ("resync", "malformed", 5),
        ("snapshot", 7),
    ]
    assert got[0] == Connected(1500)
    top = got[3]
    assert isinstance(top, BookUpdate) and top.view.bids.tolist() == [[99.6, 1.0], [99.5, 1.0]]
    c = stream.counters
    assert (c.connects, c.reconnects, c.stale) == (2, 1, 0)
    assert (c.gaps, c.crossed, c.resyncs, c.ignored) == (1, 1, 3, 1)
    assert (c.trades, c.duplicates, c.snapshots, c.book_updates) == (4, 2, 5, 6)
    assert c.malformed == 3  # the junk, the other topic's push, the broken delta
    assert c.messages == 13  # pushes of the two topics
    assert other_tasks() == set()
    sent = [(r["op"], r["args"]) for r in requests if r["op"] != "ping"]
    resubscribe = [("unsubscribe", [BOOK]), ("subscribe", [BOOK])]
    both = ("subscribe", [TRADES, BOOK])
    assert sent == [both, *resubscribe, *resubscribe, both, *resubscribe]  # gap, crossed; malformed


async def test_a_book_that_does_not_start_over_after_a_resubscribe_gets_a_new_connection() -> None:
    script: Script = {(1, 1): [book("snapshot", 10), book("delta", 12)], (2, 1): [book("snapshot", 30)]}
    async with (
        scripted_server(script, []) as url,
        BybitFlowStream(replace(source(url), request_timeout_s=0.3)) as stream,
    ):
        got = await events_until_u(stream, 30)
    assert [summary(e) for e in got] == [
        ("connected",),
        ("snapshot", 10),
        ("resync", "gap", 10),
        ("disconnected",),
        ("connected",),
        ("snapshot", 30),
    ]
    lost = got[3]
    assert isinstance(lost, Disconnected) and f"{BOOK} did not start over within 0.3 s" in lost.reason


async def test_topics_are_subscribed_ten_a_request_and_acked_once_all_are() -> None:
    topics = [f"publicTrade.S{i}" for i in range(12)]
    requests: list[dict] = []
    async with (
        scripted_server({}, requests) as url,
        aiohttp.ClientSession() as session,
        session.ws_connect(url) as ws,
    ):
        events = BybitConnection(ws, source(url), topics, FlowCounters(), "settings").events()
        first = await asyncio.wait_for(anext(events), WAIT_S)
        await events.aclose()
    assert first.kind is Kind.ACK
    assert [r["args"] for r in requests if r["op"] == "subscribe"] == [topics[:10], topics[10:]]


async def test_a_refused_topic_is_one_clear_error_not_a_retry_loop() -> None:
    async with scripted_server({}, []) as url, BybitFlowStream(source(url, symbol="NOPEUSDT")) as stream:
        with pytest.raises(
            SubscriptionRejected, match=r"orderbook\.50\.NOPEUSDT.*handler not found.*book_depth"
        ):
            await asyncio.wait_for(events_until_u(stream, 1), WAIT_S)
    assert stream.counters.reconnects == 0
