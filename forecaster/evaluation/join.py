"""Predictions meet their facts: one row per prediction whose fact is known.

A prediction made at candle t is judged by the fact whose `prev_ts` is t (the move of candle
t+1). Predictions without their fact (not known yet, or lost in a gap) and duplicate lines are
counted and reported, never silently paired with the wrong candle.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import TypeVar

import numpy as np

from forecaster.direction import Direction
from forecaster.evaluation.sections import JoinReport
from forecaster.recording import FactRecord, PredictionRecord

R = TypeVar("R", PredictionRecord, FactRecord)


@dataclass
class Joined:
    candle_ts: np.ndarray
    target_ts: np.ndarray  # the candle each prediction is about (t+1)
    p_up: np.ndarray
    p_down: np.ndarray
    spread: np.ndarray | None  # None when the records predate the field
    predicted: np.ndarray
    actual: np.ndarray
    ret_bps: np.ndarray
    last_move: np.ndarray  # direction of the move into candle t (FLAT where unknown)
    # the probabilities before the model's calibration; None unless every joined record has them
    raw_p_up: np.ndarray | None = None
    raw_p_down: np.ndarray | None = None
    report: JoinReport = field(default_factory=JoinReport)

    def restricted_to(self, candle_ts: np.ndarray) -> Joined:
        """Only the rows whose candle is in `candle_ts`: to judge two predictors on the same candles."""
        keep = np.isin(self.candle_ts, candle_ts)
        columns = {f: getattr(self, f) for f in self.__dataclass_fields__ if f != "report"}
        picked = {f: None if v is None else v[keep] for f, v in columns.items()}
        return replace(self, **picked)


def _first_by(records: Iterable[R], key: str) -> tuple[dict[int, R], int, int]:
    """Records by key, first one kept; also how many duplicates and out-of-order lines there were."""
    out: dict[int, R] = {}
    duplicates = disorder = 0
    last = None
    for record in records:
        k = getattr(record, key)
        if last is not None and k < last:
            disorder += 1
        last = k if last is None else max(last, k)
        if k in out:
            duplicates += 1
        else:
            out[k] = record
    return out, duplicates, disorder


def join(predictions: Iterable[PredictionRecord], facts: Iterable[FactRecord]) -> Joined:
    by_candle, dup_p, disorder_p = _first_by(predictions, "candle_ts")
    fact_list = list(facts)
    by_prev, dup_f, disorder_f = _first_by(fact_list, "prev_ts")
    by_curr, _, _ = _first_by(fact_list, "candle_ts")
    rows = [(ts, p, by_prev[ts]) for ts, p in sorted(by_candle.items()) if ts in by_prev]
    report = JoinReport(
        predictions=len(by_candle),
        facts=len(by_prev),
        matched=len(rows),
        unmatched=len(by_candle) - len(rows),
        duplicate_predictions=dup_p,
        duplicate_facts=dup_f,
        out_of_order=disorder_p + disorder_f,
    )
    moves = [by_curr[ts].direction if ts in by_curr else Direction.FLAT for ts, _, _ in rows]
    spreads = [p.spread for _, p, _ in rows]
    raw_up, raw_down = [p.raw_p_up for _, p, _ in rows], [p.raw_p_down for _, p, _ in rows]
    uncalibrated = bool(rows) and None not in raw_up and None not in raw_down
    return Joined(
        candle_ts=np.array([ts for ts, _, _ in rows], dtype=np.int64),
        target_ts=np.array([f.candle_ts for _, _, f in rows], dtype=np.int64),
        p_up=np.array([p.p_up for _, p, _ in rows], dtype=np.float64),
        p_down=np.array([p.p_down for _, p, _ in rows], dtype=np.float64),
        spread=None if None in spreads else np.array(spreads, dtype=np.float64),
        predicted=np.array([p.direction for _, p, _ in rows], dtype="<U4"),
        actual=np.array([f.direction for _, _, f in rows], dtype="<U4"),
        ret_bps=np.array([f.ret_bps for _, _, f in rows], dtype=np.float64),
        last_move=np.array(moves, dtype="<U4"),
        raw_p_up=np.array(raw_up, dtype=np.float64) if uncalibrated else None,
        raw_p_down=np.array(raw_down, dtype=np.float64) if uncalibrated else None,
        report=report,
    )
