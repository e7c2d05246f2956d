"""Hedge: online weights of several predictors from the points each one earned.

Each member's weight is proportional to exp(eta * R), R the points (live.reward for a hit,
live.penalty for a miss, live.flat_score for an abstention) its predictions earned over the last
`window` settled candles (None: all of them). A prediction made at candle t is settled by the fact
of candle t+1, which is known at the close of t+1: the weights used at candle t hold the outcomes of
predictions made before t only, so the combination is causal by construction.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable, Mapping, Sequence

from forecaster.recording import FactRecord, PredictionRecord
from forecaster.scoring import Outcome, ScoreRule


class Hedge:
    """Exponentially weighted members; `open` their predictions at a candle, `settle` them by its fact."""

    def __init__(self, members: Sequence[str], eta: float, window: int | None, rule: ScoreRule) -> None:
        self.members = tuple(members)
        self.eta = eta
        self.rule = rule
        self.totals = dict.fromkeys(self.members, 0.0)  # points over the window, per member
        self._recent: deque[dict[str, float]] = deque(maxlen=window)  # points of each settled candle
        self._open: dict[int, Mapping[str, PredictionRecord]] = {}  # candle -> its members' predictions
        self.last_opened: int | None = None
        self.last_settled: int | None = None  # candle_ts of the last fact that settled anything
        self.settled = 0

    def open(self, candle_ts: int, predictions: Mapping[str, PredictionRecord]) -> None:
        """The members' predictions made at `candle_ts`, to be settled by the fact of the next candle."""
        self._open[candle_ts] = predictions
        self.last_opened = candle_ts

    def settle(self, fact: FactRecord) -> None:
        """The points of the predictions this fact judges; facts already seen change nothing."""
        if self.last_settled is not None and fact.candle_ts <= self.last_settled:
            return
        predictions = self._open.pop(fact.prev_ts, None)
        for stale in [ts for ts in self._open if ts < fact.prev_ts]:
            del self._open[stale]  # its fact can no longer come: the stream moved past it
        if not predictions:
            return
        points = {
            name: self.rule.points(Outcome(fact.prev_ts, p.direction, fact.direction).kind)
            for name, p in predictions.items()
        }
        if self._recent.maxlen is not None and len(self._recent) == self._recent.maxlen:
            for name, value in self._recent[0].items():
                self.totals[name] -= value
        self._recent.append(points)
        for name, value in points.items():
            self.totals[name] += value
        self.last_settled = fact.candle_ts
        self.settled += 1

    def weights(self, present: Iterable[str] | None = None) -> dict[str, float]:
        """Normalised weights of the `present` members (default: all), in the order of `members`."""
        wanted = set(self.members if present is None else present)
        names = [name for name in self.members if name in wanted]
        if not names:
            return {}
        top = max(self.totals[name] for name in names)  # exp of the gap to the best: never overflows
        raw = [math.exp(self.eta * (self.totals[name] - top)) for name in names]
        return {name: value / sum(raw) for name, value in zip(names, raw, strict=True)}
