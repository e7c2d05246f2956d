"""JSONL records: append, resume without duplicates, survive a torn last line, skip bad lines."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from forecaster.candles import read_csv
from forecaster.config import SinkConfig
from forecaster.data import SAMPLE_CSV
from forecaster.direction import Direction
from forecaster.recording import (
    FactRecord,
    JsonlWriter,
    PredictionRecord,
    RunRecords,
    candle_record,
    read_jsonl,
)

CANDLES = read_csv(SAMPLE_CSV)[:50].to_candles()


def _write(path: Path, candles) -> JsonlWriter:
    with JsonlWriter(path, "ts_start") as writer:
        for candle in candles:
            writer.append(candle_record(candle))
    return writer


def test_candle_records_have_the_designed_fields(tmp_path: Path) -> None:
    _write(tmp_path / "c.jsonl", CANDLES[:2])
    first = json.loads((tmp_path / "c.jsonl").read_text().splitlines()[0])
    assert list(first) == [
        "ts_start",
        "ts_end",
        "o",
        "h",
        "l",
        "c",
        "volume",
        "confirmed",
        "turnover",
        "timeframe",
    ]
    assert (
        first["ts_start"] == 1733011200000 and first["ts_end"] == 1733011259999 and first["confirmed"] is True
    )


def test_every_line_is_flushed_as_written(tmp_path: Path) -> None:
    path = tmp_path / "c.jsonl"
    writer = JsonlWriter(path, "ts_start")
    writer.append(candle_record(CANDLES[0]))
    assert len(read_jsonl(path).records) == 1, "a reader must see the record before close"
    writer.close()


def test_restart_resumes_without_duplicates(tmp_path: Path) -> None:
    path = tmp_path / "c.jsonl"
    _write(path, CANDLES[:30])
    again = _write(path, CANDLES[20:])  # overlaps 10 records already there
    assert (again.written, again.skipped) == (20, 10)
    records = read_jsonl(path, "ts_start").records
    assert [r["ts_start"] for r in records] == [c.start_ms for c in CANDLES]


def test_torn_last_line_is_reported_skipped_and_nothing_is_lost(tmp_path: Path, caplog) -> None:
    path = tmp_path / "c.jsonl"
    _write(path, CANDLES[:30])
    data = path.read_bytes()
    cut = data.rstrip(b"\n").rfind(b"\n") + 25  # crash in the middle of the 30th line
    path.write_bytes(data[:cut])
    with caplog.at_level(logging.WARNING):
        contents = read_jsonl(path, "ts_start")
    assert contents.torn_tail and len(contents.records) == 29
    assert "torn last line" in caplog.text
    _write(path, CANDLES[29:])  # restart: the lost record comes again, with the rest
    lines = path.read_bytes().split(b"\n")
    assert lines[29] == data[cut - 24 : cut], "the torn fragment stays, on a line of its own"
    final = read_jsonl(path, "ts_start")
    assert [r["ts_start"] for r in final.records] == [c.start_ms for c in CANDLES]
    assert final.bad_lines == 1 and not final.torn_tail


def test_bad_lines_are_counted_not_fatal(tmp_path: Path) -> None:
    path = tmp_path / "p.jsonl"
    path.write_bytes(b'{"candle_ts": 1}\nnot json\n[1, 2]\n\n{"other": 3}\n\xff\xfe\n{"candle_ts": 2}\n')
    contents = read_jsonl(path, "candle_ts")
    assert [r["candle_ts"] for r in contents.records] == [1, 2]
    assert contents.bad_lines == 4
    writer = JsonlWriter(path, "candle_ts")
    assert not writer.append({"candle_ts": 2}) and writer.append({"candle_ts": 3})
    writer.close()


def test_run_records_write_the_three_files(tmp_path: Path) -> None:
    prediction = PredictionRecord(1, 0.6, 0.3, Direction.UP, 60_001, "twohead", "1m", 0.4, True)
    fact = FactRecord(0, 60_000, 100.0, 101.0, 1.0, 100.0, Direction.UP)
    with RunRecords(SinkConfig(), tmp_path) as records:
        assert records.add_candle(CANDLES[0]) and not records.add_candle(CANDLES[0])
        assert records.add_prediction(prediction) and not records.add_prediction(prediction)
        assert records.add_fact(fact)
    assert read_jsonl(tmp_path / "predictions.jsonl").records == [
        {
            "candle_ts": 1,
            "p_up": 0.6,
            "p_down": 0.3,
            "direction": "UP",
            "target_ts": 60_001,
            "model": "twohead",
            "timeframe": "1m",
            "latency_ms": 0.4,
            "trained": True,
            "spread": 0.0,
        }
    ]
    assert list(read_jsonl(tmp_path / "facts.jsonl").records[0]) == [
        "prev_ts",
        "candle_ts",
        "close_prev",
        "close_curr",
        "delta",
        "ret_bps",
        "direction",
    ]
    assert len(read_jsonl(tmp_path / "candles.jsonl").records) == 1


def test_non_finite_values_are_refused_before_writing(tmp_path: Path) -> None:
    path = tmp_path / "p.jsonl"
    with JsonlWriter(path, "candle_ts") as writer, pytest.raises(ValueError):
        writer.append({"candle_ts": 1, "p_up": float("nan")})
    assert path.read_bytes() == b""


def _resumed(path: Path, window: int, count: int) -> JsonlWriter:
    """A writer of `count` candle-like records, then a fresh writer resuming it."""
    with JsonlWriter(path, "ts_start", dedupe_window=window) as writer:
        for ts in range(count):
            writer.append({"ts_start": ts, "pad": "x" * 100})
    return JsonlWriter(path, "ts_start", dedupe_window=window)


def test_resume_keeps_count_and_last_key_with_only_the_window_of_keys(tmp_path: Path) -> None:
    path = tmp_path / "c.jsonl"
    writer = _resumed(path, window=50, count=2000)  # over 200 kB: the tail spans several read blocks
    assert (writer.count, writer.last_key, writer.resumed) == (2000, 1999, 2000)
    assert len(writer._recent) == 50
    assert not writer.append({"ts_start": 1999}) and not writer.append({"ts_start": 1950})
    assert writer.beyond_window == 0, "keys still in the window are duplicates, not old ones"
    assert writer.append({"ts_start": 2000}) and writer.count == 2001 and writer.last_key == 2000
    writer.close()


def test_a_key_older_than_the_window_is_skipped_with_one_warning(tmp_path: Path, caplog) -> None:
    path = tmp_path / "c.jsonl"
    with caplog.at_level(logging.WARNING):
        writer = _resumed(path, window=10, count=30)
        assert not writer.append({"ts_start": 5}) and not writer.append({"ts_start": 12})
        assert writer.append({"ts_start": 30})
        for ts in range(31, 45):
            writer.append({"ts_start": ts})
        assert not writer.append({"ts_start": 33}), "let go of the window while writing: taken as written"
    writer.close()
    assert (writer.skipped, writer.beyond_window) == (3, 3)
    assert caplog.text.count("older than the last 10 records") == 1
    assert [r["ts_start"] for r in read_jsonl(path).records] == list(range(45))


def test_a_file_shorter_than_the_window_is_resumed_whole(tmp_path: Path) -> None:
    writer = _resumed(tmp_path / "c.jsonl", window=100, count=30)
    assert writer.append({"ts_start": -1}), "every key is known: an unseen old key is new, not too old"
    assert not writer.append({"ts_start": 0}) and writer.beyond_window == 0
    writer.close()


def test_torn_tail_is_closed_and_counted_out_on_resume(tmp_path: Path) -> None:
    path = tmp_path / "c.jsonl"
    _resumed(path, window=5, count=20).close()
    path.write_bytes(path.read_bytes() + b'{"ts_start": 20, "pa')
    with JsonlWriter(path, "ts_start", dedupe_window=5) as writer:
        assert (writer.count, writer.last_key) == (20, 19)
        assert writer.append({"ts_start": 20})
    contents = read_jsonl(path, "ts_start")
    assert [r["ts_start"] for r in contents.records] == list(range(21)) and contents.bad_lines == 1


def test_an_unterminated_whole_record_counts(tmp_path: Path) -> None:
    path = tmp_path / "c.jsonl"
    path.write_bytes(b'{"ts_start": 1}\n{"ts_start": 2}')
    with JsonlWriter(path, "ts_start", dedupe_window=1) as writer:
        assert (writer.count, writer.last_key) == (2, 2)
        assert not writer.append({"ts_start": 1}) and writer.append({"ts_start": 3})
    assert path.read_bytes() == b'{"ts_start": 1}\n{"ts_start": 2}\n{"ts_start":3}\n'


def test_a_path_to_a_character_device_opens_without_reading_it(tmp_path: Path) -> None:
    link = tmp_path / "full.jsonl"
    link.symlink_to("/dev/full")
    writer = JsonlWriter(link, "ts_start")
    assert (writer.count, writer.last_key) == (0, None)
    with pytest.raises(OSError):
        writer.append({"ts_start": 1})
    with pytest.raises(OSError):  # the line still buffered fails again as the file closes
        writer.close()
