"""One predictor over the 1m stream, with no I/O: minute -> its candle -> prediction, fact, score -> event.

The loop only computes; what becomes of an event (records, a console line, metrics) is the sinks'
business (forecaster/live/sinks.py), so the same loop serves every output and is tested bare.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass

from forecaster.candles import Aggregator, Candle
from forecaster.config import LiveConfig
from forecaster.facts import FactTracker
from forecaster.predictor import NS_PER_MS, CandlePredictor
from forecaster.recording import FactRecord, PredictionRecord
from forecaster.scoring import Outcome, Scoreboard, ScoreRule
from forecaster.sources.base import WarmUp, covered_until


@dataclass(frozen=True)
class CandleEvent:
    """A closed candle of one predictor's timeframe, and everything it settled.

    `new` is False for a candle an earlier session in the same run dir already recorded (a replay
    starts from the top of its file): sinks write nothing twice and show nothing again.
    """

    name: str
    candle: Candle
    prediction: PredictionRecord | None
    fact: FactRecord | None
    outcome: Outcome | None
    new: bool
    count: int  # new predicted candles of this predictor so far, this one included
    score: float
    settled: int
    decided: int
    metrics: Mapping[str, float]  # rolling scores and the predictor's counters
    handled_ms: float  # from receipt of the minute to the end of the prediction


class PredictorLoop:
    """`name` ("" for the run's single implicit predictor) prefixes its console lines and metrics."""

    def __init__(
        self, name: str, predictor: CandlePredictor, live: LiveConfig, last_recorded: int | None = None
    ) -> None:
        self.name = name
        self.predictor = predictor
        self.max_candles = live.max_candles
        self.aggregator = Aggregator(predictor.timeframe)
        self.facts = FactTracker()
        self.scores = Scoreboard(live.rolling_window, ScoreRule.from_config(live))
        self.last_recorded = last_recorded
        self.candles = 0
        self.covered_until: int | None = None  # last minute the warm-up already holds

    @property
    def done(self) -> bool:
        return self.max_candles is not None and self.candles >= self.max_candles

    def warm_up_request(self) -> WarmUp:
        needed = self.predictor.history_needed(self.last_recorded)
        return WarmUp(self.predictor.timeframe, needed, self.last_recorded)

    def warm_up(self, candles: list[Candle]) -> None:
        self.predictor.warm_up(candles)
        self.covered_until = covered_until(candles)
        if candles:
            self.facts.push(candles[-1])  # so the first live candle gets its fact

    def on_minute(self, minute: Candle, received_ns: int) -> CandleEvent | None:
        """Handle one confirmed 1m candle; the event of the candle of our timeframe it completes.

        Minutes the warm-up already covers are skipped: the shared stream starts after the warm-up
        that ends first, so predictors of other timeframes see some minutes they already have.
        """
        if self.covered_until is not None and minute.start_ms <= self.covered_until:
            return None
        candle = self.aggregator.push(minute)
        if candle is None:
            return None
        prediction = self.predictor.on_candle(candle, received_ns)
        fact = self.facts.push(candle)
        outcome = self.scores.add_fact(fact) if fact is not None else None
        if prediction is not None:
            self.scores.add_prediction(prediction)
        new = self.last_recorded is None or candle.start_ms > self.last_recorded
        self.candles += new and prediction is not None  # live.max_candles counts predictions, not warm-up
        return CandleEvent(
            name=self.name,
            candle=candle,
            prediction=prediction,
            fact=fact,
            outcome=outcome,
            new=new,
            count=self.candles,
            score=self.scores.score,
            settled=self.scores.settled,
            decided=self.scores.decided,
            metrics={**self.scores.metrics(), **self.predictor.metrics()},
            handled_ms=(time.perf_counter_ns() - received_ns) / NS_PER_MS,
        )
