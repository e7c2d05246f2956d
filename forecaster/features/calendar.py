"""Block `calendar`: time of day and day of week as points on circles, so 23:59 sits next to 00:00."""

from __future__ import annotations

from dataclasses import dataclass

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

    def batch(self, candles: CandleArray) -> np.ndarray:
        return _rows(candles.start_ms)

    def live(self) -> _CalendarLive:
        return _CalendarLive()


class _CalendarLive:
    def push(self, candle: Candle) -> np.ndarray:
        return _rows(np.array([candle.start_ms]))[0]


def _rows(start_ms: np.ndarray) -> np.ndarray:
    """(T, 4): hour_sin, hour_cos, weekday_sin, weekday_cos of each start time."""
    days, in_day = np.divmod(start_ms, DAY_MS)
    day_angle = 2 * np.pi * in_day / DAY_MS
    week_angle = 2 * np.pi * ((days + EPOCH_WEEKDAY) % WEEK_DAYS) / WEEK_DAYS
    return np.stack([np.sin(day_angle), np.cos(day_angle), np.sin(week_angle), np.cos(week_angle)], axis=1)
