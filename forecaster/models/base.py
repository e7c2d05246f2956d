"""What the rest of the code needs from a model option, and what loading one gives.

Light at import (no JAX): config validation and the model options import this before JAX loads.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, runtime_checkable

import numpy as np

from forecaster.candles import Candle
from forecaster.errors import ConfigError, UserError

if TYPE_CHECKING:
    from forecaster.config import Config, TrainConfig
    from forecaster.models.card import ModelCard
    from forecaster.models.normalisation import Standardizer
    from forecaster.models.spec import ModelSpec
    from forecaster.predictor import CombiningPredictor
    from forecaster.training.dataset import Dataset
    from forecaster.training.loop import EpochStats


class RowPredictor(Protocol):
    """Anything that turns one standardised feature row into (p_up, p_down, member spread)."""

    trained: bool

    def __call__(self, x: np.ndarray) -> tuple[float, float, float]: ...


@runtime_checkable
class Remembering(Protocol):
    """A row predictor that grows while it runs (model=memory): told every closed candle in order,
    warm-up included, it learns from the moves that settle; its state is saved into the run dir."""

    def remember(self, candle: Candle, row: np.ndarray | None) -> None:
        """`candle` closed; `row` is its standardised feature row (None while the window fills)."""
        ...

    def catch_up(self, resume_after: int | None) -> int:
        """Candles of history, beyond the feature window, a restart after `resume_after` must replay."""
        ...

    @property
    def save_every(self) -> int:
        """New candles between saves of what it has learnt."""
        ...

    def metrics(self) -> dict[str, float]: ...

    def save(self, directory: str | os.PathLike[str]) -> Path:
        """What it has learnt, atomically, in `directory`."""
        ...


@dataclass(frozen=True)
class LoadedModel:
    """A predictor ready for the live path, with the standardizer and card of its weights if it has any."""

    model: RowPredictor
    standardizer: Standardizer | None = None
    card: ModelCard | None = None  # None unless trained weights were loaded


class Fitted(Protocol):
    """What an option's `fit` gives mode=train: one fold's best model, ready to score and to save.

    Each option predicts and saves in its own way (Equinox leaves, LightGBM text), so mode=train
    needs no knowledge of the model behind it.
    """

    @property
    def standardizer(self) -> Standardizer | None:
        """Fitted on the training rows and applied before the model; None: the model takes raw rows."""
        ...

    @property
    def best_epoch(self) -> int:
        """The epoch (or boosting round) whose model this is, counted from 1."""
        ...

    @property
    def epochs(self) -> int:
        """Epochs (or boosting rounds) run before training stopped."""
        ...

    def probabilities(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(p_up, p_down) as float64 for raw feature rows X (N, F), through the inference code path."""
        ...

    def save(self, directory: str | os.PathLike[str], card: ModelCard) -> Path:
        """The weights and their card in `directory` (never pickle); returns the folder."""
        ...


class ProbabilityModel(Protocol):
    """One model option (conf/model/<option>.yaml): its config keys are the implementing class's fields.

    `trainable` options have weights: `spec`, `fit` and `load` work for them; the others are their
    own predictor (`untrained`) and refuse the rest with a one-line UserError.
    """

    trainable: ClassVar[bool]
    __dataclass_fields__: ClassVar[dict[str, Any]]  # every option is a dataclass: its fields are its keys

    @property
    def name(self) -> str: ...

    @property
    def path(self) -> str | None:
        """A folder with trained weights (the option's weight files + model.json), or None."""

    @property
    def uri(self) -> str | None:
        """An MLflow models:/ or runs:/ URI of trained weights, or None."""

    def spec(self, n_features: int, seed: int) -> ModelSpec:
        """The network this option builds for `n_features` inputs, initialised from `seed`."""
        ...

    def untrained(self, n_features: int, seed: int) -> RowPredictor:
        """The predictor without trained weights (records say trained=false unless it needs none)."""
        ...

    def fit(
        self,
        data_train: Dataset,
        data_val: Dataset,
        config: TrainConfig,
        seed: int,
        on_epoch: Callable[[EpochStats], None] | None = None,
    ) -> Fitted:
        """Train a fresh model on data_train, early-stopping on data_val only."""
        ...

    def load(self, path: str | os.PathLike[str], expect: Mapping[str, Any] | None = None) -> LoadedModel:
        """Trained weights from `path`, checked against `expect` (ModelCard.check)."""
        ...


@runtime_checkable
class Combining(Protocol):
    """A model option whose inputs are other live predictors' predictions (model=combiner), not features.

    It is run only as an entry of live.predictors, after the members it names.
    """

    def members(self, label: str, timeframe: str, others: Mapping[str, Config]) -> tuple[str, ...]:
        """The entries (by name, among `others`) that entry `label` combines; ConfigError if invalid."""
        ...

    def combined(self, config: Config, members: tuple[str, ...], folder: Path) -> CombiningPredictor:
        """Its live predictor, given the entry's whole config, its members and its records folder
        (the members' folders are beside it)."""
        ...


def check_weights_source(path: str | None, uri: str | None) -> None:
    """Trained weights come from model.path or model.uri, never both."""
    if path and uri:
        raise ConfigError("model.path and model.uri are both set; give only one of them")


def needs_training(name: str) -> UserError:
    """The refusal of an option that has nothing to predict with before it is trained (gbm, blend)."""
    return UserError(
        f"model={name} has nothing to predict with before training: "
        f"run mode=train model={name}, then give model.path or model.uri"
    )
