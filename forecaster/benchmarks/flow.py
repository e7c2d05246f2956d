"""Order flow: publicTrade pushes parsed, order-book deltas applied (depth 50 and 200), with a view each;
flow bars per candle and the flow store's bytes (forecaster/benchmarks/flow_bars.py)."""

from __future__ import annotations

import json
import random
import time

from forecaster.benchmarks.candles import best_seconds
from forecaster.benchmarks.flow_bars import bar_figures, store_bytes_per_hour
from forecaster.flow.book import OrderBook, parse_book
from forecaster.flow.trades import parse_trades
from forecaster.sources.bybit.protocol import BOOK_DELTA, BOOK_SNAPSHOT, BUY, SELL, book_topic, trade_topic

SYMBOL = "BTCUSDT"
FULL_TRADES = 400_000
QUICK_TRADES = 40_000
TRADES_PER_PUSH = (1, 10, 100)  # Bybit batches trades matched together, up to 1024 a push
FULL_DELTAS = 200_000
QUICK_DELTAS = 20_000
DEPTHS = (50, 200)
LEVELS_PER_DELTA = 4  # level changes in one delta message (both sides together)
DELETE_SHARE = 0.2  # of level changes: size "0"
MID, TICK = 96410.0, 0.1
VIEWS = 2_000
SEED = 17


def trade_pushes(trades: int, per_push: int, seed: int = SEED) -> list[str]:
    """`trades` trades in pushes of `per_push`, in Bybit's shape, with increasing ids."""
    rng = random.Random(seed)
    texts = []
    for first in range(0, trades, per_push):
        data = [
            {
                "i": str(2290000000000000000 + i),
                "T": 1768480452115 + i,
                "p": f"{MID + rng.uniform(-50, 50):.1f}",
                "v": f"{rng.expovariate(50):.6f}",
                "S": BUY if rng.random() < 0.5 else SELL,
                "s": SYMBOL,
                "BT": False,
                "RPI": False,
                "seq": 82550417112 + i,
            }
            for i in range(first, min(first + per_push, trades))
        ]
        push = {"topic": trade_topic(SYMBOL), "ts": 1768480452118, "type": "snapshot", "data": data}
        texts.append(json.dumps(push))
    return texts


def book_messages(depth: int, deltas: int, seed: int = SEED) -> list[dict]:
    """A snapshot of `depth` levels a side around MID, then `deltas` deltas that update, delete and
    re-insert levels on its price grid (never crossing), with contiguous update ids."""
    rng = random.Random(seed)
    topic = book_topic(depth, SYMBOL)

    def push(kind: str, u: int, bids: list[list[str]], asks: list[list[str]]) -> dict:
        data = {"s": SYMBOL, "b": bids, "a": asks, "u": u, "seq": u}
        return {"topic": topic, "ts": u, "type": kind, "data": data, "cts": u}

    bid_prices = [f"{MID - TICK * (k + 1):.1f}" for k in range(depth)]
    ask_prices = [f"{MID + TICK * k:.1f}" for k in range(depth)]
    levels = ([[p, "1.000"] for p in bid_prices], [[p, "1.000"] for p in ask_prices])
    messages = [push(BOOK_SNAPSHOT, 1, *levels)]
    for u in range(2, deltas + 2):
        bids: list[list[str]] = []
        asks: list[list[str]] = []
        for _ in range(LEVELS_PER_DELTA):
            side, prices = (bids, bid_prices) if rng.random() < 0.5 else (asks, ask_prices)
            size = "0" if rng.random() < DELETE_SHARE else f"{rng.uniform(0.001, 5):.3f}"
            side.append([prices[rng.randrange(depth)], size])
        messages.append(push(BOOK_DELTA, u, bids, asks))
    return messages


def _trades(total: int) -> dict[str, object]:
    out: dict[str, object] = {}
    for per_push in TRADES_PER_PUSH:
        texts = trade_pushes(total, per_push)
        seconds = best_seconds(lambda texts=texts: [parse_trades(text) for text in texts])
        out[f"trades_parsed_per_s_{per_push}_per_push"] = round(total / seconds)
    return out


def _book(depth: int, deltas: int) -> dict[str, object]:
    messages = book_messages(depth, deltas)
    texts = [json.dumps(message) for message in messages]

    def apply_all() -> None:
        book = OrderBook(depth)
        for message in messages:
            book.apply(message)

    def parse_and_apply_all() -> None:
        book = OrderBook(depth)
        for text in texts:
            book.apply(parse_book(text))

    applied_s = best_seconds(apply_all)
    parsed_s = best_seconds(parse_and_apply_all)
    book = OrderBook(depth)
    started = time.perf_counter()
    for message in messages[:VIEWS]:  # as the stream does: a view of the book after each message
        book.apply(message)
        book.view()
    with_view_us = (time.perf_counter() - started) / VIEWS * 1e6
    return {
        f"book_deltas_applied_per_s_depth{depth}": round(len(messages) / applied_s),
        f"book_levels_applied_per_s_depth{depth}": round(len(messages) * LEVELS_PER_DELTA / applied_s),
        f"book_deltas_parsed_and_applied_per_s_depth{depth}": round(len(messages) / parsed_s),
        f"book_delta_with_view_us_depth{depth}": round(with_view_us, 1),
    }


def run(quick: bool) -> dict[str, object]:
    out: dict[str, object] = {"book_levels_per_delta": LEVELS_PER_DELTA}
    out.update(_trades(QUICK_TRADES if quick else FULL_TRADES))
    for depth in DEPTHS:
        out.update(_book(depth, QUICK_DELTAS if quick else FULL_DELTAS))
    out.update(bar_figures(quick))
    out.update(store_bytes_per_hour(quick))
    return out
