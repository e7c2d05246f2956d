"""model=gbm: two LightGBM binary boosters, one per head (y_up, y_down); also mode=train's yardstick.

A gradient-boosted tree on the same rows shows at once whether a network leaves signal on the
table. The class's fields are the option's config keys; light at import (LightGBM loads inside the
methods, in forecaster.models.boosted).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from forecaster.models.base import check_weights_source, needs_training
from forecaster.models.spec import ModelSpec
from forecaster.schema import bounded

if TYPE_CHECKING:
    from forecaster.config import TrainConfig
    from forecaster.models.base import LoadedModel, RowPredictor
    from forecaster.models.boosted import Boosted
    from forecaster.training.dataset import Dataset
    from forecaster.training.loop import EpochStats


@dataclass(frozen=True)
class GBM:
    """LightGBM boosters for p_up and p_down, early-stopped on the validation block only.

    Defaults suit ~40 noisy features and ~100k rows: small trees, many rows per leaf, row and
    feature subsampling and an L2 penalty, so that the trees do not learn the noise.
    """

    trainable: ClassVar[bool] = True
    name: str = "gbm"
    num_leaves: int = bounded(15, ge=2)
    learning_rate: float = bounded(0.05, gt=0)
    n_estimators: int = bounded(500, ge=1)  # boosting rounds at most, per head
    min_data_in_leaf: int = bounded(200, ge=1)
    feature_fraction: float = bounded(0.8, gt=0, le=1)
    bagging_fraction: float = bounded(0.8, gt=0, le=1)  # rows sampled per round (with bagging_freq > 0)
    bagging_freq: int = bounded(1, ge=0)  # resample rows every this many rounds; 0: no bagging
    lambda_l2: float = bounded(1.0, ge=0)
    early_stopping_rounds: int = bounded(50, ge=1)  # rounds without a better validation log loss
    num_threads: int = bounded(0, ge=0)  # 0: LightGBM's default (all cores)
    seed: int | None = None  # null: the run's seed
    path: str | None = None
    uri: str | None = None

    def __post_init__(self) -> None:
        check_weights_source(self.path, self.uri)

    def spec(self, n_features: int, seed: int) -> ModelSpec:
        """The card's spec: trees have no hidden layers; the boosters themselves are the weights."""
        return ModelSpec(name=self.name, n_features=n_features, hidden=(), seed=self._seed(seed))

    def untrained(self, n_features: int, seed: int) -> RowPredictor:
        raise needs_training(self.name)

    def fit(
        self,
        data_train: Dataset,
        data_val: Dataset,
        config: TrainConfig,
        seed: int,
        on_epoch: Callable[[EpochStats], None] | None = None,
    ) -> Boosted:
        from forecaster.models.boosted import fit

        return fit(
            self.booster_params(seed), data_train, data_val, self.n_estimators, self.early_stopping_rounds
        )

    def load(self, path: str | os.PathLike[str], expect: Mapping[str, Any] | None = None) -> LoadedModel:
        from forecaster.models.boosted import load

        return load(path, expect)

    def booster_params(self, seed: int) -> dict[str, Any]:
        """LightGBM's parameters from this option's keys (rounds and early stopping go to lgb.train)."""
        return {
            "num_leaves": self.num_leaves,
            "learning_rate": self.learning_rate,
            "min_data_in_leaf": self.min_data_in_leaf,
            "feature_fraction": self.feature_fraction,
            "bagging_fraction": self.bagging_fraction,
            "bagging_freq": self.bagging_freq,
            "lambda_l2": self.lambda_l2,
            "num_threads": self.num_threads,
            "seed": self._seed(seed),
        }

    def _seed(self, seed: int) -> int:
        return seed if self.seed is None else self.seed
