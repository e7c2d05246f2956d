"""Flow bars per candle at realistic sizes (a few hundred trades a minute, a book of depth 200), what
the flow store costs per minute on disk, and per hour at the emulator's rates (its trades and book
per candle, forecaster/emulator/flow.py), bars alone and with raw trades, plain and compressed.

`flow_bar_us_per_candle` is what the recorder does when a minute closes (FlowMinutes: the bar from
the columns it gathered as the trades came); `flow_minute_us_per_candle` is all of a minute's work in
FlowMinutes: its trades taken in pushes of PUSH, a book message, the bar.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from array import array
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import numpy as np

from forecaster.benchmarks.candles import synthetic_history
from forecaster.candles import MINUTE_MS, Candle, CandleArray
from forecaster.emulator.flow import DEFAULT_TRADES_PER_CANDLE, book_after, trades_for
from forecaster.flow.bars import FlowBar, flow_bar, flow_bar_arrays
from forecaster.flow.minutes import FlowMinutes, _Minute
from forecaster.flow.store import CANDLES, FlowStoreWriter, finish, stored_days
from forecaster.flow.types import BookView, Trade

TRADES_PER_MINUTE = 300
PUSH = 10  # trades a push, into FlowMinutes
DEPTH = 200
TICK = 0.01
PRICE = 97_000.0
# distinct minutes, few enough to stay in cache as the one live book and the minute's trades do
MINUTES = 60
REPEAT = (
    5,
    30,
)  # passes over them (quick, full); the fastest counts (other work on a shared machine only slows)

EMULATED_DEPTH = 50  # source.book_depth's default: the book a recording subscribes to
EMULATED_SEED = 0  # the emulator's default --seed
STORED_HOURS = (2, 24)  # hours written to the store (quick, full): a whole day, as it compresses one
KB = 1000


def _minute(start_ms: int, rng: np.random.Generator) -> tuple[list[Trade], BookView]:
    prices = PRICE + rng.normal(0, 5, TRADES_PER_MINUTE)
    sizes = rng.exponential(0.01, TRADES_PER_MINUTE)
    buys = rng.random(TRADES_PER_MINUTE) < 0.5
    trades = [
        Trade(start_ms + i * 200, float(p), float(s), bool(b), str(start_ms + i), i)
        for i, (p, s, b) in enumerate(zip(prices, sizes, buys, strict=True))
    ]
    steps = np.arange(DEPTH) * TICK
    bids = np.stack([PRICE - TICK / 2 - steps, rng.exponential(0.3, DEPTH)], axis=1)
    asks = np.stack([PRICE + TICK / 2 + steps, rng.exponential(0.3, DEPTH)], axis=1)
    return trades, BookView(bids, asks, start_ms, start_ms + MINUTE_MS - 1)


def _best_us(fn, count: int, repeat: int) -> float:
    passes = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        passes.append((time.perf_counter() - started) / count * 1e6)
    return min(passes)


def run(quick: bool) -> dict[str, object]:
    rng = np.random.default_rng(0)
    count, repeat = MINUTES, REPEAT[0] if quick else REPEAT[1]
    starts = [i * MINUTE_MS for i in range(count)]
    minutes = [_minute(start, rng) for start in starts]
    columns = [
        tuple(np.array([getattr(t, k) for t in trades]) for k in ("price", "size", "buy"))
        for trades, _ in minutes
    ]

    # each minute as FlowMinutes has gathered it when it closes (the gathering: `through_minutes`)
    gathered = [
        _Minute(array("d", price), array("d", size), array("d", size[buy]), updates=600)
        for price, size, buy in columns
    ]

    def at_close() -> None:
        for start, minute, (_, book) in zip(starts, gathered, minutes, strict=True):
            minute.bar(start, book, True)

    def from_trades() -> None:
        for start, (trades, book) in zip(starts, minutes, strict=True):
            flow_bar(start, trades, book, 600, True)

    def from_columns() -> None:
        for start, (price, size, buy), (_, book) in zip(starts, columns, minutes, strict=True):
            flow_bar_arrays(start, price, size, buy, book, 600, True)

    def through_minutes() -> None:
        flow = FlowMinutes(grace_ms=0, stale_ms=MINUTE_MS)
        for trades, book in minutes:
            for first in range(0, len(trades), PUSH):
                flow.trades(trades[first : first + PUSH])
            flow.book(book)

    out: dict[str, object] = {
        "flow_bar_trades_per_candle": TRADES_PER_MINUTE,
        "flow_bar_book_depth": DEPTH,
        "flow_bar_us_per_candle": round(_best_us(at_close, count, repeat), 2),
        "flow_bar_columns_us_per_candle": round(_best_us(from_columns, count, repeat), 2),
        "flow_bar_trades_us_per_candle": round(_best_us(from_trades, count, repeat), 2),
        "flow_minute_us_per_candle": round(_best_us(through_minutes, count, repeat), 2),
    }
    bars = [
        flow_bar(start, trades, book, 600, True)
        for start, (trades, book) in zip(starts, minutes, strict=True)
    ]
    candles = [
        Candle(s, s + MINUTE_MS - 1, PRICE, PRICE + 5, PRICE - 5, PRICE + 1, 3.0, 3.0 * PRICE, True)
        for s in starts
    ]
    with tempfile.TemporaryDirectory() as tmp:
        appends = []
        with FlowStoreWriter(tmp) as store:
            for candle, bar in zip(candles, bars, strict=True):
                started = time.perf_counter()
                store.append(candle, bar)
                appends.append(time.perf_counter() - started)
        plain = stored_days(tmp)[0].path.stat().st_size
        out["store_append_us_median"] = round(statistics.median(appends) * 1e6, 1)
        out["store_bytes_per_minute"] = round(plain / count)
    out.update(store_bytes_per_hour(quick))
    return out


def emulated_minutes(candles: CandleArray) -> Iterator[tuple[Candle, FlowBar, list[Trade]]]:
    """Each candle with the bar and trades the emulator serves for it (its default trade rate, the
    book after the candle's last trade; a minute without trades keeps the previous book)."""
    book = None
    for candle in candles.to_candles():
        trades = trades_for(candle, EMULATED_SEED)
        book = book_after(trades[-1], EMULATED_SEED, EMULATED_DEPTH) if trades else book
        yield candle, flow_bar(candle.start_ms, trades, book, len(trades), book is not None), trades


def with_emulated_flow(candles: CandleArray) -> CandleArray:
    """The candles carrying the emulator's flow bars, as source=flow_store gives a recording back."""
    return CandleArray.from_candles([replace(c, flow=bar) for c, bar, _ in emulated_minutes(candles)])


def store_bytes_per_hour(quick: bool) -> dict[str, object]:
    """The flow store's bytes per emulated hour, bars alone and with raw trades: as written (plain)
    and once its day is finished (gzip)."""
    hours = STORED_HOURS[0] if quick else STORED_HOURS[1]
    minutes = list(emulated_minutes(synthetic_history(hours * 60)))
    out: dict[str, object] = {"store_trades_per_candle": DEFAULT_TRADES_PER_CANDLE}
    for raw, label in ((False, "bars"), (True, "bars_and_trades")):
        with tempfile.TemporaryDirectory() as tmp:
            with FlowStoreWriter(tmp, raw_trades=raw) as store:
                for candle, bar, trades in minutes:
                    store.append(candle, bar, trades)
            plain = list(Path(tmp).glob(f"*{CANDLES}"))
            plain_bytes = sum(p.stat().st_size for p in plain)
            gzip_bytes = sum(finish(p).stat().st_size for p in plain)
        out[f"store_kb_per_emulated_hour_{label}"] = round(plain_bytes / hours / KB, 1)
        out[f"store_gzip_kb_per_emulated_hour_{label}"] = round(gzip_bytes / hours / KB, 1)
    return out
