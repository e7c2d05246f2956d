"""Flow bars: every field against a hand computation, empty minutes and books, records, aggregation."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from forecaster.candles import aggregate, read_csv
from forecaster.config import SinkConfig
from forecaster.data import SAMPLE_CSV
from forecaster.flow.bars import (
    COLUMN,
    FLOW_COLUMNS,
    FlowBar,
    bar_from_record,
    bar_record,
    flow_bar,
    flow_bar_arrays,
)
from forecaster.flow.types import BookView, Trade
from forecaster.recording import FLOW_KEY, RunRecords, read_jsonl
from tests.flow_synthetic import with_flow

TRADES = [  # price, size, taker buys
    Trade(1, 100.0, 1.0, True, "a", 1),
    Trade(2, 101.0, 2.0, False, "b", 2),
    Trade(3, 102.0, 3.0, True, "c", 3),
    Trade(4, 99.0, 0.5, False, "d", 4),
]
BOOK = BookView(
    bids=np.array([[99.99, 1.0], [99.96, 2.0], [99.92, 4.0], [99.70, 8.0]]),
    asks=np.array([[100.01, 3.0], [100.04, 1.0], [100.08, 5.0], [100.30, 7.0]]),
    update_id=7,
    ts_ms=59_999,
)


def test_each_field_matches_a_hand_computation() -> None:
    bar = flow_bar(0, TRADES, BOOK, 42, True)
    expected = {
        "buy_volume": 4.0,
        "sell_volume": 2.5,
        "buy_count": 2,
        "sell_count": 2,
        "vwap": (100 + 202 + 306 + 49.5) / 6.5,
        "max_size": 3.0,
        "imbalance": 1.5 / 6.5,
        # sizes sorted 0.5, 1, 2, 3: linear interpolation at q * 3
        "size_q25": 0.875,
        "size_q50": 1.5,
        "size_q75": 2.25,
        "size_q90": 2.7,
        "bid": 99.99,
        "ask": 100.01,
        "spread_bps": 0.02 / 100.0 * 1e4,
        "microprice": (99.99 * 3 + 100.01 * 1) / 4,
        # bands around mid 100.00: 5 bps = [99.95, 100.05], 10 = [99.90, 100.10], 25 = [99.75, 100.25]
        "bid_depth_5": 3.0,
        "ask_depth_5": 4.0,
        "bid_depth_10": 7.0,
        "ask_depth_10": 9.0,
        "bid_depth_25": 7.0,
        "ask_depth_25": 9.0,
        "book_imb_5": -1 / 7,
        "book_imb_10": -2 / 16,
        "book_imb_25": -2 / 16,
        "book_updates": 42,
        "complete": True,
    }
    assert set(expected) == set(FLOW_COLUMNS)
    for name, value in expected.items():
        assert getattr(bar, name) == pytest.approx(value, rel=1e-12), name
    assert bar.start_ms == 0
    quantiles = np.quantile([t.size for t in TRADES], [0.25, 0.5, 0.75, 0.9])
    assert [bar.size_q25, bar.size_q50, bar.size_q75, bar.size_q90] == pytest.approx(quantiles.tolist())
    # the columns form gives the same bar; the order of the trades does not matter
    price, size, buy = (np.array([getattr(t, k) for t in TRADES[::-1]]) for k in ("price", "size", "buy"))
    assert flow_bar_arrays(0, price, size, buy, BOOK, 42, True) == pytest.approx(bar)


def test_a_minute_without_trades_or_book_is_measured_as_nothing_never_as_zero_prices() -> None:
    bar = flow_bar(60_000, [], None, 0, False)
    assert (bar.buy_volume, bar.sell_volume, bar.buy_count, bar.sell_count, bar.imbalance) == (0, 0, 0, 0, 0)
    assert math.isnan(bar.vwap) and math.isnan(bar.size_q50) and math.isnan(bar.bid)
    assert math.isnan(bar.spread_bps) and math.isnan(bar.book_imb_5) and not bar.complete
    one_sided = BookView(BOOK.bids, np.empty((0, 2)), 1, 0)
    bar = flow_bar(60_000, TRADES[:1], one_sided, 1, True)
    assert bar.bid == 99.99 and math.isnan(bar.ask) and math.isnan(bar.microprice)
    assert bar.size_q25 == bar.size_q90 == bar.max_size == 1.0 and bar.imbalance == 1.0


def test_record_round_trip_keeps_nan_as_null_and_types() -> None:
    for bar in (flow_bar(0, TRADES, BOOK, 3, True), flow_bar(60_000, [], None, 0, False)):
        record = json.loads(json.dumps(bar_record(bar), allow_nan=False))
        back = bar_from_record(record)
        assert np.array_equal(back.row(), bar.row(), equal_nan=True) and back.start_ms == bar.start_ms
        assert type(back.buy_count) is int and type(back.complete) is bool
        assert FlowBar.from_row(bar.start_ms, bar.row()).row() == pytest.approx(bar.row(), nan_ok=True)


def test_run_records_write_flow_resume_and_survive_a_torn_line(tmp_path) -> None:
    sink = SinkConfig()
    with RunRecords(sink, tmp_path) as records:
        assert not (tmp_path / sink.flow).exists() or records.flow is None
    assert not (tmp_path / sink.flow).exists()  # sessions without flow keep their run dir as it was
    bars = [flow_bar(i * 60_000, TRADES, BOOK, i, i != 1) for i in range(4)]
    with RunRecords(sink, tmp_path, flow=True) as records:
        assert [records.add_flow(b) for b in bars[:2]] == [True, True]
    with (tmp_path / sink.flow).open("ab") as handle:
        handle.write(b'{"ts_start": 120000, "buy_vol')  # a crash mid-write
    with RunRecords(sink, tmp_path, flow=True) as records:
        assert [records.add_flow(b) for b in bars] == [False, False, True, True]
        assert records.flow in list(records.writers())
    contents = read_jsonl(tmp_path / sink.flow, FLOW_KEY)
    assert contents.bad_lines == 1 and not contents.torn_tail
    got = [bar_from_record(r) for r in contents.records]
    assert [b.start_ms for b in got] == [0, 60_000, 120_000, 180_000]
    assert [b.complete for b in got] == [True, False, True, True]


def test_bars_aggregate_like_their_candles() -> None:
    candles = with_flow(read_csv(SAMPLE_CSV)[:600])
    assert candles.flow is not None
    five = aggregate(candles, "5m").candles
    assert five.flow is not None and len(five.flow) == len(five)
    first = int(np.searchsorted(candles.start_ms, five.start_ms[0]))
    rows, bucket = candles.flow[first : first + 5], five.flow[0]
    for name in ("buy_volume", "sell_volume", "buy_count", "sell_count", "book_updates"):
        assert bucket[COLUMN[name]] == pytest.approx(rows[:, COLUMN[name]].sum())
    volume = rows[:, COLUMN["buy_volume"]] + rows[:, COLUMN["sell_volume"]]
    traded = volume > 0
    vwap = (rows[traded, COLUMN["vwap"]] @ volume[traded]) / volume.sum()
    assert bucket[COLUMN["vwap"]] == pytest.approx(vwap)
    assert bucket[COLUMN["max_size"]] == rows[:, COLUMN["max_size"]].max()
    assert bucket[COLUMN["bid"]] == rows[-1, COLUMN["bid"]] and math.isnan(bucket[COLUMN["size_q50"]])
    assert bucket[COLUMN["complete"]] == rows[:, COLUMN["complete"]].min()
    first_bar = five.candle(0).flow
    assert first_bar is not None and first_bar.start_ms == five.start_ms[0]
    # volume of the trades is the candle volume (the synthetic flow's rule), so it adds up at 5m too
    assert five.flow[:, COLUMN["buy_volume"]] + five.flow[:, COLUMN["sell_volume"]] == pytest.approx(
        five.volume
    )
