"""History for train and eval: closed candles of the run's timeframe over the configured period.

`source=bybit`: Bybit REST through the local cache, at the run's interval natively.
`source=replay`: a recorded file (CSV as in ../shared/data, or candles.jsonl; null = the shipped
sample), cut to `data.start`/`data.end` when given and aggregated from 1m on UTC boundaries.
"""

from __future__ import annotations

import asyncio
import logging
import time

import numpy as np

from forecaster.candles import DAY_MS, CandleArray, aggregate, parse_utc_ms
from forecaster.config import Config
from forecaster.errors import UserError

log = logging.getLogger(__name__)


def _bound(text: str | None, key: str) -> int | None:
    if text is None:
        return None
    try:
        return parse_utc_ms(str(text))
    except ValueError as exc:
        raise UserError(f"{key}: {exc}") from exc


def period(config: Config) -> tuple[int | None, int | None]:
    """data.start and data.end in epoch ms (None where not given); a bad value is a one-line UserError."""
    start = _bound(config.data.start, "data.start")
    end = _bound(config.data.end, "data.end")
    if start is not None and end is not None and end <= start:
        raise UserError(f"data.end ({config.data.end}) must be after data.start ({config.data.start})")
    return start, end


def load_history(config: Config) -> CandleArray:
    start, end = period(config)
    timeframe = config.timeframe.name
    if config.source.name == "replay":
        from forecaster.sources.replay import load_recorded

        candles = load_recorded(config.source.path)
        lo = start if start is not None else np.iinfo(np.int64).min
        hi = end if end is not None else np.iinfo(np.int64).max
        candles = candles[(candles.start_ms >= lo) & (candles.start_ms < hi)]
        if timeframe != "1m":
            candles = aggregate(candles, timeframe).candles
    else:
        if start is None:
            start = (end if end is not None else int(time.time() * 1000)) - int(config.data.days * DAY_MS)
        candles = asyncio.run(_download(config, start, end))
    if len(candles) == 0:
        raise UserError(
            f"no {timeframe} candles in the chosen period ({config.data.start} .. {config.data.end}); "
            "widen data.start/data.end or check source.path"
        )
    log.info("history: %d %s candles from %s", len(candles), timeframe, config.source.name)
    return candles


async def _download(config: Config, start: int, end: int | None) -> CandleArray:
    from forecaster.sources.bybit.rest import BybitRest

    async with BybitRest(config.source, config.paths.data_cache) as rest:
        return await rest.klines(start, end, config.timeframe.name)
