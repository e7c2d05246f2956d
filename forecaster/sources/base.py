"""What every candle source offers: closed candles of the past (history) and a live feed of 1m candles.

A source is one class plus one YAML file (conf/source/<name>.yaml with `_target_`); its dataclass
fields are the option's keys. Modes never ask which source they have: train and eval call
`history`, live and facts enter `connect` through forecaster.sources.feed.MinuteFeed.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from forecaster.candles import MINUTE_MS, Candle, CandleArray, timeframe_ms

if TYPE_CHECKING:
    from forecaster.checks import Check
    from forecaster.config import PathsConfig
    from forecaster.flow.bars import FlowBar
    from forecaster.flow.types import Trade
    from forecaster.sources.bybit.flow_feed import FlowFeed


@dataclass(frozen=True)
class WarmUp:
    """History one consumer needs before the stream: `candles` of `timeframe`.

    `resume_after`: start of the last candle (of this timeframe) a previous session recorded.
    The warm-up then ends at it and the stream continues right after it, so the candles that
    closed while nothing ran are backfilled from REST instead of leaving a gap in the records.
    """

    timeframe: str
    candles: int
    resume_after: int | None = None


def covered_until(warm: Sequence[Candle]) -> int | None:
    """Start of the last 1m candle inside a warm-up (None: empty); later minutes are new to it."""
    if not warm:
        return None
    return warm[-1].start_ms + timeframe_ms(warm[-1].timeframe) - MINUTE_MS


@dataclass(frozen=True)
class LabelledHistory:
    """One file's (or one REST download's) closed candles, with the label its dataset rows carry."""

    label: str
    candles: CandleArray


@dataclass
class Connection:
    """An entered source: each consumer's warm-up (in request order), the 1m stream, its counters."""

    warmed: list[list[Candle]]
    stream: AsyncIterator[Candle]
    counters: object | None = None  # a dataclass of stream counters, logged as metrics


class CandleSource(Protocol):
    name: str
    symbol: str

    def history(
        self, timeframe: str, start: int | None, end: int | None, days: float, paths: PathsConfig
    ) -> CandleArray:
        """Closed candles of `timeframe` with start in [start, end) (None: open), ascending."""
        ...

    def histories(
        self, timeframe: str, start: int | None, end: int | None, days: float, paths: PathsConfig
    ) -> list[LabelledHistory]:
        """`history` kept apart per file or venue (they may overlap in time), each labelled, for training."""
        ...

    async def connect(
        self, stack: contextlib.AsyncExitStack, warmups: Sequence[WarmUp], paths: PathsConfig
    ) -> Connection:
        """Warm up every consumer and open the stream; resources go on `stack`, closed by the caller."""
        ...

    def checks(self, paths: PathsConfig, network: bool) -> list[Check]:
        """mode=dryrun's lines about this source: its data, and its endpoint when `network`."""
        ...

    def origin(self) -> str:
        """Where its candles come from (files, a URL), as messages name it."""
        ...


@runtime_checkable
class FlowSource(Protocol):
    """A source that also streams order flow (trades, the book) cut into minute bars: mode=record
    stores them, mode=live attaches them to the candles when a feature block reads flow."""

    def flow_feed(self, on_bar: Callable[[FlowBar, list[Trade]], None], keep_trades: bool) -> FlowFeed:
        """The flow stream, unentered; `on_bar` gets each closed minute's bar (and trades, if kept)."""
        ...
