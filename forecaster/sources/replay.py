"""source=replay: recorded candles replayed as if live, from CSVs as in ../shared/data or a candles.jsonl.

`path` is one file, a glob or a list (forecaster/sources/files.py). Training keeps each file apart as
its own labelled history (files of different venues may cover the same minutes); live replay and
eval take the files as one series, which they must then form without overlapping.

Same shape as the Bybit stream (an async iterator of confirmed 1m candles), so live mode, demos and
evaluation on history run the very same code path as a real session.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from forecaster.candles import Candle, CandleArray, CandleError, aggregate, concat_candles, read_csv
from forecaster.checks import Check, Status
from forecaster.config import SinkConfig
from forecaster.data import SAMPLE_CSV
from forecaster.errors import ConfigError
from forecaster.recording import recorded_candles
from forecaster.schema import bounded
from forecaster.sources.base import Connection, LabelledHistory, WarmUp
from forecaster.sources.files import candle_files, file_label

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
    # with the flow bars a live session recorded beside its candles (under sink.flow's default name)
    records = recorded_candles(path, path.with_name(SinkConfig.flow))
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
    path: Any = None  # str | list[str] | None: a file, a glob or a list of them; null: the shipped sample
    speed: float = bounded(0.0, ge=0)

    def files(self) -> list[Path]:
        """The files `path` names, each with its own label (a file name used twice is one line)."""
        files = [SAMPLE_CSV] if self.path is None else candle_files(self.path)
        labels = [file_label(f) for f in files]
        twice = sorted({label for label in labels if labels.count(label) > 1})
        if twice:
            raise ConfigError(f"source.path: two files are both labelled {twice[0]}; rename one")
        return files

    def histories(
        self, timeframe: str, start: int | None, end: int | None, days: float, paths: PathsConfig
    ) -> list[LabelledHistory]:
        """Each file cut to [start, end) and aggregated from 1m on UTC boundaries; `days` is not used."""
        lo = start if start is not None else np.iinfo(np.int64).min
        hi = end if end is not None else np.iinfo(np.int64).max
        out = []
        for path in self.files():
            candles = load_recorded(path)
            candles = candles[(candles.start_ms >= lo) & (candles.start_ms < hi)]
            if timeframe != BASE_TIMEFRAME:
                candles = aggregate(candles, timeframe).candles
            out.append(LabelledHistory(file_label(path), candles))
        return out

    def history(
        self, timeframe: str, start: int | None, end: int | None, days: float, paths: PathsConfig
    ) -> CandleArray:
        """The files as one series (they must not overlap in time), cut and aggregated as in `histories`."""
        return _one_series([h.candles for h in self.histories(timeframe, start, end, days, paths)], timeframe)

    def origin(self) -> str:
        return ", ".join(str(path) for path in self.files())

    async def connect(
        self, stack: contextlib.AsyncExitStack, warmups: Sequence[WarmUp], paths: PathsConfig
    ) -> Connection:
        candles = _one_series([load_recorded(path) for path in self.files()], BASE_TIMEFRAME)
        return Connection([[] for _ in warmups], ReplayStream(candles, self.speed))

    def checks(self, paths: PathsConfig, network: bool) -> list[Check]:
        try:
            files = self.files()
        except ConfigError as exc:
            return [Check("replay data present", Status.FAIL, str(exc))]
        problem = next((f"{f} not found" for f in files if not f.is_file()), None)
        try:
            for f in [] if problem else files:
                load_recorded(f)  # read through as a run would: a truncated file fails here, not mid-run
        except CandleError as exc:
            problem = str(exc)
        detail = problem or ", ".join(str(f) for f in files)
        return [
            Check("replay data present", Status.FAIL if problem else Status.OK, detail),
            Check("network", Status.SKIP, "source=replay needs none"),
        ]


def _one_series(parts: list[CandleArray], timeframe: str) -> CandleArray:
    """Histories joined in time order; files covering the same minutes cannot form one series."""
    parts = sorted((p for p in parts if len(p)), key=lambda p: int(p.start_ms[0]))
    for before, after in itertools.pairwise(parts):
        if after.start_ms[0] <= before.start_ms[-1]:
            raise CandleError(
                "source.path: these files overlap in time; live replay and eval need one series "
                "(mode=train keeps files apart)"
            )
    return concat_candles(parts, timeframe)


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
