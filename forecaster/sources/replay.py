"""Recorded candles replayed as if live: a CSV as in ../shared/data, or a run's candles.jsonl.

Same shape as the Bybit stream (an async iterator of confirmed 1m candles), so
live mode, demos and evaluation on history run the very same code path as a real session.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from forecaster.candles import Candle, CandleArray, CandleError, read_csv
from forecaster.data import SAMPLE_CSV
from forecaster.recording import CANDLE_KEY, candle_from_record, read_jsonl


def load_recorded(path: str | Path | None) -> CandleArray:
    """Candles of a CSV(.gz) or candles.jsonl (confirmed 1m candles only); None: the shipped sample."""
    path = Path(path) if path else SAMPLE_CSV
    if path.suffix != ".jsonl":
        return read_csv(path)
    if not path.is_file():
        raise CandleError(f"cannot read candles from {path}: no such file")
    records = (candle_from_record(r) for r in read_jsonl(path, CANDLE_KEY).records)
    candles = [c for c in records if c.confirmed and c.timeframe == "1m"]
    if not candles:
        raise CandleError(f"{path}: no confirmed 1m candles")
    return CandleArray.from_candles(candles).validate()


class ReplayStream:
    """Candles one at a time, `speed` per second (0: as fast as the consumer takes them)."""

    def __init__(self, candles: CandleArray, speed: float) -> None:
        self.candles = candles
        self.delay_s = 1.0 / speed if speed > 0 else 0.0
        self._next = 0

    def __aiter__(self) -> ReplayStream:
        return self

    async def __anext__(self) -> Candle:
        if self._next >= len(self.candles):
            raise StopAsyncIteration
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        candle = self.candles.candle(self._next)
        self._next += 1
        return candle
