"""Block `calendar`: time of day and day of week as points on circles, so 23:59 sits next to 00:00."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from forecaster.candles import DAY_MS, Candle, CandleArray

WEEK_DAYS = 7
# 1970-01-01, day 0 of epoch time, was a Thursday: with Monday as 0, day 0 is weekday 3.
EPOCH_WEEKDAY = 3


@dataclass(frozen=True)
class Calendar:
    """hour_sin/cos: angle of the candle's start within its UTC day; weekday_sin/cos: its UTC weekday
    (Monday 0) on a 7-step circle."""

    @property
    def window(self) -> int:
        return 1

    @property
    def names(self) -> list[str]:
        return ["hour_sin", "hour_cos", "weekday_sin", "weekday_cos"]

    def columns(self, candles: CandleArray) -> list[np.ndarray]:
        day, week = _angles(candles.start_ms)
        return [np.sin(day), np.cos(day), np.sin(week), np.cos(week)]

    def live(self) -> _CalendarLive:
        return _CalendarLive()


class _CalendarLive:
    def push(self, candle: Candle) -> list[float]:
        day, week = _angles(candle.start_ms)
        return [math.sin(day), math.cos(day), math.sin(week), math.cos(week)]


def _angles(start_ms: Any) -> tuple[Any, Any]:
    """Angles of the time within the UTC day and of the weekday (arrays of start times, or one)."""
    days, in_day = divmod(start_ms, DAY_MS)
    return 2 * math.pi * in_day / DAY_MS, 2 * math.pi * ((days + EPOCH_WEEKDAY) % WEEK_DAYS) / WEEK_DAYS
