"""The WebSocket stream against the emulator: every fault still yields exactly the CSV's candles, in order."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import replace

import pytest

from forecaster.candles import MINUTE_MS, aggregate
from forecaster.emulator.faults import Faults
from forecaster.errors import UserError
from forecaster.sources.bybit.messages import Kind, parse_message
from forecaster.sources.bybit.rest import BybitRest
from forecaster.sources.bybit.source import BybitSource
from forecaster.sources.bybit.ws import BybitKlineStream, StreamCounters, SubscriptionRejected
from tests.bybit_fixtures import DATA, NOW, csv_candles, emulator, fast_source, other_tasks, take

N = 12  # candles per fault test: about 1.2 s of emulated market
AFTER = NOW - 5 * MINUTE_MS  # the consumer already has candles up to here: the first 4 come from REST
SLOW_SPEED = 1.0  # one candle per second, for a test whose outcome depends on how fast it connects


async def stream_with(faults: Faults, n: int = N, **overrides: object) -> tuple[list, StreamCounters]:
    async with emulator(faults) as emu:
        source = fast_source(emu, **overrides)
        async with BybitRest(source) as rest, BybitKlineStream(source, rest, after_ms=AFTER) as stream:
            got = await take(stream, n)
        return got, stream.counters


def assert_exact(got: list) -> None:
    """Exactly the CSV's candles right after AFTER: none missing, none twice, all confirmed."""
    assert [c.start_ms for c in got] == [AFTER + (i + 1) * MINUTE_MS for i in range(len(got))]
    assert got == csv_candles(AFTER + MINUTE_MS, len(got))
    assert all(c.confirmed for c in got)


async def test_clean_stream_is_the_csv() -> None:
    got, counters = await stream_with(Faults())
    assert_exact(got)
    assert counters.connects == 1 and counters.reconnects == 0
    # The candles between AFTER and "now": 4 when the connection is quick. On a loaded machine the
    # emulator's clock (600x) closes another candle or two first: REST backfills them too, and the
    # same candle pushed on the socket is then dropped as a duplicate. The stream stays exact.
    assert counters.backfilled >= 4
    assert counters.malformed == 0 and counters.duplicates <= counters.backfilled - 4


@pytest.mark.parametrize(
    ("faults", "counter"),
    [
        (Faults(drop_after=7), "reconnects"),
        (Faults(stall_after=7), "stale"),
        (Faults(malformed_every=2), "malformed"),
        (Faults(duplicate_every=1), "duplicates"),
        (Faults(reorder_every=3), "duplicates"),
        (Faults(skip_every=3), "backfilled"),
    ],
    ids=["drop", "stall", "malformed", "duplicate", "out_of_order", "skipped_minutes"],
)
async def test_each_ws_fault_still_gives_the_exact_sequence(faults: Faults, counter: str) -> None:
    got, counters = await stream_with(faults)
    assert_exact(got)
    baseline = 4 if counter == "backfilled" else 0
    assert getattr(counters, counter) > baseline, counters


async def test_drop_and_stall_take_turns_in_one_run() -> None:
    """Both set: connection 1 is cut, connection 2 goes silent, ...; the stream stays exact."""
    got, counters = await stream_with(Faults(drop_after=5, stall_after=5), n=3 * N)
    assert_exact(got)
    assert counters.stale > 0, counters
    assert counters.reconnects > counters.stale, f"no dropped connection: {counters}"


async def test_rest_faults_during_backfill_are_retried() -> None:
    """Drops force backfills while REST answers 503, rate-limits and is slow: still exact."""
    faults = Faults(drop_after=7, http_error_every=3, rate_limit=4, rate_window_s=0.2, rest_delay_s=0.01)
    got, counters = await stream_with(faults)
    assert_exact(got)
    assert counters.reconnects > 0


async def test_clock_jump_is_backfilled() -> None:
    """Setting "now" 20 minutes ahead: the WS never confirms those minutes; REST fills them in."""
    async with emulator() as emu:
        source = fast_source(emu)
        async with BybitRest(source) as rest, BybitKlineStream(source, rest, after_ms=AFTER) as stream:
            got = await take(stream, 6)
            emu.clock.set_now(emu.clock.now_ms() + 20 * MINUTE_MS)
            got += await take(stream, 30)
    assert_exact(got)
    assert stream.counters.backfilled >= 4 + 19


async def test_without_after_starts_at_first_confirm() -> None:
    # One candle per second: connecting must take less than one emulated minute for the candle open
    # at "now" to be the first to close, which 0.1 s (the default speed) does not leave on busy cores.
    async with emulator(speed=SLOW_SPEED) as emu:
        source = fast_source(emu)
        async with BybitRest(source) as rest, BybitKlineStream(source, rest) as stream:
            got = await take(stream, 3)
    assert got[0].start_ms == NOW // MINUTE_MS * MINUTE_MS  # the candle open at "now" is the first to close
    assert got == csv_candles(got[0].start_ms, 3)


async def test_native_higher_timeframe() -> None:
    async with emulator(speed=100) as emu:
        source = fast_source(emu)
        after = NOW // (5 * MINUTE_MS) * (5 * MINUTE_MS) - 10 * MINUTE_MS
        async with BybitRest(source) as rest, BybitKlineStream(source, rest, "5m", after_ms=after) as stream:
            got = await take(stream, 4)
    five = aggregate(DATA, "5m").candles
    first = int((after + 5 * MINUTE_MS - five.start_ms[0]) // (5 * MINUTE_MS))
    assert got == five[first : first + 4].to_candles()


async def test_rejected_subscription_is_a_clear_error_not_a_retry_loop() -> None:
    async with emulator() as emu:
        source = fast_source(emu, symbol="NOPEUSDT")
        async with BybitRest(source) as rest, BybitKlineStream(source, rest) as stream:
            with pytest.raises(SubscriptionRejected, match=r"kline\.1\.NOPEUSDT.*handler not found"):
                await take(stream, 1)
    assert stream.counters.connects == 1 and stream.counters.reconnects == 0
    assert isinstance(SubscriptionRejected("x"), UserError)


async def test_backoff_grows_and_is_capped_when_the_server_is_gone() -> None:
    async with emulator() as emu:
        source = fast_source(emu, backoff_base_s=0.005, max_backoff_s=0.02)
    async with BybitRest(source) as rest, BybitKlineStream(source, rest) as stream:  # nobody listens now
        await asyncio.sleep(0.3)
        assert stream.counters.reconnects >= 10  # capped at 20 ms: many tries, none of them successful
        assert stream.counters.connects == 0


async def test_cancelling_leaves_nothing_running(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.ERROR)
    async with emulator(Faults(stall_after=3)) as emu:
        source = fast_source(emu)
        async with BybitRest(source) as rest:
            stream = BybitKlineStream(source, rest, after_ms=AFTER)
            consumer = asyncio.create_task(take(stream, 10_000))
            await asyncio.sleep(0.5)
            consumer.cancel()
            with pytest.raises(asyncio.CancelledError):
                await consumer
            await stream.aclose()
            await stream.aclose()  # twice is fine
    assert other_tasks() == set()
    assert not [r for r in caplog.records if "destroyed" in r.getMessage() or "Unclosed" in r.getMessage()]


def test_stale_timeout_must_exceed_ping_interval() -> None:
    with pytest.raises(UserError, match="stale_timeout_s"):
        BybitSource(ping_interval_s=20, stale_timeout_s=10)


def test_parse_message_kinds() -> None:
    topic = "kline.1.BTCUSDT"
    pong = '{"success":true,"ret_msg":"pong","conn_id":"x","op":"ping"}'
    assert parse_message(pong, topic, "1m").kind == Kind.PONG
    assert parse_message('{"op":"pong","args":["1"]}', topic, "1m").kind == Kind.PONG
    ack = '{"success":true,"ret_msg":"subscribe","conn_id":"x","op":"subscribe"}'
    assert parse_message(ack, topic, "1m").kind == Kind.ACK
    rejected = parse_message('{"success":false,"ret_msg":"error:x","op":"subscribe"}', topic, "1m")
    assert rejected.kind == Kind.REJECTED and rejected.detail == "error:x"
    for junk in (
        "{",
        "[]",
        '{"topic":"kline.1.ETHUSDT","data":[]}',
        '{"topic":"kline.1.BTCUSDT","data":[1]}',
    ):
        assert parse_message(junk, topic, "1m").errors, junk


@pytest.mark.network
async def test_real_bybit_smoke(tmp_path) -> None:
    """Opt-in (pytest -m network): the real endpoints answer in the shapes the code expects."""
    source = replace(BybitSource(), request_timeout_s=15)
    async with BybitRest(source, tmp_path) as rest:
        history = await rest.warmup(5)
        assert len(history) == 5
        async with BybitKlineStream(source, rest, after_ms=int(history.start_ms[-1])) as stream:
            got = await take(stream, 1, timeout_s=90)
    assert got[0].start_ms == history.start_ms[-1] + MINUTE_MS and got[0].confirmed
