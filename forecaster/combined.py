"""model=combiner's predictor: the other live predictors' calibrated probabilities, Hedge-weighted.

It reads no features: at each candle it takes the predictions its members (live predictors of the
same timeframe) made at that candle, weighs them by the points each earned so far
(forecaster/hedge.py), and puts the weighted means through its own FLAT rule. Members with no
prediction at a candle (still warming, or stopped) are left out of that candle.

Everything it needs is in the records: its settings (`combiner.json` in its records folder), its
candles and facts, and its members' predictions. `replay` recomputes it from them, which is how a
restarted session gets its weights back and how mode=eval checks the recorded predictions.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from forecaster.candles import Candle, timeframe_ms
from forecaster.config import FlatConfig, SinkConfig
from forecaster.errors import UserError
from forecaster.facts import FactTracker
from forecaster.flat import direction
from forecaster.hedge import Hedge
from forecaster.live.session_state import write_json_atomically
from forecaster.models.blend import combine
from forecaster.recording import (
    CANDLE_KEY,
    FACT_KEY,
    PREDICTION_KEY,
    FactRecord,
    PredictionRecord,
    candle_from_record,
    fact_from_record,
    prediction_from_record,
    read_jsonl,
)
from forecaster.scoring import ScoreRule

NS_PER_MS = 1e6
SETTINGS_FILE = "combiner.json"  # in the combiner's records folder: what replaying it needs
WEIGHT_METRIC = "weight."  # + member name: the member's current weight, as a metric


@dataclass(frozen=True)
class CombinerSettings:
    """Everything that decides a combiner's predictions, besides its members' records."""

    model: str
    timeframe: str
    members: tuple[str, ...]
    eta: float
    window: int | None
    score: ScoreRule
    rule: FlatConfig

    def to_json(self) -> dict[str, object]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> CombinerSettings:
        window = data["window"]
        return cls(
            model=str(data["model"]),
            timeframe=str(data["timeframe"]),
            members=tuple(str(name) for name in data["members"]),
            eta=float(data["eta"]),
            window=None if window is None else int(window),
            score=ScoreRule(**data["score"]),
            rule=FlatConfig(**data["rule"]),
        )

    def write(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        write_json_atomically(folder / SETTINGS_FILE, self.to_json())

    @classmethod
    def read(cls, folder: Path) -> CombinerSettings:
        path = folder / SETTINGS_FILE
        try:
            return cls.from_json(json.loads(path.read_text(encoding="utf-8")))
        except (OSError, ValueError, TypeError, KeyError) as exc:
            raise UserError(f"{path} is not a readable combiner settings file ({exc})") from exc


@dataclass
class CombinerCounters:
    predictions: int = 0
    duplicates: int = 0  # not newer than the last candle combined
    warming: int = 0  # candles at which no member had a prediction


@dataclass
class CombinedPredictor:
    """A live loop's predictor (predictor.CandlePredictor) whose inputs are other predictors' outputs.

    `receive` takes each member's prediction as its loop makes it; the live session runs the
    members' loops first, so by the time this one sees candle t their predictions at t are here.
    """

    settings: CombinerSettings
    hedge: Hedge = field(init=False)
    counters: CombinerCounters = field(default_factory=CombinerCounters)
    _facts: FactTracker = field(default_factory=FactTracker)
    _inbox: dict[int, dict[str, PredictionRecord]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        s = self.settings
        self.hedge = Hedge(s.members, s.eta, s.window, s.score)

    @property
    def timeframe(self) -> str:
        return self.settings.timeframe

    def history_needed(self, resume_after: int | None) -> int:
        """The last candle only: the first live candle's fact then settles."""
        return 1

    @property
    def model_name(self) -> str:
        return self.settings.model

    @property
    def rule(self) -> FlatConfig:
        return self.settings.rule

    def receive(self, member: str, prediction: PredictionRecord) -> None:
        if member in self.settings.members:
            self._inbox.setdefault(prediction.candle_ts, {})[member] = prediction

    def warm_up(self, candles: Iterable[Candle]) -> None:
        for candle in candles:
            self._facts.push(candle)

    def on_candle(self, candle: Candle, received_ns: int | None = None) -> PredictionRecord | None:
        received_ns = received_ns if received_ns is not None else time.perf_counter_ns()
        if candle.timeframe != self.timeframe:
            raise ValueError(f"combiner for {self.timeframe} got a {candle.timeframe} candle")
        fact = self._facts.push(candle)
        predictions = self._inbox.pop(candle.start_ms, {})
        for stale in [ts for ts in self._inbox if ts < candle.start_ms]:
            del self._inbox[stale]
        return self.step(candle.start_ms, fact, predictions, received_ns)

    def step(
        self,
        candle_ts: int,
        fact: FactRecord | None,
        predictions: Mapping[str, PredictionRecord],
        received_ns: int,
    ) -> PredictionRecord | None:
        """Settle the previous candle's member predictions by `fact`, then combine those made at
        `candle_ts`: the one step live and replay share."""
        if fact is not None:
            self.hedge.settle(fact)
        last = self.hedge.last_opened
        if last is not None and candle_ts <= last:
            self.counters.duplicates += 1
            return None
        present = {name: predictions[name] for name in self.settings.members if name in predictions}
        if not present:
            self.counters.warming += 1
            return None
        self.hedge.open(candle_ts, present)
        weights = self.hedge.weights(present)
        pairs = [(np.array([p.p_up]), np.array([p.p_down])) for p in present.values()]
        p_up, p_down, spread = (float(v[0]) for v in combine(pairs, list(weights.values())))
        self.counters.predictions += 1
        return PredictionRecord(
            candle_ts=candle_ts,
            p_up=p_up,
            p_down=p_down,
            direction=direction(p_up, p_down, self.rule, spread),
            target_ts=candle_ts + timeframe_ms(self.timeframe),
            model=self.model_name,
            timeframe=self.timeframe,
            latency_ms=(time.perf_counter_ns() - received_ns) / NS_PER_MS,
            trained=all(p.trained for p in present.values()),
            spread=spread,
        )

    def metrics(self) -> dict[str, float]:
        """Counters, and every member's weight as it stands (as if all of them predicted)."""
        counters = {f"predictor_{key}": float(value) for key, value in asdict(self.counters).items()}
        weights = {f"{WEIGHT_METRIC}{name}": w for name, w in self.hedge.weights().items()}
        return {**counters, **weights}


@dataclass(frozen=True)
class Replayed:
    """A combiner recomputed from records: its state at the end, its predictions, its weights over time."""

    predictor: CombinedPredictor
    predictions: list[PredictionRecord]
    weights_ts: list[int]  # the candles after which the weights below stood
    weights: dict[str, list[float]]  # member -> its weight after each candle


def replay(
    folder: Path, source: Path, sink: SinkConfig, settings: CombinerSettings | None = None
) -> Replayed:
    """The combiner recorded in `folder` recomputed over its candles from its facts and the members'
    recorded predictions (`source/<member>/`); `settings` default to its `combiner.json`."""
    settings = settings or CombinerSettings.read(folder)
    predictor = CombinedPredictor(settings)
    facts = {f.candle_ts: f for f in map(fact_from_record, _records(folder, sink.facts, FACT_KEY))}
    by_member = {
        name: {
            p.candle_ts: p
            for p in map(prediction_from_record, _records(source / name, sink.predictions, PREDICTION_KEY))
        }
        for name in settings.members
    }
    candles = sorted(map(candle_from_record, _records(folder, sink.candles, CANDLE_KEY)), key=_start)
    predictions: list[PredictionRecord] = []
    weights: dict[str, list[float]] = {name: [] for name in settings.members}
    for candle in candles:
        ts = candle.start_ms
        at = {name: made[ts] for name, made in by_member.items() if ts in made}
        prediction = predictor.step(ts, facts.get(ts), at, time.perf_counter_ns())
        if prediction is not None:
            predictions.append(prediction)
        for name, w in predictor.hedge.weights().items():
            weights[name].append(w)
    predictor.warm_up(candles[-1:])  # the next live candle's fact needs the last one
    return Replayed(predictor, predictions, [c.start_ms for c in candles], weights)


def resumed(settings: CombinerSettings, folder: Path, sink: SinkConfig) -> CombinedPredictor:
    """A live combiner recording in `folder` (its members' folders beside it): its settings written
    there for replays, and what an earlier session recorded there replayed into its weights."""
    predictor = replay(folder, folder.parent, sink, settings).predictor
    settings.write(folder)
    return predictor


def _records(folder: Path, name: str, key: str) -> list[dict]:
    return read_jsonl(folder / name, key).records


def _start(candle: Candle) -> int:
    return candle.start_ms


def first_difference(
    recorded: Sequence[PredictionRecord], replayed: Sequence[PredictionRecord]
) -> int | None:
    """None when both hold the same predictions (all fields but the latency); else the first candle
    at which they differ."""
    mine = {p.candle_ts: replace(p, latency_ms=0.0) for p in replayed}
    theirs = {p.candle_ts: replace(p, latency_ms=0.0) for p in recorded}
    return next((ts for ts in sorted(mine.keys() | theirs.keys()) if mine.get(ts) != theirs.get(ts)), None)
