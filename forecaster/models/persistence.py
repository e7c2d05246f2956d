"""model=persistence: predict that the last move repeats. Also the baseline of every training and eval run.

Needs no training and has no weights, so it is its own predictor. Light at import (no JAX).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, NoReturn

import numpy as np

from forecaster.baselines import BaselinePredictions, persistence_from_moves
from forecaster.direction import actual_directions
from forecaster.errors import UserError

if TYPE_CHECKING:
    from forecaster.config import TrainConfig
    from forecaster.models.base import Fitted, LoadedModel
    from forecaster.models.spec import ModelSpec
    from forecaster.training.dataset import Dataset
    from forecaster.training.loop import EpochStats

LAST_RETURN = 0  # column of ret_0 (the newest log-return) in every feature set


@dataclass(frozen=True)
class Persistence:
    """Predict that the last move repeats; a zero last move is a tie (FLAT)."""

    trainable: ClassVar[bool] = False
    trained: ClassVar[bool] = True  # nothing to train: records say trained=true
    name: str = "persistence"

    @property
    def path(self) -> str | None:
        return None

    @property
    def uri(self) -> str | None:
        return None

    def batch(self, rows: np.ndarray) -> BaselinePredictions:
        return persistence_from_moves(actual_directions(np.asarray(rows, np.float64)[:, LAST_RETURN]))

    def __call__(self, x: np.ndarray) -> tuple[float, float, float]:
        out = self.batch(np.asarray(x)[None, :])
        return float(out.p_up[0]), float(out.p_down[0]), 0.0

    def untrained(self, n_features: int, seed: int) -> Persistence:
        return self

    def spec(self, n_features: int, seed: int) -> ModelSpec:
        self._no_weights()

    def fit(
        self,
        data_train: Dataset,
        data_val: Dataset,
        config: TrainConfig,
        seed: int,
        on_epoch: Callable[[EpochStats], None] | None = None,
    ) -> Fitted:
        self._no_weights()

    def load(self, path: str | os.PathLike[str], expect: Mapping[str, Any] | None = None) -> LoadedModel:
        self._no_weights()

    def _no_weights(self) -> NoReturn:
        raise UserError(f"model={self.name} has no weights: it needs no training and loads none")
