"""The emulator's trades and book agree with its candles, exactly, and anyone can recompute them."""

from __future__ import annotations

import itertools
from dataclasses import replace
from decimal import Decimal
from typing import Any

import numpy as np
import pytest

from forecaster.candles import MINUTE_MS, Candle, read_csv
from forecaster.data import SAMPLE_CSV
from forecaster.emulator.faults import Faults
from forecaster.emulator.flow import book_after, price_text, size_text, trades_for
from forecaster.emulator.flow_topics import BookFeed, FlowMarket
from forecaster.emulator.market import Market
from forecaster.flow.types import Trade
from tests.bybit_fixtures import apply

DATA = read_csv(SAMPLE_CSV)
CANDLES = DATA[:200].to_candles()
SEED = 7


def check_consistent(candle: Candle, trades: list[Trade]) -> None:
    prices = [Decimal(price_text(t.price)) for t in trades]
    assert prices[0] == Decimal(repr(candle.open)) and prices[-1] == Decimal(repr(candle.close))
    assert max(prices) == Decimal(repr(candle.high)) and min(prices) == Decimal(repr(candle.low))
    assert sum(Decimal(size_text(t.size)) for t in trades) == Decimal(repr(candle.volume))
    assert all(t.size > 0 and float(size_text(t.size)) == t.size for t in trades)
    assert all(candle.start_ms <= t.ts_ms <= candle.end_ms for t in trades)
    assert [t.ts_ms for t in trades] == sorted(t.ts_ms for t in trades)
    assert {t.buy for t in trades} == {True, False}


def test_trades_match_their_candle_exactly() -> None:
    previous = None
    for candle in CANDLES:
        trades = trades_for(candle, SEED, 20)
        assert len(trades) >= 20
        check_consistent(candle, trades)
        ids = [int(t.trade_id) for t in trades]
        seqs = [t.seq for t in trades]
        assert ids == sorted(set(ids)) and seqs == sorted(set(seqs))
        if previous is not None:
            assert int(previous[-1].trade_id) < ids[0] and previous[-1].seq < seqs[0]
        previous = trades


def test_trades_are_a_pure_function_of_candle_and_seed() -> None:
    candle = CANDLES[3]
    assert trades_for(candle, SEED) == trades_for(candle, SEED)
    assert trades_for(candle, SEED) != trades_for(candle, SEED + 1)
    assert len(trades_for(candle, SEED, 500)) == 500


def test_edge_candles() -> None:
    flat = replace(CANDLES[0], open=100.0, high=100.0, low=100.0, close=100.0, volume=0.5)
    assert {t.price for t in trades_for(flat, SEED, 5)} == {100.0}
    assert trades_for(replace(CANDLES[0], volume=0.0), SEED) == []
    dust = trades_for(replace(CANDLES[0], volume=0.000003), SEED)  # 3 units: one each
    assert [t.size for t in dust] == [0.000001] * 3 and dust[-1].price == CANDLES[0].close
    with pytest.raises(ValueError, match="trades per candle"):
        trades_for(CANDLES[0], SEED, 0)


def test_book_around_the_last_trade() -> None:
    for trade in trades_for(CANDLES[0], SEED):
        book = book_after(trade, SEED, 50)
        assert len(book.bids) == len(book.asks) == 50 and not book.crossed
        assert book.bids[0, 0] <= trade.price <= book.asks[0, 0]
        assert (np.diff(book.bids[:, 0]) < 0).all() and (np.diff(book.asks[:, 0]) > 0).all()
        assert (book.bids[:, 1] > 0).all() and (book.asks[:, 1] > 0).all()
        cents = np.concatenate((book.bids[:, 0], book.asks[:, 0])) * 100
        assert np.array_equal(cents, np.rint(cents))


class _Connection:
    """The emulator's side of one client connection, as the book topic sees it (server.WsSession)."""

    book_deltas = 0

    async def send(self, message: dict[str, Any]) -> None:
        raise AssertionError("the feed returns its messages here")


def test_deltas_rebuild_the_true_book_and_faults_break_it_as_told() -> None:
    flow = FlowMarket(Market(DATA, "BTCUSDT"), SEED, 20)
    trades = [t for c in CANDLES[:3] for t in trades_for(c, SEED, 20)]
    for faults in (Faults(), Faults(book_gap_every=5, book_cross_every=7)):
        feed = BookFeed(_Connection(), flow, faults, "orderbook.50.BTCUSDT", 50)
        feed.last = trades[0]
        book: dict[str, dict[float, float]] = {}
        apply(book, feed.snapshot(1000, 0))
        update_ids, crossed = [1000], []
        for trade in trades[1:]:
            message = feed.after(trade, trade.ts_ms)
            if message is None:
                continue
            apply(book, message)
            update_ids.append(message["data"]["u"])
            crossed.append(max(book["b"]) >= min(book["a"]))
            true = book_after(trade, SEED, 50)
            if not crossed[-1]:
                assert book["b"] == dict(true.bids.tolist()) and book["a"] == dict(true.asks.tolist())
        steps = np.diff(update_ids)
        if faults.book_gap_every:
            assert set(steps) == {1, 2} and sum(crossed) == len(crossed) // 7
        else:
            assert set(steps) == {1} and not any(crossed)


def test_book_faults_count_the_deltas_of_a_connection_across_resubscribes() -> None:
    """A cross every 2 deltas resubscribes before a gap every 3 could come, were the count per topic."""
    flow = FlowMarket(Market(DATA, "BTCUSDT"), SEED, 20)
    trades = [t for c in CANDLES[:3] for t in trades_for(c, SEED, 20)]
    connection, faults, steps = _Connection(), Faults(book_gap_every=3, book_cross_every=2), []
    for _ in range(3):  # each subscription sends two deltas, the second crossed
        feed = BookFeed(connection, flow, faults, "orderbook.50.BTCUSDT", 50)
        feed.last = trades[0]
        feed.snapshot(1000, 0)
        deltas = list(itertools.islice(filter(None, (feed.after(t, t.ts_ms) for t in trades[1:])), 2))
        steps += [m["data"]["u"] - 1000 for m in deltas]
    assert connection.book_deltas == 6 and steps[2] == 2, "the 3rd delta of the connection skips an id"


def test_flow_market_caches_and_finds_the_last_trade() -> None:
    flow = FlowMarket(Market(DATA, "BTCUSDT"), SEED, 20)
    start = CANDLES[5].start_ms
    trades, times = flow.trades(start)
    assert trades == trades_for(CANDLES[5], SEED, 20) and flow.trades(start)[0] is trades
    assert flow.last_trade(start + MINUTE_MS - 1) == trades[-1]
    assert flow.last_trade(times[0]) == trades[0]
    assert flow.trades(int(DATA.start_ms[-1]) + MINUTE_MS) == ([], [])
