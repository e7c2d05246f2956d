"""Candle -> prediction: the one code path used live, in replay and when judging a model on history.

Keeps the feature window, drops duplicates and anything not newer than the last candle, refuses
unconfirmed candles, then features -> model -> FLAT rule -> a PredictionRecord about the next
candle. Warm-up fills the window from history so the first live candle already gets a prediction.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from forecaster.baselines import Persistence
from forecaster.candles import Candle, timeframe_ms
from forecaster.config import Config, FlatConfig
from forecaster.features import BasicFeatures, FeatureWindow
from forecaster.flat import direction
from forecaster.model import CompiledModel, ModelSpec, Standardizer, build, load_compiled
from forecaster.recording import PredictionRecord
from forecaster.tracking import download_model

log = logging.getLogger(__name__)
NS_PER_MS = 1e6


class ProbabilityModel(Protocol):
    """Anything that turns one feature row into (p_up, p_down, member spread)."""

    trained: bool

    def __call__(self, x: np.ndarray) -> tuple[float, float, float]: ...


@dataclass
class PredictorCounters:
    predictions: int = 0
    duplicates: int = 0  # not newer than the last candle seen
    unconfirmed: int = 0  # refused: only closed candles enter the window
    warming: int = 0  # candles that went into the window before it was full


class Predictor:
    def __init__(
        self,
        features: BasicFeatures,
        model: ProbabilityModel,
        rule: FlatConfig,
        model_name: str,
        timeframe: str,
        standardizer: Standardizer | None = None,
    ) -> None:
        self.window = FeatureWindow(features)
        self.standardizer = standardizer
        self.model = model
        self.rule = rule
        self.model_name = model_name
        self.timeframe = timeframe
        self.step_ms = timeframe_ms(timeframe)
        self.counters = PredictorCounters()
        self.last_start: int | None = None

    def _accept(self, candle: Candle) -> bool:
        if not candle.confirmed:
            self.counters.unconfirmed += 1
            log.warning("refused unconfirmed candle %d", candle.start_ms)
            return False
        if candle.timeframe != self.timeframe:
            raise ValueError(f"predictor for {self.timeframe} got a {candle.timeframe} candle")
        if self.last_start is not None and candle.start_ms <= self.last_start:
            self.counters.duplicates += 1
            return False
        self.last_start = candle.start_ms
        return True

    def warm_up(self, candles: Iterable[Candle]) -> None:
        """Fill the window from history (no predictions): the next candle is predicted at once."""
        for candle in candles:
            if self._accept(candle):
                self.window.push(candle)

    def on_candle(self, candle: Candle, received_ns: int | None = None) -> PredictionRecord | None:
        """The prediction made at the close of `candle` about the next one; None if refused or warming."""
        received_ns = received_ns if received_ns is not None else time.perf_counter_ns()
        if not self._accept(candle):
            return None
        row = self.window.push(candle)
        if row is None:
            self.counters.warming += 1
            return None
        if self.standardizer is not None:
            row = self.standardizer(row)
        p_up, p_down, _spread = self.model(row)
        self.counters.predictions += 1
        return PredictionRecord(
            candle_ts=candle.start_ms,
            p_up=p_up,
            p_down=p_down,
            direction=direction(p_up, p_down, self.rule),
            target_ts=candle.start_ms + self.step_ms,
            model=self.model_name,
            timeframe=self.timeframe,
            latency_ms=(time.perf_counter_ns() - received_ns) / NS_PER_MS,
            trained=self.model.trained,
        )


def load_model(config: Config, features: BasicFeatures) -> tuple[ProbabilityModel, Standardizer | None]:
    """The model the config names: trained weights from model.path or model.uri, else its untrained stage."""
    if config.model.name == "persistence":
        return Persistence(), None
    path = config.model.path or (download_model(config, config.model.uri) if config.model.uri else None)
    if path:
        expect = {
            "feature_set": features.name,
            "feature_fingerprint": features.fingerprint(),
            "timeframe": config.timeframe.name,
        }
        model, sidecar = load_compiled(path, expect)
        stats = sidecar.get("normalisation")
        return model, Standardizer.from_dict(stats) if stats else None
    log.warning(
        "model=%s has no trained weights (model.path / model.uri): records say trained=false",
        config.model.name,
    )
    spec = ModelSpec.from_config(config.model, features.n_features, config.seed)
    return CompiledModel(build(spec), trained=False), None


def build_predictor(config: Config) -> Predictor:
    features = BasicFeatures.from_config(config.features)
    model, standardizer = load_model(config, features)
    return Predictor(features, model, config.flat, config.model.name, config.timeframe.name, standardizer)
