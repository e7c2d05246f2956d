"""fact_movement: what candle t did, close(t) against close(t-1).

The fact for candle t+1 is what a prediction made at the close of candle t is judged against.
A zero move is the fact FLAT. A fact needs the candle exactly one interval earlier: across a gap
there is no fact rather than a wrong one.
"""

from __future__ import annotations

from forecaster.candles import Candle, timeframe_ms
from forecaster.direction import Direction
from forecaster.recording import FactRecord

BPS = 10_000  # basis points per unit of return


def fact(prev: Candle, curr: Candle) -> FactRecord:
    delta = curr.close - prev.close
    return FactRecord(
        prev_ts=prev.start_ms,
        candle_ts=curr.start_ms,
        close_prev=prev.close,
        close_curr=curr.close,
        delta=delta,
        ret_bps=BPS * delta / prev.close,
        direction=Direction.UP if delta > 0 else Direction.DOWN if delta < 0 else Direction.FLAT,
    )


class FactTracker:
    """Feed confirmed candles in order; get the fact of each one whose predecessor was seen."""

    def __init__(self) -> None:
        self._prev: Candle | None = None

    def push(self, candle: Candle) -> FactRecord | None:
        prev, self._prev = self._prev, candle
        if prev is None or candle.start_ms - prev.start_ms != timeframe_ms(candle.timeframe):
            return None
        return fact(prev, candle)
