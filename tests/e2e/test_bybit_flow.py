"""The order-flow stream against the emulator: with its flow faults on, every whole minute's trades
are exactly the emulator's own, and every fault of the book is counted and resynced. Opt-in: the
update-id rule on real Bybit books."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import pytest

from forecaster.candles import MINUTE_MS
from forecaster.emulator.faults import Faults
from forecaster.emulator.flow import trades_for
from forecaster.flow.types import Trade
from forecaster.sources.bybit.flow_stream import BookUpdate, BybitFlowStream, FlowCounters, Trades
from forecaster.sources.bybit.source import BybitSource
from tests.bybit_fixtures import WAIT_S, csv_candles, emulator, fast_source

MINUTES = 5  # whole minutes of trades to compare: about 0.6 s at the emulator's speed


async def record(faults: Faults) -> tuple[list[Trade], list[BookUpdate], FlowCounters, int, int]:
    """Trades and book updates until MINUTES whole minutes have passed; the seed and trades per candle."""
    async with emulator(faults) as emu, BybitFlowStream(fast_source(emu), 50) as stream:
        trades: list[Trade] = []
        books: list[BookUpdate] = []

        async def collect() -> None:
            async for event in stream:
                if isinstance(event, Trades):
                    trades.extend(event.trades)
                    if trades[-1].ts_ms - trades[0].ts_ms > (MINUTES + 1) * MINUTE_MS:
                        return
                elif isinstance(event, BookUpdate):
                    books.append(event)

        await asyncio.wait_for(collect(), WAIT_S)
        return trades, books, stream.counters, emu.flow.seed, emu.flow.per_candle


@pytest.mark.parametrize(
    ("faults", "counted"),
    [
        (Faults(), ()),
        (Faults(trade_duplicate_every=3, book_gap_every=4, book_restart_every=3), ("duplicates", "gaps")),
        (Faults(book_cross_every=5), ("crossed",)),
    ],
    ids=["clean", "duplicates-gaps-restarts", "crossed"],
)
async def test_exact_minutes_and_counted_book_faults(faults: Faults, counted: tuple[str, ...]) -> None:
    trades, books, counters, seed, per_candle = await record(faults)
    first = trades[0].ts_ms // MINUTE_MS * MINUTE_MS + MINUTE_MS  # the first minute may have begun earlier
    for start in range(first, first + MINUTES * MINUTE_MS, MINUTE_MS):
        got = [t for t in trades if start <= t.ts_ms < start + MINUTE_MS]
        assert got == trades_for(csv_candles(start, 1)[0], seed, per_candle)
    assert not any(update.view.crossed for update in books)  # a crossed book is never passed on
    for name in ("duplicates", "gaps", "crossed"):
        assert (getattr(counters, name) > 0) == (name in counted), counters
    assert counters.resyncs == counters.gaps + counters.crossed
    restarts = [u for u in books[1:] if u.snapshot and u.view.update_id == 1]
    assert bool(restarts) == bool(faults.book_restart_every)
    assert counters.malformed == 0 and counters.reconnects == 0


@pytest.mark.network
@pytest.mark.parametrize("depth", [1, 50, 200])
async def test_real_bybit_books_keep_their_update_ids_contiguous(depth: int) -> None:
    """Opt-in (pytest -m network): checks the rule the book relies on, `u` + 1 per delta, on real data."""
    real = replace(BybitSource(), request_timeout_s=15)

    async def updates(stream: BybitFlowStream, wanted: int) -> None:
        seen = 0
        async for event in stream:
            seen += isinstance(event, BookUpdate)
            if seen == wanted:
                return

    async with BybitFlowStream(real, depth) as stream:
        await asyncio.wait_for(updates(stream, 200), 120)  # depth 200: a message every 100 ms
    counters = stream.counters
    assert (counters.gaps, counters.crossed, counters.resyncs, counters.malformed) == (0, 0, 0, 0), counters
