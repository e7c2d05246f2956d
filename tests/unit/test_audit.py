"""The leak audit catches what it is for: a feature that peeks ahead, a target off by one, no embargo."""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import pytest

from forecaster.candles import CandleArray, read_csv
from forecaster.checks import Status
from forecaster.config import compose_config
from forecaster.data import SAMPLE_CSV
from forecaster.evaluation.audit import (
    cut_points,
    embargo_check,
    features_check,
    live_batch_check,
    predictions_check,
    target_check,
)
from forecaster.features.basic import BasicFeatures
from forecaster.predictor import build_predictor
from forecaster.training.dataset import make_dataset
from forecaster.training.splits import walk_forward

CANDLES = read_csv(SAMPLE_CSV)[:800]


@dataclass(frozen=True)
class CentredFeatures(BasicFeatures):
    """A classic leak: the volume column replaced by a centred moving average (it reads t+1..t+2)."""

    name: str = "centred"

    def batch(self, candles: CandleArray) -> np.ndarray:
        rows = super().batch(candles)
        centred = np.convolve(candles.volume, np.ones(5) / 5, mode="same")
        rows[:, -1] = np.where(np.isnan(rows[:, -1]), np.nan, centred)
        return rows


def _cuts(rng: np.random.Generator, n: int = 10) -> list[int]:
    return cut_points(len(CANDLES), BasicFeatures().window, n, rng)


@pytest.mark.slow  # JAX compiles several networks: seconds each
def test_honest_features_and_predictions_pass() -> None:
    rng = np.random.default_rng(0)
    assert features_check(BasicFeatures(), CANDLES, _cuts(rng), rng).status == Status.OK
    config = compose_config(["model=logreg"])
    check = predictions_check(lambda: build_predictor(config, None), CANDLES, _cuts(rng, 2), rng)
    assert check.status == Status.OK


def test_a_centred_feature_is_caught() -> None:
    """Batch rows peek ahead; the live window cannot (it holds only the past), so they also differ."""
    rng = np.random.default_rng(0)
    leaky = CentredFeatures()
    assert features_check(leaky, CANDLES, _cuts(rng), rng).status == Status.FAIL
    assert live_batch_check(leaky, CANDLES[:200]).status == Status.FAIL
    assert live_batch_check(BasicFeatures(), CANDLES[:200]).status == Status.OK


def test_targets_and_embargo() -> None:
    features = BasicFeatures()
    data = make_dataset(CANDLES, features, 0.0)
    assert target_check(data, CANDLES, 0.0).status == Status.OK
    shifted = replace(data, next_ret=np.roll(data.next_ret, 1))
    assert target_check(shifted, CANDLES, 0.0).status == Status.FAIL
    embargoed = walk_forward(len(data), 2, 0.15, 0.15, features.window)
    assert embargo_check(data, embargoed, features.window, "1m").status == Status.OK
    touching = walk_forward(len(data), 2, 0.15, 0.15, 0)
    assert embargo_check(data, touching, features.window, "1m").status == Status.FAIL
