"""model=memory: an analog forecaster that remembers every past window and what followed it.

For the window ending at candle t it finds the k nearest stored windows whose outcome was known by
t minus `embargo` candles, and predicts the distance-weighted shares of them that went up and down,
shrunk toward the training base rates by `prior` pseudo-counts. Live, every settled candle adds its
window, so the memory tomorrow knows today. The class's fields are the option's config keys; light
at import (the store and JAX load inside the methods, in forecaster.models.pattern_memory).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from forecaster.errors import ConfigError
from forecaster.models.base import check_weights_source, needs_training
from forecaster.models.spec import ModelSpec
from forecaster.schema import bounded, choice

if TYPE_CHECKING:
    from forecaster.config import TrainConfig
    from forecaster.models.base import LoadedModel, RowPredictor
    from forecaster.models.pattern_memory import MemoryFit
    from forecaster.training.dataset import Dataset
    from forecaster.training.loop import EpochStats

INDEXES = ("exact", "faiss")


@dataclass(frozen=True)
class Memory:
    """k nearest past windows (standardised feature rows, training statistics) and their next moves."""

    trainable: ClassVar[bool] = True
    name: str = "memory"
    k: int = bounded(32, ge=1)  # neighbours per prediction
    # candles between a query and the newest outcome it may use; 60 is the window of features=basic and
    # rich, so that no neighbour shares a candle with the window it is compared to
    embargo: int = bounded(60, ge=0)
    prior: float = bounded(10.0, ge=0)  # pseudo-counts of the training base rates added to the k shares
    metric: str = choice("euclidean", "euclidean", "cosine")
    # only neighbours in the same realised-volatility regime: `regime_feature`'s training tercile (or
    # `regime_bins` quantile bins) as the query's
    same_regime: bool = False
    regime_feature: str = "vol_60"
    regime_bins: int = bounded(3, ge=2)
    capacity: int | None = bounded(2_000_000, ge=1)  # windows kept; the oldest go first; null: no bound
    save_every: int = bounded(60, ge=1)  # live: new candles between saves of the grown memory
    block: int = bounded(16_384, ge=1)  # stored windows per distance product in the exact search
    index: str = choice("exact", *INDEXES)
    faiss: dict[str, Any] = field(default_factory=dict)  # the approximate index's keys (index=faiss)
    path: str | None = None
    uri: str | None = None

    def __post_init__(self) -> None:
        check_weights_source(self.path, self.uri)
        if self.capacity is not None and self.capacity < self.k:
            raise ConfigError(f"model.capacity={self.capacity} holds fewer windows than model.k={self.k}")
        if self.same_regime and self.index == "faiss":
            raise ConfigError("model.same_regime=true needs model.index=exact (faiss cannot search by group)")

    def spec(self, n_features: int, seed: int) -> ModelSpec:
        """The card's spec: no layers; the stored windows are the weights."""
        return ModelSpec(name=self.name, n_features=n_features, hidden=(), seed=seed)

    def untrained(self, n_features: int, seed: int) -> RowPredictor:
        raise needs_training(self.name)

    def fit(
        self,
        data_train: Dataset,
        data_val: Dataset,
        config: TrainConfig,
        seed: int,
        on_epoch: Callable[[EpochStats], None] | None = None,
    ) -> MemoryFit:
        from forecaster.models.pattern_memory import fit

        return fit(self, data_train, config)

    def load(self, path: str | os.PathLike[str], expect: Mapping[str, Any] | None = None) -> LoadedModel:
        from forecaster.models.pattern_memory import load

        return load(self, path, expect)
