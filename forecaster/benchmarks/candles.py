"""Candles and records: CSV parsing, batch and incremental aggregation, JSONL append."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np

from forecaster.candles import MINUTE_MS, Aggregator, CandleArray, aggregate, read_csv
from forecaster.data import SAMPLE_CSV
from forecaster.recording import JsonlWriter, candle_record

FULL_SIZE = 1_000_000
QUICK_SIZE = 100_000
STREAM_SIZE = 20_000


def synthetic_history(size: int) -> CandleArray:
    """The shipped sample's real values repeated over `size` consecutive minutes."""
    sample = read_csv(SAMPLE_CSV)
    index = np.arange(size) % len(sample)
    start = sample.start_ms[0] + MINUTE_MS * np.arange(size, dtype=np.int64)
    return CandleArray(
        start,
        sample.open[index],
        sample.high[index],
        sample.low[index],
        sample.close[index],
        sample.volume[index],
        sample.turnover[index],
    )


def best_seconds(fn, repeat: int = 3) -> float:
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - started)
    return best


def run(quick: bool) -> dict[str, object]:
    size = QUICK_SIZE if quick else FULL_SIZE
    history = synthetic_history(size)
    csv_s = best_seconds(lambda: read_csv(SAMPLE_CSV))
    out: dict[str, object] = {
        "read_csv_candles_per_s": round(len(read_csv(SAMPLE_CSV)) / csv_s),
        "aggregate_candles": size,
    }
    for timeframe in ("5m", "15m", "60m"):
        seconds = best_seconds(lambda tf=timeframe: aggregate(history, tf))
        out[f"aggregate_{timeframe}_s"] = round(seconds, 4)
    stream = history[:STREAM_SIZE].to_candles()
    aggregator = Aggregator("5m")
    started = time.perf_counter()
    for candle in stream:
        aggregator.push(candle)
    out["incremental_5m_us_per_candle"] = round((time.perf_counter() - started) / len(stream) * 1e6, 2)
    with tempfile.TemporaryDirectory() as tmp:
        writer = JsonlWriter(Path(tmp) / "candles.jsonl", "ts_start")
        started = time.perf_counter()
        for candle in stream:
            writer.append(candle_record(candle))
        out["jsonl_append_us_per_record"] = round((time.perf_counter() - started) / len(stream) * 1e6, 2)
        writer.close()
        started = time.perf_counter()
        JsonlWriter(Path(tmp) / "candles.jsonl", "ts_start").close()
        out["jsonl_resume_s_per_20k_records"] = round(time.perf_counter() - started, 4)
    return out
