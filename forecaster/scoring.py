"""Live scoring: each prediction is settled by the fact of the candle it was about.

A prediction made at candle t is settled by the fact whose `prev_ts` is t (the move of t+1).
FLAT predictions are abstentions: they count towards the FLAT share, not the accuracy. A decided
prediction against a zero move (fact FLAT) is a miss. Every settled prediction also earns points
(reward for a hit, penalty for a miss, `flat` for an abstention), summed into a running score, so
that abstaining can be weighed against guessing in one number.
"""

from __future__ import annotations

from collections import Counter, deque
from dataclasses import dataclass

from forecaster.config import LiveConfig
from forecaster.direction import Direction
from forecaster.recording import FactRecord, PredictionRecord

HIT, MISS, ABSTAIN = "hit", "miss", "abstained"


@dataclass(frozen=True)
class Outcome:
    candle_ts: int
    predicted: Direction
    actual: Direction

    @property
    def decided(self) -> bool:
        return self.predicted != Direction.FLAT

    @property
    def correct(self) -> bool:
        return self.decided and self.predicted == self.actual

    @property
    def kind(self) -> str:
        return ABSTAIN if not self.decided else HIT if self.correct else MISS


@dataclass(frozen=True)
class ScoreRule:
    """Points per settled prediction."""

    reward: float = 1.0
    penalty: float = -1.0
    flat: float = 0.0

    @classmethod
    def from_config(cls, live: LiveConfig) -> ScoreRule:
        return cls(live.reward, live.penalty, live.flat_score)

    def points(self, kind: str, count: int = 1) -> float:
        """Points for `count` outcomes of one kind (HIT, MISS or ABSTAIN)."""
        return count * {HIT: self.reward, MISS: self.penalty, ABSTAIN: self.flat}[kind]


class Scoreboard:
    """Open predictions waiting for their fact, the last `rolling` settled outcomes, and the score.

    Rolling figures are kept as counts of hits, misses and abstentions in the window, updated as
    outcomes enter and leave it: metrics() runs on every candle and must not rescan the window.
    """

    def __init__(self, rolling: int, rule: ScoreRule | None = None) -> None:
        self.rule = rule or ScoreRule()
        self._open: dict[int, PredictionRecord] = {}
        self.recent: deque[Outcome] = deque(maxlen=rolling)
        self._window = Counter[str]()  # outcomes of `recent` by kind
        self.settled = 0
        self.decided = 0
        self.correct = 0
        self.score = 0.0

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
        if len(self.recent) == self.recent.maxlen:
            self._window[self.recent[0].kind] -= 1
        self.recent.append(outcome)
        self._window[outcome.kind] += 1
        self.settled += 1
        self.decided += outcome.decided
        self.correct += outcome.correct
        self.score += self.rule.points(outcome.kind)
        return outcome

    def metrics(self) -> dict[str, float]:
        """Counts and score always; accuracies only once there is a decided outcome (never a fake 0)."""
        hits, misses, flats = self._window[HIT], self._window[MISS], self._window[ABSTAIN]
        out = {"settled": float(self.settled), "decided": float(self.decided), "score": self.score}
        if self.recent:
            out["rolling_flat_share"] = flats / len(self.recent)
            out["rolling_score"] = (
                hits * self.rule.reward + misses * self.rule.penalty + flats * self.rule.flat
            )
        if hits + misses:
            out["rolling_decided_accuracy"] = hits / (hits + misses)
        if self.decided:
            out["decided_accuracy"] = self.correct / self.decided
        return out
