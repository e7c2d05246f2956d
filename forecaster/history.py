"""History for train and eval: closed candles of the run's timeframe over the configured period.

Where they come from is the source's business (CandleSource.history): Bybit REST through the local
cache, or recorded files cut to the period and aggregated from 1m. Training takes them labelled and
apart (`load_histories`: one per file or venue); eval takes one series (`load_history`).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from forecaster.candles import CandleArray, parse_utc_ms, timeframe_ms, utc_text
from forecaster.errors import UserError

if TYPE_CHECKING:
    from forecaster.config import DataConfig, PathsConfig
    from forecaster.sources.base import CandleSource, LabelledHistory

log = logging.getLogger(__name__)
# data.end is exclusive, and eval asks for one candle past the period (the fact of its last call):
# an end up to this many candles after the newest one is no shorter period than asked
END_SLACK_CANDLES = 2


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
        raise UserError(_nothing_in(source, data, timeframe))
    for h in histories:
        log.info("history: %d %s candles from %s (%s)", len(h.candles), timeframe, source.name, h.label)
    _warn_past_the_newest(source, timeframe, end, max(int(h.candles.start_ms[-1]) for h in histories))
    return histories


def load_history(
    source: CandleSource,
    data: DataConfig,
    timeframe: str,
    paths: PathsConfig,
    trained: str | None = None,
) -> CandleArray:
    """One series over the period; `trained` (the model's history, if judging one) helps an empty one."""
    start, end = period(data)
    candles = source.history(timeframe, start, end, data.days, paths)
    if len(candles) == 0:
        hint = f"; the model was trained on {trained}" if trained else ""
        raise UserError(_nothing_in(source, data, timeframe) + hint)
    log.info("history: %d %s candles from %s", len(candles), timeframe, source.name)
    _warn_past_the_newest(source, timeframe, end, int(candles.start_ms[-1]))
    return candles


def _nothing_in(source: CandleSource, data: DataConfig, timeframe: str) -> str:
    return (
        f"no {timeframe} candles in the chosen period ({data.start or 'the start'} .. {data.end or 'now'}) "
        f"of {source.origin()}; widen data.start/data.end or check source.path / source.rest_url"
    )


def _warn_past_the_newest(source: CandleSource, timeframe: str, end: int | None, newest: int) -> None:
    """data.end after the newest candle: the period is shorter than asked (a file ends, or the future)."""
    if end is not None and end > newest + END_SLACK_CANDLES * timeframe_ms(timeframe):
        log.warning(
            "data.end %s UTC is after the newest candle of %s (%s UTC): the period ends there",
            utc_text(end),
            source.origin(),
            utc_text(newest),
        )
