"""The model options backed by the two-head network: model=twohead, model=ensemble and model=logreg.

Each class's fields are exactly its option's config keys. Light at import: JAX, Equinox and Optax
load inside the methods, when a network is built, trained or loaded.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from forecaster.errors import ConfigError
from forecaster.models.base import LoadedModel, check_weights_source
from forecaster.models.spec import ACTIVATION_NAMES, ModelSpec
from forecaster.schema import bounded, choice

if TYPE_CHECKING:
    from forecaster.config import TrainConfig
    from forecaster.models.inference import CompiledModel
    from forecaster.training.dataset import Dataset
    from forecaster.training.loop import EpochStats, TrainResult


class NetworkModel:
    """What every network-backed option shares; a subclass says its trunk and whether members stack."""

    trainable: ClassVar[bool] = True
    stacked: ClassVar[bool] = False  # members on a leading axis even when there is one
    name: str
    members: int
    path: str | None
    uri: str | None

    def __post_init__(self) -> None:
        check_weights_source(self.path, self.uri)

    def trunk(self) -> dict[str, Any]:
        """The spec's hidden/activation/dropout; no hidden layers: two logistic regressions on the input."""
        return {"hidden": ()}

    def spec(self, n_features: int, seed: int) -> ModelSpec:
        return ModelSpec(
            name=self.name,
            n_features=n_features,
            members=int(self.members),
            seed=seed,
            ensemble=self.stacked,
            **self.trunk(),
        )

    def untrained(self, n_features: int, seed: int) -> CompiledModel:
        from forecaster.models.inference import CompiledModel
        from forecaster.models.network import build

        return CompiledModel(build(self.spec(n_features, seed)), trained=False)

    def fit(
        self,
        data_train: Dataset,
        data_val: Dataset,
        config: TrainConfig,
        seed: int,
        on_epoch: Callable[[EpochStats], None] | None = None,
    ) -> TrainResult:
        from forecaster.training.loop import train

        return train(self.spec(data_train.X.shape[1], seed), data_train, data_val, config, seed, on_epoch)

    def load(self, path: str | os.PathLike[str], expect: Mapping[str, Any] | None = None) -> LoadedModel:
        from forecaster.models.checkpoint import load_compiled

        compiled, card = load_compiled(path, expect)
        return LoadedModel(compiled, card.normalisation, card)


@dataclass(frozen=True)
class TwoHead(NetworkModel):
    """MLP trunk with two sigmoid heads, p_up and p_down; members > 1 stacks that many."""

    name: str = "twohead"
    hidden: tuple[int, ...] = bounded((64, 64), ge=1)  # any sequence of widths; kept as a tuple
    activation: str = choice("relu", *ACTIVATION_NAMES)
    dropout: float = bounded(0.0, ge=0, lt=1)
    members: int = bounded(1, ge=1)
    path: str | None = None
    uri: str | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        object.__setattr__(self, "hidden", tuple(int(w) for w in self.hidden))
        if not self.hidden:  # else its weights and runs would carry this name for what is a logreg
            raise ConfigError(
                f"model={self.name} with model.hidden=[] has no hidden layer: that is model=logreg "
                "(model.members for an ensemble of them); use it, or give hidden widths"
            )

    def trunk(self) -> dict[str, Any]:
        return {
            "hidden": self.hidden,
            "activation": self.activation,
            "dropout": float(self.dropout),
        }


@dataclass(frozen=True)
class Ensemble(TwoHead):
    """K two-head members with different seeds, run in one vmapped call (stacked even when K=1)."""

    stacked: ClassVar[bool] = True
    name: str = "ensemble"
    members: int = bounded(8, ge=1)


@dataclass(frozen=True)
class LogReg(NetworkModel):
    """The two heads without hidden layers: two logistic regressions on the features."""

    name: str = "logreg"
    members: int = bounded(1, ge=1)
    path: str | None = None
    uri: str | None = None
