"""Candle -> prediction: the one code path used live, in replay and when judging a model on history.

Keeps the feature window, drops duplicates and anything not newer than the last candle, refuses
unconfirmed candles, then features -> model -> FLAT rule -> a PredictionRecord about the next
candle. Warm-up fills the window from history so the first live candle already gets a prediction.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from forecaster.candles import Candle, timeframe_ms, utc_text
from forecaster.config import Config, FlatConfig
from forecaster.errors import UserError
from forecaster.features.base import FeatureSet
from forecaster.features.window import FeatureWindow
from forecaster.flat import direction, fitted
from forecaster.models.base import LoadedModel, ProbabilityModel, Remembering
from forecaster.models.card import read_card
from forecaster.models.describe import loaded_line
from forecaster.recording import PredictionRecord

log = logging.getLogger(__name__)
NS_PER_MS = 1e6


@dataclass
class PredictorCounters:
    predictions: int = 0
    duplicates: int = 0  # not newer than the last candle seen
    unconfirmed: int = 0  # refused: only closed candles enter the window
    warming: int = 0  # candles that went into the window before it was full
    gaps: int = 0  # holes in the candle sequence: the window is refilled after each
    # rows with a feature missing (a flow bar in the window incomplete): no prediction, as training has
    # no such row (forecaster/training/dataset.py drops them)
    missing: int = 0


class CandlePredictor(Protocol):
    """What a live loop drives: candles of one timeframe in, predictions about the next one out.

    `Predictor` (features -> model) is one; a combination of other predictors' outputs is another.
    """

    timeframe: str
    model_name: str
    rule: FlatConfig

    def history_needed(self, resume_after: int | None) -> int:
        """Candles of history the warm-up should hand over before the stream (`resume_after`: the last
        candle a previous session in the run dir recorded)."""
        ...

    def warm_up(self, candles: Iterable[Candle]) -> None: ...

    def on_candle(self, candle: Candle, received_ns: int | None = None) -> PredictionRecord | None: ...

    def metrics(self) -> dict[str, float]:
        """Its counters (and any state worth a chart), as metrics."""
        ...


class CombiningPredictor(CandlePredictor, Protocol):
    """A live predictor fed with other predictors' predictions as their loops make them (model=combiner)."""

    def receive(self, member: str, prediction: PredictionRecord) -> None: ...


class Predictor:
    def __init__(
        self,
        features: FeatureSet,
        loaded: LoadedModel,
        rule: FlatConfig,
        model_name: str,
        timeframe: str,
    ) -> None:
        self.window = FeatureWindow(features)
        self.standardizer = loaded.standardizer
        self.model = loaded.model
        self.card = loaded.card
        self.calibration = loaded.card.calibration if loaded.card else None
        self.rule = rule
        self.model_name = model_name
        self.timeframe = timeframe
        self.step_ms = timeframe_ms(timeframe)
        self.counters = PredictorCounters()
        self.last_start: int | None = None

    def _accept(self, candle: Candle) -> bool:
        if not candle.confirmed:
            self.counters.unconfirmed += 1
            log.warning("refused unconfirmed candle %s UTC", utc_text(candle.start_ms))
            return False
        if candle.timeframe != self.timeframe:
            raise ValueError(f"predictor for {self.timeframe} got a {candle.timeframe} candle")
        if self.last_start is not None and candle.start_ms <= self.last_start:
            self.counters.duplicates += 1
            return False
        if self.last_start is not None and candle.start_ms - self.last_start != self.step_ms:
            # A window across a hole would hold a multi-interval return that training never sees.
            self.counters.gaps += 1
            log.warning("gap before candle %s UTC: the window starts again", utc_text(candle.start_ms))
            self.window = FeatureWindow(self.window.features)
        self.last_start = candle.start_ms
        return True

    def warm_up(self, candles: Iterable[Candle]) -> None:
        """Fill the window from history (no predictions): the next candle is predicted at once.

        The model runs once on the last full window, unrecorded, so that its compilation happens
        here and not on the first live candle (with several predictors, all at the same minute).
        """
        row = None
        for candle in candles:
            if self._accept(candle):
                row = self._row(candle)
        if row is not None:
            self.model(row)

    def history_needed(self, resume_after: int | None) -> int:
        """Candles the warm-up should bring: the feature window, and what a growing model missed."""
        extra = self.model.catch_up(resume_after) if isinstance(self.model, Remembering) else 0
        return self.window.features.window + extra

    def metrics(self) -> dict[str, float]:
        """The counters, and what a growing model reports (e.g. the windows a memory holds)."""
        grown = self.model.metrics() if isinstance(self.model, Remembering) else {}
        return {**{f"predictor_{key}": float(value) for key, value in asdict(self.counters).items()}, **grown}

    def _row(self, candle: Candle) -> np.ndarray | None:
        """The accepted candle into the window: its standardised row (None while warming or with a
        feature missing), which a growing model is also told."""
        row = self.window.push(candle)
        if row is not None and not np.isfinite(row).all():
            self.counters.missing += 1
            row = None
        if row is not None and self.standardizer is not None:
            row = self.standardizer(row)
        if isinstance(self.model, Remembering):
            self.model.remember(candle, row)
        return row

    def on_candle(self, candle: Candle, received_ns: int | None = None) -> PredictionRecord | None:
        """The prediction made at the close of `candle` about the next one; None if refused or warming."""
        received_ns = received_ns if received_ns is not None else time.perf_counter_ns()
        row = self.prepare(candle)
        if row is None:
            return None
        return self.decide(candle, *self.model(row), received_ns)

    def prepare(self, candle: Candle) -> np.ndarray | None:
        """The candle's standardised feature row for the model; None if refused or still warming.

        Split from `decide` so that a caller may run the model on several predictors' rows at once.
        """
        if not self._accept(candle):
            return None
        row = self._row(candle)
        if row is None and not self.window.ready:
            self.counters.warming += 1
        return row

    def decide(
        self, candle: Candle, p_up: float, p_down: float, spread: float, received_ns: int
    ) -> PredictionRecord:
        """The model's output for `candle`'s row, calibrated as its card says, through the FLAT rule,
        as a record (which keeps the uncalibrated pair, so eval can show reliability before and after)."""
        self.counters.predictions += 1
        raw_up, raw_down = p_up, p_down
        if self.calibration is not None:
            p_up, p_down = self.calibration.one(p_up, p_down)
        return PredictionRecord(
            candle_ts=candle.start_ms,
            p_up=p_up,
            p_down=p_down,
            direction=direction(p_up, p_down, self.rule, spread),
            target_ts=candle.start_ms + self.step_ms,
            model=self.model_name,
            timeframe=self.timeframe,
            latency_ms=(time.perf_counter_ns() - received_ns) / NS_PER_MS,
            trained=self.model.trained,
            spread=spread,
            raw_p_up=None if self.calibration is None else raw_up,
            raw_p_down=None if self.calibration is None else raw_down,
        )


def load_model(
    model: ProbabilityModel, features: FeatureSet, timeframe: str, seed: int, weights: Path | None
) -> LoadedModel:
    """Trained weights from `weights` (checked against the run's features, timeframe and model option,
    and logged in one line), else the model's untrained stage."""
    if weights is not None:
        expect = {
            "feature_set": features.name,
            "feature_fingerprint": features.fingerprint(),
            "timeframe": timeframe,
        }
        trained_as = read_card(weights).spec.name
        if trained_as != model.name:  # another option's weights: its files and format are not this one's
            raise UserError(
                f"the weights at {weights} were trained as {trained_as}, not {model.name}; "
                f"run with model={trained_as}"
            )
        loaded = model.load(weights, expect)
        if loaded.card is not None:
            log.info("%s", loaded_line(loaded.card, weights))
        return loaded
    if model.trainable:
        log.warning(
            "model=%s has no trained weights (model.path / model.uri): records say trained=false",
            model.name,
        )
    return LoadedModel(model.untrained(features.n_features, seed))


def build_predictor(config: Config, weights: Path | None) -> Predictor:
    """The run's predictor; `weights` resolved beforehand (forecaster.registry.weights_path)."""
    loaded = load_model(config.model, config.features, config.timeframe.name, config.seed, weights)
    rule = fitted(config.flat, loaded.card.margin_quantiles if loaded.card else None)
    if config.flat.coverage is not None:
        log.info(
            "flat=coverage: deciding when |p_up - p_down| >= %.4f, the most confident %.0f%% of validation",
            rule.min_margin,
            100 * config.flat.coverage,
        )
    return Predictor(config.features, loaded, rule, config.model.name, config.timeframe.name)
