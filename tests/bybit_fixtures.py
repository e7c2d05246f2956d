"""Helpers shared by the emulator, REST and WebSocket tests: a fast emulator and a source pointing at it.

Plain functions and context managers rather than pytest fixtures, so test modules import them
explicitly. Everything binds 127.0.0.1 only.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace

from forecaster.candles import MINUTE_MS, Candle, CandleArray, read_csv
from forecaster.data import SAMPLE_CSV
from forecaster.emulator.faults import Faults
from forecaster.emulator.server import Emulator
from forecaster.sources.bybit.source import BybitSource

SPEED = 10.0  # 1m candles per second: one every 0.1 s
DATA = read_csv(SAMPLE_CSV)  # 2024-12-01..05, 7200 candles, no gap
DAY1 = int(DATA.start_ms[0])
NOW = DAY1 + 2 * 1440 * MINUTE_MS + 30 * MINUTE_MS  # 2024-12-03 00:30, two complete days behind
WAIT_S = 20.0  # generous upper bound for a whole stream test; they finish in about a second


def fast_source(emulator: Emulator, **overrides: object) -> BybitSource:
    """Timeouts scaled to the emulator's speed so that faults are detected in a fraction of a second."""
    source = BybitSource(
        rest_url=emulator.rest_url,
        ws_url=emulator.ws_url,
        ping_interval_s=0.1,
        stale_timeout_s=0.3,
        backoff_base_s=0.01,
        max_backoff_s=0.1,
        healthy_reset_s=1.0,
        request_timeout_s=10.0,  # a first contact that times out is fatal: generous on a loaded machine
        max_retries=8,
    )
    return replace(source, **overrides)


@asynccontextmanager
async def emulator(
    faults: Faults | None = None, *, now_ms: int = NOW, speed: float = SPEED, data: CandleArray = DATA
) -> AsyncIterator[Emulator]:
    async with Emulator(data, speed=speed, now_ms=now_ms, faults=faults) as emu:
        yield emu


def csv_candles(start_ms: int, n: int, data: CandleArray = DATA) -> list[Candle]:
    """The n candles of the CSV from start_ms on, as a perfect stream would deliver them."""
    i = int((start_ms - int(data.start_ms[0])) // (data.start_ms[1] - data.start_ms[0]))
    return data[i : i + n].to_candles()


async def take(stream: AsyncIterator[Candle], n: int, timeout_s: float = WAIT_S) -> list[Candle]:
    async def collect() -> list[Candle]:
        out = []
        async for candle in stream:
            out.append(candle)
            if len(out) == n:
                break
        return out

    return await asyncio.wait_for(collect(), timeout_s)


def other_tasks() -> set[asyncio.Task[object]]:
    """Tasks still alive besides the test's own: must be none after a clean shutdown."""
    return {t for t in asyncio.all_tasks() if t is not asyncio.current_task() and not t.done()}


def apply(book: dict[str, dict[float, float]], message: dict) -> None:
    """A client's book: snapshot resets, size 0 deletes, else insert or update."""
    if message["type"] == "snapshot":
        book["b"], book["a"] = {}, {}
    for side in ("b", "a"):
        for price, size in message["data"][side]:
            if size == "0":
                book[side].pop(float(price), None)
            else:
                book[side][float(price)] = float(size)
