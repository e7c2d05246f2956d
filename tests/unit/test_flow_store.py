"""The flow store: one file per UTC day, finished days compressed atomically and never touched again,
the current day resumed without duplicates after a kill, read back as candles with their flow."""

from __future__ import annotations

import gzip

import numpy as np
import pytest

from forecaster.candles import DAY_MS, CandleArray, CandleError, read_csv
from forecaster.data import SAMPLE_CSV
from forecaster.flow.bars import flow_bar
from forecaster.flow.store import FlowStoreWriter, read_store, read_trades, stored_days
from tests.flow_synthetic import minutes, with_flow, write_store

PER_DAY = 30  # minutes kept around each midnight: small days, three of them


def _three_days() -> CandleArray:
    """The sample's minutes just before and after two midnights: days D (tail), D+1 (both ends), D+2."""
    candles = read_csv(SAMPLE_CSV)
    midnights = np.unique(candles.start_ms - candles.start_ms % DAY_MS)[1:3]
    keep = np.zeros(len(candles), dtype=bool)
    for midnight in midnights:
        keep |= np.abs(candles.start_ms - midnight) < PER_DAY * 60_000
    return candles[keep]


def _same(a: CandleArray, b: CandleArray) -> None:
    assert np.array_equal(a.start_ms, b.start_ms) and np.array_equal(a.close, b.close)
    assert a.flow is not None and b.flow is not None
    assert np.array_equal(a.flow, b.flow, equal_nan=True)


def test_days_are_finished_as_they_end_and_read_back_exactly(tmp_path) -> None:
    candles = _three_days()
    write_store(tmp_path, candles, raw_trades=True)
    names = sorted(p.name for p in tmp_path.iterdir())
    days = [d.day for d in stored_days(tmp_path)]
    assert len(days) == 3
    assert names == sorted(
        [f"{d}.jsonl.gz" for d in days[:2]]
        + [f"{d}.trades.jsonl.gz" for d in days[:2]]
        + [f"{days[2]}.jsonl", f"{days[2]}.trades.jsonl"]
    )
    _same(read_store(tmp_path), with_flow(candles))
    middle = read_store(tmp_path, int(candles.start_ms[10]), int(candles.start_ms[-10]))
    assert len(middle) == len(candles) - 20
    recorded, stored = read_trades(tmp_path), read_store(tmp_path).flow  # the bars' trade fields again
    assert stored is not None
    for (candle, bar, trades), row in zip(minutes(candles), stored, strict=True):
        assert recorded[candle.start_ms] == trades
        again = flow_bar(candle.start_ms, recorded[candle.start_ms], None, bar.book_updates, bar.complete)
        assert list(again[1:12]) == pytest.approx(row[:11].tolist(), nan_ok=True)  # trades, not book
    trades = gzip.decompress((tmp_path / f"{days[0]}.trades.jsonl.gz").read_bytes())
    first_day = candles.start_ms[0] - candles.start_ms[0] % DAY_MS
    assert trades.count(b"\n") == np.count_nonzero(candles.start_ms < first_day + DAY_MS)


def test_a_kill_mid_day_leaves_finished_days_intact_and_a_restart_duplicates_nothing(tmp_path) -> None:
    candles = _three_days()
    flow = list(minutes(candles))
    cut = len(flow) - 10
    writer = FlowStoreWriter(tmp_path)
    for candle, bar, _ in flow[:cut]:
        writer.append(candle, bar)
    writer.close()  # only closes the file handles: every line was flushed, as a SIGKILL would leave it
    days = stored_days(tmp_path)
    finished = {d.path: d.path.read_bytes() for d in days[:2]}
    with days[2].path.open("ab") as handle:
        handle.write(b'{"ts_start": 1, "o": 10')  # killed mid-line
    with FlowStoreWriter(tmp_path) as store:
        written = [store.append(candle, bar) for candle, bar, _ in flow]
        in_finished_days = np.count_nonzero(candles.start_ms < candles.start_ms[-1] // DAY_MS * DAY_MS)
        assert store.late == in_finished_days  # the finished days' minutes are not written again
        assert store.skipped == cut - in_finished_days
    assert written == [False] * cut + [True] * 10
    assert {p: p.read_bytes() for p in finished} == finished
    _same(read_store(tmp_path), with_flow(candles))


def test_a_kill_while_finishing_a_day_is_repaired_and_a_corrupt_day_is_one_line(tmp_path) -> None:
    candles = _three_days()
    write_store(tmp_path, candles[: PER_DAY + 5])  # day 1 finished, day 2 plain
    first, second = stored_days(tmp_path)
    plain_copy = tmp_path / "copy"
    plain_copy.write_bytes(gzip.decompress(first.path.read_bytes()))
    plain_copy.rename(tmp_path / first.path.name.removesuffix(".gz"))  # killed before the plain was removed
    (tmp_path / f"{second.day}.jsonl.gz.tmp").write_bytes(b"half a gzip")  # killed mid-compression
    assert stored_days(tmp_path)[0].path == first.path  # the finished file wins
    write_store(tmp_path, candles)  # resumes day 2; day 3 finishes it and drops day 1's left-over
    assert sorted(p.name for p in tmp_path.iterdir() if p.name < stored_days(tmp_path)[2].day) == [
        first.path.name,
        second.path.name + ".gz",
    ]
    _same(read_store(tmp_path), with_flow(candles))
    first.path.write_bytes(first.path.read_bytes()[:100])
    with pytest.raises(CandleError, match="corrupt"):
        read_store(tmp_path)
    with pytest.raises(CandleError, match="record days"):
        read_store(tmp_path / "nothing")
