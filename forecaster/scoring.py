"""Live scoring: each prediction is settled by the fact of the candle it was about.

A prediction made at candle t is settled by the fact whose `prev_ts` is t (the move of t+1).
FLAT predictions are abstentions: they count towards the FLAT share, not the accuracy. A decided
prediction against a zero move (fact FLAT) is a miss.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from forecaster.flat import FLAT
from forecaster.recording import FactRecord, PredictionRecord


@dataclass(frozen=True)
class Outcome:
    candle_ts: int
    predicted: str
    actual: str

    @property
    def decided(self) -> bool:
        return self.predicted != FLAT

    @property
    def correct(self) -> bool:
        return self.decided and self.predicted == self.actual


class Scoreboard:
    """Open predictions waiting for their fact, and the last `rolling` settled outcomes."""

    def __init__(self, rolling: int) -> None:
        self._open: dict[int, PredictionRecord] = {}
        self.recent: deque[Outcome] = deque(maxlen=rolling)
        self.settled = 0
        self.decided = 0
        self.correct = 0

    def add_prediction(self, prediction: PredictionRecord) -> None:
        self._open[prediction.candle_ts] = prediction

    def add_fact(self, fact: FactRecord) -> Outcome | None:
        """Settle the prediction this fact judges, if there is one."""
        prediction = self._open.pop(fact.prev_ts, None)
        for stale in [ts for ts in self._open if ts < fact.prev_ts]:
            del self._open[stale]  # its fact can no longer come: the stream moved past it
        if prediction is None:
            return None
        outcome = Outcome(prediction.candle_ts, prediction.direction, fact.direction)
        self.recent.append(outcome)
        self.settled += 1
        self.decided += outcome.decided
        self.correct += outcome.correct
        return outcome

    def metrics(self) -> dict[str, float]:
        """Counts always; accuracies only once there is a decided outcome to measure (never a fake 0)."""
        decided = [o for o in self.recent if o.decided]
        out = {"settled": float(self.settled), "decided": float(self.decided)}
        if self.recent:
            out["rolling_flat_share"] = 1 - len(decided) / len(self.recent)
        if decided:
            out["rolling_decided_accuracy"] = sum(o.correct for o in decided) / len(decided)
        if self.decided:
            out["decided_accuracy"] = self.correct / self.decided
        return out
