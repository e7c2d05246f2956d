"""The emulator speaks Bybit v5 as documented in ../shared/bybit (shapes checked against the fixtures)."""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
from dataclasses import fields
from pathlib import Path

import aiohttp
import pytest

from forecaster.candles import MINUTE_MS, candle_from_rest_row, candle_from_ws
from forecaster.data import SAMPLE_CSV
from forecaster.emulator.clock import REAL_TIME
from forecaster.emulator.faults import Faults
from forecaster.emulator.flow import trades_for
from forecaster.emulator.flow_topics import trade_item
from forecaster.emulator.launch import launch_emulator
from forecaster.sources.bybit.protocol import KLINE_PATH, TIME_PATH
from tests.bybit_fixtures import DATA, DAY1, NOW, apply, csv_candles, emulator
from tests.conftest import FIXTURES, truncated_sample

OPEN = NOW // MINUTE_MS * MINUTE_MS
QUERY = {"category": "spot", "symbol": "BTCUSDT", "interval": "1"}


def fixture(name: str) -> dict:
    path = FIXTURES / name
    if not path.is_file():
        pytest.skip(f"{path} not found: ../shared is not next to this checkout")
    return json.loads(path.read_text())


async def get(url: str, **params: object) -> tuple[int, dict | str]:
    async with aiohttp.ClientSession() as session, session.get(url, params={**QUERY, **params}) as response:
        if response.content_type == "application/json":
            return response.status, await response.json()
        return response.status, await response.text()


async def test_kline_envelope_order_and_open_candle() -> None:
    async with emulator(speed=REAL_TIME) as emu:
        emu.clock.set_now(OPEN + 30_000)
        status, body = await get(emu.rest_url + KLINE_PATH, limit=5)
    expected = fixture("rest_kline_response.json")
    assert status == 200 and body.keys() == expected.keys()
    assert body["result"].keys() == expected["result"].keys() and body["retCode"] == 0
    rows = body["result"]["list"]
    assert all(isinstance(v, str) for row in rows for v in row) and len(rows[0]) == 7
    assert [int(r[0]) for r in rows] == [OPEN - i * MINUTE_MS for i in range(5)]  # newest first
    candles = [candle_from_rest_row(r, body["time"]) for r in rows]
    assert not candles[0].confirmed  # the open candle is included, half-way
    assert candles[0].close != csv_candles(OPEN, 1)[0].close
    assert candles[1:] == csv_candles(OPEN - 4 * MINUTE_MS, 4)[::-1]


async def test_kline_window_and_limits() -> None:
    async with emulator(speed=REAL_TIME) as emu:
        url = emu.rest_url + KLINE_PATH
        _, default = await get(url)
        _, window = await get(url, start=DAY1 + 10 * MINUTE_MS, end=DAY1 + 20 * MINUTE_MS, limit=1000)
        _, newest = await get(url, start=DAY1, end=DAY1 + 20 * MINUTE_MS, limit=3)
    assert len(default["result"]["list"]) == 200
    assert [int(r[0]) for r in window["result"]["list"]][::-1] == [
        DAY1 + i * MINUTE_MS for i in range(10, 21)
    ]
    assert [int(r[0]) for r in newest["result"]["list"]] == [DAY1 + i * MINUTE_MS for i in (20, 19, 18)]


@pytest.mark.parametrize(
    "params",
    [{"symbol": "NOPEUSDT"}, {"limit": 1001}, {"limit": "x"}, {"interval": "2"}, {"category": "linear"},
     {"start": DAY1 + MINUTE_MS, "end": DAY1}],
)  # fmt: skip
async def test_bad_parameters_are_10001(params: dict) -> None:
    async with emulator() as emu:
        status, body = await get(emu.rest_url + KLINE_PATH, **params)
    assert (
        status == 200 and body["retCode"] == 10001 and body.keys() == fixture("rest_error_10001.json").keys()
    )
    if "symbol" in params:
        assert body["retMsg"] == "Not supported symbols"


async def test_rate_limit_then_ip_ban_then_5xx() -> None:
    async with emulator(Faults(rate_limit=1, rate_window_s=60, ban_factor=2)) as emu:
        url = emu.rest_url + KLINE_PATH
        answers = [await get(url) for _ in range(3)]
        emu.faults.rate_limit, emu.faults.http_error_every = 0, 1
        failed = await get(url)
    assert answers[0][1]["retCode"] == 0
    assert answers[1][0] == 200 and answers[1][1]["retCode"] == 10006
    assert answers[1][1]["retMsg"] == fixture("rest_rate_limit_10006.json")["retMsg"]
    assert answers[2][0] == 403 and "access too frequent" in answers[2][1]
    assert failed[0] == 503


async def test_time_follows_the_settable_clock() -> None:
    async with emulator(speed=REAL_TIME) as emu:
        emu.clock.set_now(DAY1)
        status, body = await get(emu.rest_url + TIME_PATH)
    assert (
        status == 200
        and DAY1 <= body["time"] < DAY1 + 1000
        and int(body["result"]["timeSecond"]) == DAY1 // 1000
    )


async def test_subscribe_ping_and_rejection_in_spot_shapes() -> None:
    async with (
        emulator(speed=REAL_TIME) as emu,
        aiohttp.ClientSession() as session,
        session.ws_connect(emu.ws_url) as ws,
    ):
        await ws.send_json(fixture("subscribe_request.json"))
        ack = await ws.receive_json()
        await ws.send_json({"op": "ping"})
        pong = await ws.receive_json()
        await ws.send_json({"req_id": "sub-2", "op": "subscribe", "args": ["kline.1.NOPEUSDT"]})
        error = await ws.receive_json()
        await ws.send_json({"op": "subscribe", "args": ["kline.5.BTCUSDT"]})
        bare_ack = await ws.receive_json()
    assert ack.keys() == fixture("subscribe_response_spot.json").keys() and ack["req_id"] == "sub-1"
    assert ack["success"] is True and ack["ret_msg"] == "subscribe"
    assert pong.keys() == fixture("pong_response_spot.json").keys()
    assert pong["op"] == "ping" and pong["ret_msg"] == "pong"
    expected_error = fixture("subscribe_error_bad_topic.json")
    assert error.keys() == expected_error.keys() and error["ret_msg"] == expected_error["ret_msg"]
    assert "req_id" not in bare_ack and bare_ack["success"] is True


async def collect_pushes(ws: aiohttp.ClientWebSocketResponse, confirms: int) -> list[dict]:
    pushes: list[dict] = []
    while sum(p["data"][0]["confirm"] for p in pushes) < confirms:
        message = await asyncio.wait_for(ws.receive_json(), 5)
        if "topic" in message:
            pushes.append(message)
    return pushes


async def test_pushes_updates_then_exactly_one_confirm_per_candle_agreeing_with_rest() -> None:
    async with emulator() as emu, aiohttp.ClientSession() as session, session.ws_connect(emu.ws_url) as ws:
        await ws.send_json({"op": "subscribe", "args": ["kline.1.BTCUSDT"]})
        pushes = await collect_pushes(ws, 4)
        _, rest = await get(emu.rest_url + KLINE_PATH, limit=20)
    expected = fixture("kline_push_open.json")
    assert pushes[0].keys() == expected.keys() and pushes[0]["data"][0].keys() == expected["data"][0].keys()
    items = [p["data"][0] for p in pushes]
    assert all(isinstance(i["start"], int) and isinstance(i["open"], str) for i in items)
    starts = sorted({i["start"] for i in items})
    assert starts == [starts[0] + k * MINUTE_MS for k in range(len(starts))]
    confirmed = [candle_from_ws(i) for i in items if i["confirm"]]
    assert [c.start_ms for c in confirmed] == starts[: len(confirmed)]  # one each, in order
    assert confirmed == csv_candles(starts[0], len(confirmed))
    for start in starts[1 : len(confirmed)]:
        assert len([i for i in items if i["start"] == start and not i["confirm"]]) >= 2
    by_rest = {c.start_ms: c for c in (candle_from_rest_row(r, rest["time"]) for r in rest["result"]["list"])}
    assert all(by_rest[c.start_ms] == c for c in confirmed)


async def test_drop_and_stall_faults() -> None:
    async with emulator(Faults(drop_after=3)) as emu, aiohttp.ClientSession() as session:
        async with session.ws_connect(emu.ws_url) as ws:
            await ws.send_json({"op": "subscribe", "args": ["kline.1.BTCUSDT"]})
            kinds = [(await asyncio.wait_for(ws.receive(), 5)).type for _ in range(5)]
        assert kinds[:4] == [aiohttp.WSMsgType.TEXT] * 4  # the ack and 3 pushes
        assert kinds[4] in (aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.ERROR)
        emu.faults.drop_after, emu.faults.stall_after = 0, 2
        async with session.ws_connect(emu.ws_url) as ws:
            await ws.send_json({"op": "subscribe", "args": ["kline.1.BTCUSDT"]})
            received = [await asyncio.wait_for(ws.receive_json(), 5) for _ in range(3)]
            await ws.send_json({"op": "ping"})
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(ws.receive(), 0.5)  # 5 candles' time: silence, not even a pong
        assert [("topic" in m) for m in received] == [False, True, True]


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--port", "99999"], "port must be 0..65535"),
        (["--speed", "0"], "speed must be > 0 candles per second"),
        (["--port", "{busy}"], "choose another port, or 0"),
        (["--data", "{truncated}"], "truncated.csv.gz is truncated or corrupt"),
    ],
    ids=["port-range", "speed-0", "port-in-use", "truncated-data"],
)
def test_bad_command_line_is_one_line_and_exit_2(tmp_path: Path, args: list[str], expected: str) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        values = {"busy": busy.getsockname()[1], "truncated": truncated_sample(tmp_path)}
        command = [sys.executable, "-m", "forecaster.emulator", *(a.format(**values) for a in args)]
        result = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1 and expected in result.stderr, result.stderr
    assert "Traceback" not in result.stderr


def test_help_shows_every_default() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "forecaster.emulator", "--help"], capture_output=True, text=True, check=True
    )
    options = [line for line in result.stdout.splitlines() if line.lstrip().startswith("--")]
    assert len(options) == len(fields(Faults)) + 8
    assert result.stdout.count("(default:") == len(options), result.stdout
    assert "1m candles per real second, as source.speed" in result.stdout


def test_command_line_prints_urls_and_serves() -> None:
    with launch_emulator("--data", str(SAMPLE_CSV), "--speed", "1") as launched:
        assert launched.ws_url.startswith("ws://127.0.0.1:") and launched.ws_url.endswith("/v5/public/spot")
        status, body = asyncio.run(get(launched.rest_url + KLINE_PATH, limit=1))
        assert status == 200 and int(body["result"]["list"][0][0]) == int(DATA.start_ms[1440])
    assert launched.process.returncode == 0  # SIGTERM is a clean stop


FLOW_FAULTS = Faults(
    trade_duplicate_every=3, book_gap_every=4, book_cross_every=5, book_stale_every=2, book_restart_every=3
)


@pytest.mark.parametrize("faults", [Faults(), FLOW_FAULTS], ids=["clean", "flow-faults"])
async def test_trades_and_books_beside_klines_on_one_connection(faults: Faults) -> None:
    topics = ["kline.1.BTCUSDT", "publicTrade.BTCUSDT", "orderbook.50.BTCUSDT", "orderbook.1.BTCUSDT"]
    async with (
        emulator(faults) as emu,
        aiohttp.ClientSession() as session,
        session.ws_connect(emu.ws_url) as ws,
    ):
        await ws.send_json({"op": "subscribe", "args": topics})
        assert (await ws.receive_json())["success"] is True
        messages: list[dict] = []
        while sum(m["data"][0]["confirm"] for m in messages if m["topic"] == topics[0]) < 4:
            messages.append(await asyncio.wait_for(ws.receive_json(), 5))
    by_topic = {t: [m for m in messages if m["topic"] == t] for t in topics}
    trade_push, book_snapshot = fixture("trade_push.json"), fixture("orderbook50_snapshot.json")
    for message in by_topic[topics[1]]:
        assert message.keys() == trade_push.keys() and 1 <= len(message["data"]) <= 1024
        assert all(item.keys() == trade_push["data"][0].keys() for item in message["data"])
    items = [item for m in by_topic[topics[1]] for item in m["data"]]
    unique = {item["i"]: item for item in items}
    assert (len(unique) < len(items)) == bool(faults.trade_duplicate_every)
    confirmed = [candle_from_ws(m["data"][0]) for m in by_topic[topics[0]] if m["data"][0]["confirm"]]
    for candle in confirmed[1:-1]:  # whole minutes on the stream: exactly what anyone computes offline
        pushed = [item for item in unique.values() if candle.start_ms <= item["T"] <= candle.end_ms]
        offline = trades_for(candle, emu.flow.seed, emu.flow.per_candle)
        assert pushed == [trade_item(t, "BTCUSDT") for t in offline]
    book: dict[str, dict[float, float]] = {}
    update_ids, crossed, previous = [], [], 0
    for message in by_topic[topics[2]]:
        assert (
            message.keys() == book_snapshot.keys() and message["data"].keys() == book_snapshot["data"].keys()
        )
        if message["type"] == "delta":
            update_ids.append(message["data"]["u"] - previous)
        previous = message["data"]["u"]
        apply(book, message)
        crossed.append(max(book["b"]) >= min(book["a"]))
    assert by_topic[topics[2]][0]["type"] == "snapshot"
    restarts = [m["data"]["u"] for m in by_topic[topics[2]][1:] if m["type"] == "snapshot"]
    delta_minutes = {m["cts"] // MINUTE_MS for m in by_topic[topics[2]] if m["type"] == "delta"}
    stale = [c.start_ms // MINUTE_MS for c in confirmed[1:-1] if c.start_ms // MINUTE_MS not in delta_minutes]
    assert bool(stale) == bool(faults.book_stale_every) and all(m % 2 == 0 for m in stale)
    if faults == FLOW_FAULTS:
        assert any(crossed) and 2 in update_ids and restarts and set(restarts) == {1}
    else:
        assert not any(crossed) and set(update_ids) == {1} and not restarts
    tops = by_topic[topics[3]]
    assert all(m["type"] == "snapshot" and len(m["data"]["b"]) == len(m["data"]["a"]) == 1 for m in tops)
    assert all(float(m["data"]["b"][0][0]) < float(m["data"]["a"][0][0]) for m in tops)
