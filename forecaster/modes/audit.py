"""mode=audit: the leak audit of the run's feature set, model and splits, one line per check.

Recomputes features and predictions on the history truncated, and with its future altered, after
random cut points: no value at t may change. Checks that row t's target is the move of t+1 and that
the embargo keeps training targets out of validation and test windows. Exit code 1 on a leak.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from forecaster import backend
from forecaster.checks import Status
from forecaster.config import Config
from forecaster.evaluation.audit import (
    cut_points,
    embargo_check,
    features_check,
    live_batch_check,
    predictions_check,
    target_check,
)
from forecaster.history import load_history
from forecaster.modes.base import RunResult
from forecaster.predictor import Predictor, build_predictor
from forecaster.registry import weights_path
from forecaster.schema import bounded
from forecaster.show import show
from forecaster.training.dataset import make_dataset
from forecaster.training.splits import walk_forward


@dataclass(frozen=True)
class Audit:
    name: str = "audit"
    cuts: int = bounded(20, ge=1)  # random cut points for the feature check
    prediction_cuts: int = bounded(3, ge=1)  # the prediction check replays the history per cut
    max_candles: int = bounded(3000, ge=100)  # the newest candles of the period are audited

    def run(self, config: Config, run_dir: Path) -> RunResult:
        backend.configure_jax(config.paths.jax_cache)
        candles = load_history(config.source, config.data, config.timeframe.name, config.paths)
        candles = candles[-self.max_candles :]
        features = config.features
        rng = np.random.default_rng(config.seed)
        weights = weights_path(config.model, config.tracking, config.paths)

        def predictor() -> Predictor:
            return build_predictor(config, weights)

        data = make_dataset(candles, features, config.train.threshold_bps)
        train = config.train
        embargo = train.embargo_windows * features.window
        splits = walk_forward(len(data), train.folds, train.val_fraction, train.test_fraction, embargo)
        checks = [
            features_check(features, candles, cut_points(len(candles), features.window, self.cuts, rng), rng),
            live_batch_check(features, candles),
            predictions_check(
                predictor, candles, cut_points(len(candles), features.window, self.prediction_cuts, rng), rng
            ),
            target_check(data, candles, train.threshold_bps),
            embargo_check(data, splits, features.window, config.timeframe.name),
        ]
        leaks = [check.name for check in checks if check.status == Status.FAIL]
        show(
            *(check.line() for check in checks),
            f"audit: {'LEAK: ' + ', '.join(leaks) if leaks else f'no leak found in {len(candles)} candles'}",
        )
        return RunResult(exit_code=1 if leaks else 0)
