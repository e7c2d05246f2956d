"""The flow stream's events cut into minutes: bars equal to the ones computed from each minute's
own trades and closing book, and incomplete wherever the stream was down or skipped."""

from __future__ import annotations

import math

from forecaster.candles import MINUTE_MS, read_csv
from forecaster.data import SAMPLE_CSV
from forecaster.emulator.flow import book_after, trades_for
from forecaster.flow.bars import FlowBar, flow_bar
from forecaster.flow.minutes import FlowMinutes

SEED, DEPTH, GRACE, STALE = 3, 50, 2_000, 1_000
CANDLES = read_csv(SAMPLE_CSV)[:6].to_candles()


def _same(a: FlowBar, b: FlowBar) -> bool:
    return all(
        x == y or (isinstance(x, float) and math.isnan(x) and math.isnan(y))
        for x, y in zip(a, b, strict=True)
    )


def _play(
    minutes: FlowMinutes, candles: list, skip: int | None = None, down_in: int | None = None
) -> list[FlowBar]:
    """Each candle's trades, each followed by the book it leaves (as the emulator pushes them)."""
    bars: list[FlowBar] = []
    for i, candle in enumerate(candles):
        if i == skip:
            continue
        for j, trade in enumerate(trades_for(candle, SEED)):
            if i == down_in and j == 3:
                minutes.down()
                minutes.up()
            bars += minutes.trades([trade])
            bars += minutes.book(book_after(trade, SEED, DEPTH))
    return bars


def test_bars_are_each_minutes_trades_and_its_closing_book() -> None:
    bars = _play(FlowMinutes(GRACE, STALE), CANDLES)
    assert [b.start_ms for b in bars] == [c.start_ms for c in CANDLES[:5]]  # the last waits for the grace
    assert not bars[0].complete, "the first minute is joined part-way"
    for candle, bar in zip(CANDLES[1:5], bars[1:], strict=True):
        trades = trades_for(candle, SEED)
        expected = flow_bar(candle.start_ms, trades, book_after(trades[-1], SEED, DEPTH), len(trades), True)
        assert _same(bar, expected)
        assert math.isclose(bar.buy_volume + bar.sell_volume, candle.volume, rel_tol=1e-9)


def test_an_outage_and_a_skipped_minute_are_incomplete() -> None:
    minutes = FlowMinutes(GRACE, STALE)
    bars = _play(minutes, CANDLES, skip=2, down_in=4)
    complete = {b.start_ms: b.complete for b in bars}
    start = CANDLES[0].start_ms
    assert complete == {
        start: False,  # joined part-way
        start + MINUTE_MS: True,
        start + 2 * MINUTE_MS: False,  # skipped whole
        start + 3 * MINUTE_MS: True,
        start + 4 * MINUTE_MS: False,  # down for a moment
    }
    skipped = next(b for b in bars if b.start_ms == start + 2 * MINUTE_MS)
    assert skipped.buy_count == skipped.sell_count == 0 and math.isnan(skipped.bid)
    later = minutes.trades([trades_for(CANDLES[5], SEED)[-1]._replace(ts_ms=start)])
    assert later == [] and minutes.late == 1, "a trade of a minute already given out is counted late"


def test_a_minute_with_trades_and_no_book_message_is_incomplete() -> None:
    minutes = FlowMinutes(GRACE, STALE)
    bars = _play(minutes, CANDLES[:2])
    stale = trades_for(CANDLES[2], SEED)
    bars += minutes.trades(stale)  # the book stalls for a whole minute
    bars += _play(minutes, CANDLES[3:5])
    by_start = {b.start_ms: b for b in bars}
    assert by_start[CANDLES[1].start_ms].complete and not by_start[CANDLES[2].start_ms].complete
    assert by_start[CANDLES[2].start_ms].buy_count + by_start[CANDLES[2].start_ms].sell_count == len(stale)
