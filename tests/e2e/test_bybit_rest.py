"""The REST history client against the emulator: paging, closed candles only, cache, retries, errors."""

from __future__ import annotations

import random

import pytest

from forecaster.candles import DAY_MS, MINUTE_MS, aggregate
from forecaster.emulator.clock import REAL_TIME
from forecaster.emulator.faults import Faults
from forecaster.errors import UserError
from forecaster.sources.bybit.cache import KlineCache
from forecaster.sources.bybit.protocol import PAGE_LIMIT
from forecaster.sources.bybit.rest import BybitError, BybitRest, BybitUnavailable
from forecaster.sources.bybit.retry import Backoff
from tests.bybit_fixtures import DATA, DAY1, NOW, csv_candles, emulator, fast_source

OPEN = NOW // MINUTE_MS * MINUTE_MS  # start of the candle still open at NOW


async def test_paging_across_page_boundaries_is_ascending_and_exact() -> None:
    start, n = DAY1 + 123 * MINUTE_MS, 2 * PAGE_LIMIT + 345
    async with emulator() as emu, BybitRest(fast_source(emu)) as rest:
        got = await rest.klines(start, start + n * MINUTE_MS)
        assert emu.stats.kline_requests == 3
    assert got.to_candles() == csv_candles(start, n)


async def test_only_closed_candles_never_the_open_one() -> None:
    async with emulator(speed=REAL_TIME) as emu, BybitRest(fast_source(emu)) as rest:
        emu.clock.set_now(OPEN + 30_000)  # half-way through the open candle
        got = await rest.klines(OPEN - 10 * MINUTE_MS, OPEN + 10 * MINUTE_MS)
        latest = await rest.klines(OPEN - 10 * MINUTE_MS)  # end None: up to the newest closed one
    assert got.to_candles() == latest.to_candles() == csv_candles(OPEN - 10 * MINUTE_MS, 10)


async def test_warmup_is_the_last_n_closed_candles() -> None:
    async with emulator(speed=REAL_TIME) as emu, BybitRest(fast_source(emu)) as rest:
        got = await rest.warmup(1500)
    assert got.to_candles() == csv_candles(OPEN - 1500 * MINUTE_MS, 1500)


async def test_cache_second_call_is_free_and_an_extension_fetches_only_the_new_day(tmp_path) -> None:
    day2 = DAY1 + DAY_MS
    async with emulator() as emu, BybitRest(fast_source(emu), tmp_path) as rest:
        first = await rest.klines(DAY1 + 100 * MINUTE_MS, day2)
        assert emu.stats.kline_requests == 2  # the whole day (1440 candles) so that it can be cached
        before = emu.stats.rest_requests
        again = await rest.klines(DAY1 + 100 * MINUTE_MS, day2)
        assert emu.stats.rest_requests == before  # no network call at all
        longer = await rest.klines(DAY1, day2 + DAY_MS)
        assert emu.stats.kline_requests == 4  # only day 2
    assert first.to_candles() == again.to_candles() == csv_candles(DAY1 + 100 * MINUTE_MS, 1340)
    assert longer.to_candles() == csv_candles(DAY1, 2880)
    assert sorted(p.name for p in tmp_path.rglob("*.csv")) == ["2024-12-01.csv", "2024-12-02.csv"]


async def test_cache_never_holds_the_running_day_or_open_candle(tmp_path) -> None:
    async with emulator(speed=REAL_TIME) as emu, BybitRest(fast_source(emu), tmp_path) as rest:
        await rest.klines(OPEN - 60 * MINUTE_MS)
        requests = emu.stats.kline_requests
        got = await rest.klines(OPEN - 60 * MINUTE_MS)
        assert emu.stats.kline_requests > requests  # today is asked for again: it is still growing
    assert got.to_candles() == csv_candles(OPEN - 60 * MINUTE_MS, 60)
    assert not [p for p in tmp_path.rglob("*.csv") if p.name.startswith("2024-12-03")]


async def test_damaged_cache_file_is_fetched_again(tmp_path) -> None:
    async with emulator() as emu, BybitRest(fast_source(emu), tmp_path) as rest:
        await rest.klines(DAY1, DAY1 + DAY_MS)
        (path,) = tmp_path.rglob("2024-12-01.csv")
        path.write_text("start_ms,open\n1,2\n")
        got = await rest.klines(DAY1, DAY1 + DAY_MS)
    assert got.to_candles() == csv_candles(DAY1, 1440)


def test_cache_is_per_host(tmp_path) -> None:
    real = KlineCache(tmp_path, "https://api.bybit.com", "spot", "BTCUSDT", "1m")
    local = KlineCache(tmp_path, "http://127.0.0.1:8080", "spot", "BTCUSDT", "1m")
    assert real.dir != local.dir


@pytest.mark.parametrize(
    ("faults", "refusal"),
    [
        (Faults(rate_limit=2, rate_window_s=0.2, ban_factor=100), "ret_10006"),
        (Faults(rate_limit=1, rate_window_s=0.2, ban_factor=2), "http_403"),
        (Faults(http_error_every=2), "http_503"),
    ],
    ids=["rate_limit_10006", "ip_ban_403", "http_5xx"],
)
async def test_transient_refusals_are_retried_with_backoff(faults: Faults, refusal: str) -> None:
    start, n = DAY1, 2 * PAGE_LIMIT + 500  # 3 pages, all closed at NOW
    async with emulator(faults) as emu, BybitRest(fast_source(emu, max_retries=30)) as rest:
        got = await rest.klines(start, start + n * MINUTE_MS)
        assert emu.stats.refused.get(refusal, 0) > 0
        assert rest.stats.retries > 0
    assert got.to_candles() == csv_candles(start, n)


async def test_slow_rest_times_out_and_is_retried() -> None:
    async with emulator(Faults(rest_delay_s=0.3)) as emu:
        source = fast_source(emu, request_timeout_s=0.1, max_retries=1)
        async with BybitRest(source) as rest:
            with pytest.raises(BybitUnavailable, match=r"failed 2 times.*TimeoutError"):
                await rest.klines(DAY1, DAY1 + 10 * MINUTE_MS)
            emu.faults.rest_delay_s = 0.0
            got = await rest.klines(DAY1, DAY1 + 10 * MINUTE_MS)
    assert got.to_candles() == csv_candles(DAY1, 10)


async def test_bad_symbol_is_a_clear_error_without_retries() -> None:
    async with emulator() as emu, BybitRest(fast_source(emu, symbol="NOPEUSDT")) as rest:
        with pytest.raises(BybitError, match=r"retCode 10001 'Not supported symbols'.*check source") as info:
            await rest.klines(DAY1, DAY1 + 10 * MINUTE_MS)
        assert rest.stats.retries == 0
    assert isinstance(info.value, UserError) and "\n" not in str(info.value)


async def test_native_higher_interval() -> None:
    async with emulator() as emu, BybitRest(fast_source(emu)) as rest:
        got = await rest.klines(DAY1, DAY1 + DAY_MS, "15m")
    assert got.to_candles() == aggregate(DATA[:1440], "15m").candles.to_candles()


def test_backoff_is_exponential_jittered_capped_and_resettable() -> None:
    backoff = Backoff(base_s=0.5, cap_s=4.0, rng=random.Random(0))
    delays = [backoff.next_delay() for _ in range(8)]
    for n, delay in enumerate(delays):
        ceiling = min(4.0, 0.5 * 2**n)
        assert ceiling / 2 <= delay <= ceiling
    backoff.reset()
    assert backoff.next_delay() <= 0.5
