"""Synthetic order flow consistent with real candles, for the flow tests: trades inside [low, high]
summing to the candle's volume, the last at the close, and a book around the close."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import numpy as np

from forecaster.candles import Candle, CandleArray
from forecaster.flow.bars import FlowBar, flow_bar
from forecaster.flow.store import FlowStoreWriter
from forecaster.flow.types import BookView, Trade

TRADES_PER_MINUTE = 12
LEVELS = 40
TICK = 0.5


def minute_trades(candle: Candle, rng: np.random.Generator) -> list[Trade]:
    n = int(rng.integers(1, TRADES_PER_MINUTE)) if candle.volume > 0 else 0
    if n == 0:
        return []
    prices = rng.uniform(candle.low, candle.high, n)
    prices[-1] = candle.close
    sizes = rng.dirichlet(np.ones(n)) * candle.volume
    buys = rng.random(n) < 0.5
    times = np.sort(rng.integers(candle.start_ms, candle.end_ms + 1, n))
    return [
        Trade(int(t), float(p), float(s), bool(b), f"{candle.start_ms}-{i}", i)
        for i, (t, p, s, b) in enumerate(zip(times, prices, sizes, buys, strict=True))
    ]


def close_book(candle: Candle, rng: np.random.Generator) -> BookView:
    steps = np.arange(LEVELS) * TICK
    bids = np.stack([candle.close - TICK / 2 - steps, rng.exponential(0.5, LEVELS)], axis=1)
    asks = np.stack([candle.close + TICK / 2 + steps, rng.exponential(0.5, LEVELS)], axis=1)
    return BookView(bids, asks, update_id=candle.start_ms, ts_ms=candle.end_ms)


def minutes(
    candles: CandleArray, seed: int = 0, incomplete_every: int = 97
) -> Iterator[tuple[Candle, FlowBar, list[Trade]]]:
    """Each candle with its bar and trades; every `incomplete_every`-th bar is marked incomplete."""
    rng = np.random.default_rng(seed)
    for i, candle in enumerate(candles.to_candles()):
        trades = minute_trades(candle, rng)
        complete = i % incomplete_every != 1
        bar = flow_bar(candle.start_ms, trades, close_book(candle, rng), len(trades) + 3, complete)
        yield candle, bar, trades


def with_flow(candles: CandleArray, seed: int = 0) -> CandleArray:
    return CandleArray.from_candles([replace(c, flow=bar) for c, bar, _ in minutes(candles, seed)])


def write_store(root: Path, candles: CandleArray, seed: int = 0, raw_trades: bool = False) -> None:
    with FlowStoreWriter(root, raw_trades=raw_trades) as store:
        for candle, bar, trades in minutes(candles, seed):
            store.append(candle, bar, trades)
