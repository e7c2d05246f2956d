"""The candles the emulator serves, as REST rows and WS push items, partial while a candle is open."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from forecaster.candles import MINUTE_MS, CandleArray, aggregate
from forecaster.sources.bybit.protocol import REST_ROW_FIELDS


class Market:
    """The candles of one symbol, served natively at every interval (higher ones aggregated from 1m)."""

    def __init__(self, one_minute: CandleArray, symbol: str) -> None:
        self.symbol = symbol
        self._series: dict[str, CandleArray] = {"1": one_minute}

    def series(self, interval: str) -> CandleArray:
        if interval not in self._series:
            self._series[interval] = aggregate(self._series["1"], f"{interval}m").candles
        return self._series[interval]

    def row(self, interval: str, start_ms: int, now_ms: int) -> dict[str, Any] | None:
        """The candle starting at start_ms as seen at now_ms (partial while open), or None."""
        series = self.series(interval)
        i = int(np.searchsorted(series.start_ms, start_ms))
        if i == len(series) or series.start_ms[i] != start_ms or start_ms > now_ms:
            return None
        step = int(interval) * MINUTE_MS
        fraction = min(1.0, (now_ms - start_ms) / step)
        o, h, lo, c = (float(col[i]) for col in (series.open, series.high, series.low, series.close))
        volume, turnover = float(series.volume[i]), float(series.turnover[i])
        if not math.isfinite(turnover):  # some CSVs have none; Bybit always sends one
            turnover = volume * (h + lo + c) / 3
        if fraction < 1.0:  # a plausible candle in progress: the close walks from open to the final close
            c = o + (c - o) * fraction
            h, lo = max(o, c), min(o, c)
            volume, turnover = volume * fraction, turnover * fraction
        return {
            "start": start_ms,
            "end": start_ms + step - 1,
            "interval": interval,
            "open": repr(o),
            "close": repr(c),
            "high": repr(h),
            "low": repr(lo),
            "volume": repr(volume),
            "turnover": repr(turnover),
            "confirm": fraction >= 1.0,
            "timestamp": min(now_ms, start_ms + step - 1),
        }

    def rows(self, interval: str, start: int | None, end: int, limit: int, now_ms: int) -> list[list[str]]:
        """REST rows with start in [start, end], started by now_ms: newest first, at most limit."""
        series = self.series(interval)
        hi = int(np.searchsorted(series.start_ms, min(end, now_ms), side="right"))
        lo = 0 if start is None else int(np.searchsorted(series.start_ms, start))
        lo = max(lo, hi - limit)
        out = []
        for i in range(hi - 1, lo - 1, -1):
            item = self.row(interval, int(series.start_ms[i]), now_ms)
            assert item is not None
            out.append([str(item["start"]), *(item[k] for k in REST_ROW_FIELDS)])
        return out
