"""Predictions against facts: the join, then the metrics for the model and the baselines.

A prediction made at candle t is judged by the fact whose `prev_ts` is t (the move of candle
t+1). Predictions without their fact (not known yet, or lost in a gap) and duplicate lines are
counted and reported, never silently paired with the wrong candle. The baselines are judged on
exactly the joined candles: persistence predicts the move that led into t (the fact whose
`candle_ts` is t) again; majority always predicts the more frequent direction among the facts
evaluated (in-sample, which flatters it; it is a yardstick, not a model).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from forecaster.baselines import BaselinePredictions, Majority, persistence_from_moves
from forecaster.config import FlatConfig
from forecaster.flat import DOWN, FLAT, UP, directions
from forecaster.metrics import evaluate, utc_hours


@dataclass
class JoinReport:
    predictions: int = 0
    facts: int = 0
    matched: int = 0
    unmatched: int = 0  # predictions whose fact is not in the records (not known yet, or a gap)
    duplicate_predictions: int = 0  # further lines for a candle already predicted (the first is kept)
    duplicate_facts: int = 0
    out_of_order: int = 0  # lines not in ascending candle order (sorted before joining)


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
    report: JoinReport = field(default_factory=JoinReport)

    def restricted_to(self, candle_ts: np.ndarray) -> Joined:
        """Only the rows whose candle is in `candle_ts`: to judge two predictors on the same candles."""
        keep = np.isin(self.candle_ts, candle_ts)
        columns = {f: getattr(self, f) for f in self.__dataclass_fields__ if f != "report"}
        picked = {f: None if v is None else v[keep] for f, v in columns.items()}
        return Joined(**picked, report=self.report)


def _first_by(
    records: Iterable[Mapping[str, Any]], key: str
) -> tuple[dict[int, Mapping[str, Any]], int, int]:
    """Records by key, first one kept; also how many duplicates and out-of-order lines there were."""
    out: dict[int, Mapping[str, Any]] = {}
    duplicates = disorder = 0
    last = None
    for record in records:
        k = record[key]
        if last is not None and k < last:
            disorder += 1
        last = k if last is None else max(last, k)
        if k in out:
            duplicates += 1
        else:
            out[k] = record
    return out, duplicates, disorder


def join(predictions: Iterable[Mapping[str, Any]], facts: Iterable[Mapping[str, Any]]) -> Joined:
    by_candle, dup_p, disorder_p = _first_by(predictions, "candle_ts")
    fact_list = list(facts)
    by_prev, dup_f, disorder_f = _first_by(fact_list, "prev_ts")
    by_curr, _, _ = _first_by(fact_list, "candle_ts")
    report = JoinReport(
        predictions=len(by_candle),
        facts=len(by_prev),
        duplicate_predictions=dup_p,
        duplicate_facts=dup_f,
        out_of_order=disorder_p + disorder_f,
    )
    rows = [(ts, p, by_prev[ts]) for ts, p in sorted(by_candle.items()) if ts in by_prev]
    report.matched = len(rows)
    report.unmatched = report.predictions - report.matched
    moves = [by_curr[ts]["direction"] if ts in by_curr else FLAT for ts, _, _ in rows]
    return Joined(
        candle_ts=np.array([ts for ts, _, _ in rows], dtype=np.int64),
        target_ts=np.array([f["candle_ts"] for _, _, f in rows], dtype=np.int64),
        p_up=np.array([p["p_up"] for _, p, _ in rows], dtype=np.float64),
        p_down=np.array([p["p_down"] for _, p, _ in rows], dtype=np.float64),
        spread=np.array([p["spread"] for _, p, _ in rows])
        if all("spread" in p for _, p, _ in rows)
        else None,
        predicted=np.array([p["direction"] for _, p, _ in rows], dtype="<U4"),
        actual=np.array([f["direction"] for _, _, f in rows], dtype="<U4"),
        ret_bps=np.array([f["ret_bps"] for _, _, f in rows], dtype=np.float64),
        last_move=np.array(moves, dtype="<U4"),
        report=report,
    )


def _baselines(joined: Joined) -> dict[str, BaselinePredictions]:
    """Persistence (the move into t again) and majority (in-sample) on the joined candles."""
    majority = Majority.fit((joined.actual == UP).astype(float), (joined.actual == DOWN).astype(float))
    return {
        "persistence": persistence_from_moves(joined.last_move),
        "majority": majority.batch(joined.actual),
    }


def evaluate_predictions(
    joined: Joined, threshold_bps: float, rule: FlatConfig, redecide: bool = False
) -> dict[str, Any]:
    """Metrics of the joined predictions; `rule` is marked on the coverage curve and, with
    `redecide`, replaces the recorded decisions (to compare FLAT rules on the same probabilities)."""
    predicted = directions(joined.p_up, joined.p_down, rule, joined.spread) if redecide else joined.predicted
    return evaluate(predicted, joined.actual, joined.p_up, joined.p_down, *_targets(joined, threshold_bps),
                    hours=_hours(joined), rules=(rule,))  # fmt: skip


def evaluate_joined(
    joined: Joined, threshold_bps: float, rule: FlatConfig, redecide: bool = False
) -> dict[str, Any]:
    """The join report, the model's metrics, and the baselines' on the same candles."""
    out: dict[str, Any] = {
        "join": vars(joined.report),
        "model": evaluate_predictions(joined, threshold_bps, rule, redecide),
    }
    y_up, y_down = _targets(joined, threshold_bps)
    for name, guess in _baselines(joined).items():
        out[name] = evaluate(
            guess.directions, joined.actual, guess.p_up, guess.p_down, y_up, y_down, hours=_hours(joined)
        )
    return out


def _targets(joined: Joined, threshold_bps: float) -> tuple[np.ndarray, np.ndarray]:
    """What the heads are scored against: up = ret_bps > +threshold, down = ret_bps < -threshold."""
    return (joined.ret_bps > threshold_bps).astype(np.float64), (joined.ret_bps < -threshold_bps).astype(
        np.float64
    )


def _hours(joined: Joined) -> np.ndarray:
    return utc_hours(joined.target_ts)  # the hour of the candle being forecast
