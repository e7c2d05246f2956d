"""History for train and eval: closed candles of the run's timeframe over the configured period.

Where they come from is the source's business (CandleSource.history): Bybit REST through the local
cache, or recorded files cut to the period and aggregated from 1m. Training takes them labelled and
apart (`load_histories`: one per file or venue); eval takes one series (`load_history`).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from forecaster.candles import CandleArray, parse_utc_ms
from forecaster.errors import UserError

if TYPE_CHECKING:
    from forecaster.config import DataConfig, PathsConfig
    from forecaster.sources.base import CandleSource, LabelledHistory

log = logging.getLogger(__name__)


def _bound(text: str | None, key: str) -> int | None:
    if text is None:
        return None
    try:
        return parse_utc_ms(str(text))
    except ValueError as exc:
        raise UserError(f"{key}: {exc}") from exc


def period(data: DataConfig) -> tuple[int | None, int | None]:
    """data.start and data.end in epoch ms (None where not given); a bad value is a one-line UserError."""
    start = _bound(data.start, "data.start")
    end = _bound(data.end, "data.end")
    if start is not None and end is not None and end <= start:
        raise UserError(f"data.end ({data.end}) must be after data.start ({data.start})")
    return start, end


def chosen_test_block(data: DataConfig) -> tuple[int, int | None] | None:
    """data.test_start/test_end in epoch ms, or None: the test block is then the newest rows."""
    start = _bound(data.test_start, "data.test_start")
    end = _bound(data.test_end, "data.test_end")
    if start is None:
        if end is not None:
            raise UserError("data.test_end needs data.test_start: give the test block's first candle")
        return None
    if end is not None and end <= start:
        raise UserError(f"data.test_end ({data.test_end}) must be after data.test_start ({data.test_start})")
    return start, end


def load_histories(
    source: CandleSource, data: DataConfig, timeframe: str, paths: PathsConfig
) -> list[LabelledHistory]:
    """The period's candles per file or venue, each labelled; files the period leaves empty are dropped."""
    start, end = period(data)
    histories = [h for h in source.histories(timeframe, start, end, data.days, paths) if len(h.candles)]
    if not histories:
        raise UserError(
            f"no {timeframe} candles in the chosen period ({data.start} .. {data.end}); "
            "widen data.start/data.end or check source.path"
        )
    for h in histories:
        log.info("history: %d %s candles from %s (%s)", len(h.candles), timeframe, source.name, h.label)
    return histories


def load_history(source: CandleSource, data: DataConfig, timeframe: str, paths: PathsConfig) -> CandleArray:
    start, end = period(data)
    candles = source.history(timeframe, start, end, data.days, paths)
    if len(candles) == 0:
        raise UserError(
            f"no {timeframe} candles in the chosen period ({data.start} .. {data.end}); "
            "widen data.start/data.end or check source.path"
        )
    log.info("history: %d %s candles from %s", len(candles), timeframe, source.name)
    return candles
