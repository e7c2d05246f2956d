"""source=flow_store: days recorded by mode=record (candles with their flow bars), for training, eval
and replay as if live.

The candles carry their flow (CandleArray.flow, Candle.flow), so a `flow` feature block reads it beside
the prices, in batch and live alike; higher timeframes aggregate both (forecaster/candles.py).
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from forecaster.candles import CandleArray, CandleError, aggregate
from forecaster.checks import Check, Status
from forecaster.flow.store import read_store, stored_days
from forecaster.schema import bounded
from forecaster.sources.base import Connection, LabelledHistory, WarmUp
from forecaster.sources.replay import BASE_TIMEFRAME, ReplayStream

if TYPE_CHECKING:
    from forecaster.config import PathsConfig


@dataclass(frozen=True)
class FlowStoreSource:
    """The store at `path` (null: paths.flow_store), replayed `speed` candles per second (0: no wait)."""

    name: str = "flow_store"
    symbol: str = "BTCUSDT"
    path: str | None = None
    speed: float = bounded(0.0, ge=0)

    def root(self, paths: PathsConfig) -> Path:
        return Path(self.path or paths.flow_store)

    def history(
        self, timeframe: str, start: int | None, end: int | None, days: float, paths: PathsConfig
    ) -> CandleArray:
        """The recorded days cut to [start, end) and aggregated from 1m; `days` is not used (as replay)."""
        candles = read_store(self.root(paths), start, end)
        return candles if timeframe == BASE_TIMEFRAME else aggregate(candles, timeframe).candles

    def histories(
        self, timeframe: str, start: int | None, end: int | None, days: float, paths: PathsConfig
    ) -> list[LabelledHistory]:
        """One series: the store is one venue's recording."""
        return [LabelledHistory(self.name, self.history(timeframe, start, end, days, paths))]

    def origin(self) -> str:
        return f"the flow store {self.path or '(paths.flow_store)'}"

    async def connect(
        self, stack: contextlib.AsyncExitStack, warmups: Sequence[WarmUp], paths: PathsConfig
    ) -> Connection:
        candles = read_store(self.root(paths))
        return Connection([[] for _ in warmups], ReplayStream(candles, self.speed))

    def checks(self, paths: PathsConfig, network: bool) -> list[Check]:
        root = self.root(paths)
        try:
            days = stored_days(root) if root.is_dir() else []
            candles = read_store(root) if days else None
        except CandleError as exc:
            return [Check("flow store", Status.FAIL, str(exc))]
        if candles is None or not len(candles):
            detail = f"{root}: no recorded days; record some with mode=record"
            return [Check("flow store", Status.FAIL, detail)]
        detail = f"{root}: {len(days)} day(s), {len(candles)} candles, {days[0].day} .. {days[-1].day}"
        return [
            Check("flow store", Status.OK, detail),
            Check("network", Status.SKIP, "source=flow_store needs none"),
        ]
