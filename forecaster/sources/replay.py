"""source=replay: recorded candles replayed as if live, from a CSV as in ../shared/data or a candles.jsonl.

Same shape as the Bybit stream (an async iterator of confirmed 1m candles), so live mode, demos and
evaluation on history run the very same code path as a real session.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from forecaster.candles import Candle, CandleArray, CandleError, aggregate, read_csv
from forecaster.checks import Check, Status
from forecaster.data import SAMPLE_CSV
from forecaster.recording import CANDLE_KEY, candle_from_record, read_jsonl
from forecaster.schema import bounded
from forecaster.sources.base import Connection, WarmUp

if TYPE_CHECKING:
    from forecaster.config import PathsConfig

BASE_TIMEFRAME = "1m"


def load_recorded(path: str | Path | None) -> CandleArray:
    """Candles of a CSV(.gz) or candles.jsonl (confirmed 1m candles only); None: the shipped sample."""
    path = Path(path) if path else SAMPLE_CSV
    if path.suffix != ".jsonl":
        return read_csv(path)
    if not path.is_file():
        raise CandleError(f"cannot read candles from {path}: no such file")
    records = (candle_from_record(r) for r in read_jsonl(path, CANDLE_KEY).records)
    candles = [c for c in records if c.confirmed and c.timeframe == BASE_TIMEFRAME]
    if not candles:
        raise CandleError(f"{path}: no confirmed 1m candles")
    return CandleArray.from_candles(candles).validate()


@dataclass(frozen=True)
class ReplaySource:
    """A recorded file (null: the sample shipped in the package), `speed` candles per second (0: no wait).

    No warm-up: a consumer's window fills from the replay itself.
    """

    name: str = "replay"
    symbol: str = "BTCUSDT"
    path: str | None = None
    speed: float = bounded(0.0, ge=0)

    def history(
        self, timeframe: str, start: int | None, end: int | None, days: float, paths: PathsConfig
    ) -> CandleArray:
        """The file cut to [start, end) and aggregated from 1m on UTC boundaries; `days` is not used."""
        candles = load_recorded(self.path)
        lo = start if start is not None else np.iinfo(np.int64).min
        hi = end if end is not None else np.iinfo(np.int64).max
        candles = candles[(candles.start_ms >= lo) & (candles.start_ms < hi)]
        return candles if timeframe == BASE_TIMEFRAME else aggregate(candles, timeframe).candles

    async def connect(
        self, stack: contextlib.AsyncExitStack, warmups: Sequence[WarmUp], paths: PathsConfig
    ) -> Connection:
        stream = ReplayStream(load_recorded(self.path), self.speed)
        return Connection([[] for _ in warmups], stream)

    def checks(self, paths: PathsConfig, network: bool) -> list[Check]:
        where = Path(self.path) if self.path else SAMPLE_CSV
        found = where.is_file()
        detail = f"{where}{'' if found else ' not found'}"
        return [
            Check("replay data present", Status.OK if found else Status.FAIL, detail),
            Check("network", Status.SKIP, "source=replay needs none"),
        ]


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
