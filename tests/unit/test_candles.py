"""Candle parsing of real rows and Bybit fixtures, validation, and aggregation against a plain reference."""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from forecaster.candles import (
    MINUTE_MS,
    Aggregator,
    Candle,
    CandleArray,
    CandleError,
    aggregate,
    candle_from_rest_row,
    candle_from_ws,
    read_csv,
    timeframe_ms,
)
from forecaster.data import SAMPLE_CSV

TIMEFRAMES = ("5m", "15m", "60m")


def test_ws_push_fixtures(fixtures_dir: Path) -> None:
    confirmed = json.loads((fixtures_dir / "kline_push_confirmed.json").read_text())["data"][0]
    candle = candle_from_ws(confirmed)
    assert candle == Candle(
        1768480380000, 1768480439999, 96981.4, 97030.0, 96975.1, 97012.5, 14.213057, 1378693.30481571, True
    )
    still_open = candle_from_ws(json.loads((fixtures_dir / "kline_push_open.json").read_text())["data"][0])
    assert not still_open.confirmed and still_open.start_ms == 1768480440000


def test_rest_rows_newest_first_and_the_open_candle(fixtures_dir: Path) -> None:
    body = json.loads((fixtures_dir / "rest_kline_response.json").read_text())
    candles = [candle_from_rest_row(row, body["time"]) for row in body["result"]["list"]]
    assert [c.confirmed for c in candles] == [False, True, True, True, True]
    assert candles[1].close == 97012.5 and candles[1].high == 97030.0 and candles[1].low == 96975.1
    ws = candle_from_ws(json.loads((fixtures_dir / "kline_push_confirmed.json").read_text())["data"][0])
    assert candles[1] == ws, "REST row and WS push of the same candle must parse to the same Candle"


def test_real_csv_rows(shared_data: Path) -> None:
    for path in sorted(shared_data.glob("*.csv.gz")):
        candles = read_csv(path)
        assert len(candles) > 1000
        assert np.all(np.diff(candles.start_ms) == MINUTE_MS), path.name
    spot = read_csv(shared_data / "btcusdt_1m_binance-spot_20241130_20241229.csv.gz")
    first = spot.candle(0)
    assert first.start_ms == 1733007600000 and first.confirmed and first.turnover > 0
    assert np.isnan(read_csv(shared_data / "btcusdt_1m_binance-spot_20230101_20230128.csv.gz").turnover).all()


def test_shipped_sample_is_five_real_days() -> None:
    sample = read_csv(SAMPLE_CSV)
    assert len(sample) == 5 * 24 * 60
    assert sample.candle(0).start_ms == 1733011200000  # 2024-12-01 00:00 UTC
    assert sample.candle(0).open == 96407.99


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"high": "96000"}, "high"),
        ({"low": "99000"}, "low"),
        ({"volume": "-1"}, "volume"),
        ({"start": 1768480380001}, "aligned"),
        ({"open": "abc"}, "malformed"),
        ({"confirm": "yes"}, "confirm"),
        ({"close": "0"}, "positive"),
    ],
)
def test_bad_candles_are_clear_errors(fixtures_dir: Path, change: dict, message: str) -> None:
    item = json.loads((fixtures_dir / "kline_push_confirmed.json").read_text())["data"][0]
    with pytest.raises(CandleError, match=message):
        candle_from_ws({**item, **change})


def test_bad_csv_names_file_and_row(tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(
        "start_ms,open,high,low,close,volume,turnover\n"
        "1733011200000,10,11,9,10,1,\n"
        "1733011260000,10,9,8,10,1,\n"
    )
    with pytest.raises(CandleError, match=r"bad\.csv: candle 2024-12-01 00:01 UTC \(1m\): high 9.0"):
        read_csv(path)
    path.write_text("time,o\n1,2\n")
    with pytest.raises(CandleError, match="header"):
        read_csv(path)
    with pytest.raises(CandleError, match="cannot read"):
        read_csv(tmp_path / "absent.csv")


def test_damaged_gzip_is_named_as_truncated_or_corrupt(tmp_path: Path) -> None:
    whole = SAMPLE_CSV.read_bytes()
    damaged = {
        "cut.csv.gz": whole[: len(whole) // 2],  # EOFError inside gzip
        "flipped.csv.gz": whole[:5000] + b"\xff" * 10 + whole[5010:],  # zlib.error
        "plain.csv.gz": b"start_ms,open\n",  # not gzip at all
    }
    for name, data in damaged.items():
        (tmp_path / name).write_bytes(data)
        with pytest.raises(CandleError, match=rf"{name} is truncated or corrupt .*copy it again"):
            read_csv(tmp_path / name)


def test_timeframe_ms() -> None:
    assert [timeframe_ms(t) for t in ("1m", "5m", "15m", "60m")] == [60_000, 300_000, 900_000, 3_600_000]
    with pytest.raises(ValueError):
        timeframe_ms("7x")


def reference_aggregate(candles: list[Candle], timeframe: str) -> tuple[list[tuple], list[int]]:
    """The plain way: group minutes by bucket in a dict, keep buckets with every minute."""
    step = timeframe_ms(timeframe)
    buckets: dict[int, list[Candle]] = defaultdict(list)
    for c in candles:
        buckets[c.start_ms - c.start_ms % step].append(c)
    last_start = candles[-1].start_ms
    out, incomplete = [], []
    for start, parts in sorted(buckets.items()):
        if len(parts) == step // MINUTE_MS:
            volume = turnover = 0.0
            for p in parts:
                volume += p.volume
                turnover += p.turnover
            row = (
                start,
                parts[0].open,
                max(p.high for p in parts),
                min(p.low for p in parts),
                parts[-1].close,
            )
            out.append((*row, volume, turnover))
        elif start + step - MINUTE_MS <= last_start:
            incomplete.append(start)
    return out, incomplete


def _rows(array: CandleArray) -> list[tuple]:
    return list(zip(*(c.tolist() for c in array._columns()), strict=True))


def _with_gaps(candles: CandleArray, seed: int) -> CandleArray:
    rng = np.random.default_rng(seed)
    keep = np.ones(len(candles), bool)
    keep[rng.choice(len(candles), size=len(candles) // 200, replace=False)] = False
    keep[100:160] = False  # a whole missing hour
    return candles[keep]


@pytest.mark.parametrize("timeframe", TIMEFRAMES)
@pytest.mark.parametrize("gaps", [False, True])
def test_aggregation_matches_reference_on_real_data(timeframe: str, gaps: bool) -> None:
    candles = read_csv(SAMPLE_CSV)
    candles = _with_gaps(candles, seed=len(timeframe)) if gaps else candles[7:-3]  # start and end mid-bucket
    expected, expected_incomplete = reference_aggregate(candles.to_candles(), timeframe)
    result = aggregate(candles, timeframe)
    got = _rows(result.candles)
    assert len(got) == len(expected)
    np.testing.assert_allclose(np.array(got), np.array(expected), rtol=1e-12)
    assert [r[:5] for r in got] == [r[:5] for r in expected], "prices and starts must be exact"
    assert result.incomplete.tolist() == expected_incomplete
    assert result.candles.timeframe == timeframe
    assert all(c.end_ms == c.start_ms + timeframe_ms(timeframe) - 1 for c in result.candles.to_candles())


@pytest.mark.parametrize("timeframe", ("1m", *TIMEFRAMES))
def test_incremental_equals_batch_exactly(timeframe: str) -> None:
    candles = _with_gaps(read_csv(SAMPLE_CSV), seed=7)
    batch = aggregate(candles, timeframe)
    live = Aggregator(timeframe)
    stream = candles.to_candles()
    emitted = []
    for i, candle in enumerate(stream):
        out = live.push(candle)
        if i % 97 == 0:
            assert live.push(candle) is None, "a duplicate must be ignored"
        if out is not None:
            emitted.append(out)
    assert emitted == batch.candles.to_candles(), "bit-identical candles"
    assert live.incomplete == batch.incomplete.tolist()


def test_pending_bucket_is_neither_emitted_nor_incomplete() -> None:
    candles = read_csv(SAMPLE_CSV)[:12]  # 00:00..00:11: two 5m buckets and two minutes of a third
    result = aggregate(candles, "5m")
    assert len(result.candles) == 2 and result.incomplete.size == 0
    assert result.pending == candles.candle(10).start_ms


def test_aggregator_refuses_unconfirmed_candles() -> None:
    candle = read_csv(SAMPLE_CSV).candle(0)
    unconfirmed = replace(candle, confirmed=False)
    with pytest.raises(ValueError, match="confirmed"):
        Aggregator("5m").push(unconfirmed)
