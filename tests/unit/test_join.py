"""Predictions meet their facts: gaps, duplicates and disorder are counted, never mis-paired."""

from __future__ import annotations

from forecaster.evaluation.join import join
from forecaster.recording import FactRecord, PredictionRecord, fact_from_record, prediction_from_record

STEP = 60_000


def _p(t: int, direction: str = "UP") -> PredictionRecord:
    record = {"candle_ts": t * STEP, "p_up": 0.7, "p_down": 0.2, "direction": direction}
    return prediction_from_record(record)


def _f(t: int, direction: str) -> FactRecord:
    move = {"UP": 1, "DOWN": -1, "FLAT": 0}[direction]
    closes = {"close_prev": 100.0, "close_curr": 100.0 + move / 100, "delta": move / 100}
    record = {"prev_ts": (t - 1) * STEP, "candle_ts": t * STEP, "ret_bps": move, "direction": direction}
    return fact_from_record({**record, **closes})


def test_join_with_gaps_duplicates_and_disorder() -> None:
    predictions = [_p(1), _p(3), _p(2, "DOWN"), _p(2, "UP"), _p(5), _p(9)]
    facts = [_f(2, "UP"), _f(4, "DOWN"), _f(3, "FLAT"), _f(4, "UP"), _f(6, "DOWN")]
    joined = join(predictions, facts)
    report = joined.report
    assert (report.predictions, report.facts, report.matched, report.unmatched) == (5, 4, 4, 1)
    assert report.duplicate_predictions == 1 and report.duplicate_facts == 1 and report.out_of_order == 3
    assert joined.candle_ts.tolist() == [1 * STEP, 2 * STEP, 3 * STEP, 5 * STEP]
    assert joined.predicted.tolist() == ["UP", "DOWN", "UP", "UP"], "the first line of a duplicate is kept"
    assert joined.actual.tolist() == ["UP", "FLAT", "DOWN", "DOWN"], "each prediction meets the move of t+1"
    assert joined.last_move.tolist() == ["FLAT", "UP", "FLAT", "FLAT"]
