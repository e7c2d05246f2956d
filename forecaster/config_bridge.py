"""TEMPORARY bridge from today's config schemas to the pluggable classes; delete it once Hydra builds them.

`ModelConfig` (one schema for every model option) and `TrainConfig.schedule` (a string) still come
from forecaster/config.py. The integrator gives each option a `_target_` (conf/model/<option>.yaml,
a train.schedule group) and replaces both functions with `hydra.utils.instantiate`. The two dicts
below are the only place that maps option names to classes. Light at import (no JAX).
"""

from __future__ import annotations

from dataclasses import fields

from forecaster.config import ModelConfig, TrainConfig
from forecaster.errors import UserError
from forecaster.models.base import ProbabilityModel
from forecaster.models.persistence import Persistence
from forecaster.models.twohead import Ensemble, LogReg, TwoHead
from forecaster.training.schedules import Constant, Schedule, WarmupCosine

MODEL_OPTIONS_BRIDGE: dict[str, type[ProbabilityModel]] = {
    "twohead": TwoHead,
    "ensemble": Ensemble,
    "logreg": LogReg,
    "persistence": Persistence,
}
SCHEDULE_OPTIONS_BRIDGE: dict[str, type[Schedule]] = {"cosine": WarmupCosine, "constant": Constant}


def model_from_config(config: ModelConfig) -> ProbabilityModel:
    """The option class of `config.name`, given the config keys it has (the rest are not its keys)."""
    option = MODEL_OPTIONS_BRIDGE[config.name]
    keys = {f.name for f in fields(option)}  # type: ignore[arg-type]
    if option.trainable and "hidden" not in keys and config.hidden:
        # ModelConfig still has `hidden` for every option; an option without hidden layers refuses it.
        raise UserError(
            f"model={config.name} has no hidden layers, got hidden={list(config.hidden)}; use model=twohead"
        )
    return option(**{key: getattr(config, key) for key in keys})


def schedule_from_config(config: TrainConfig) -> Schedule:
    """The schedule class of `config.schedule`, given the TrainConfig keys it has."""
    option = SCHEDULE_OPTIONS_BRIDGE[config.schedule]
    return option(**{f.name: getattr(config, f.name) for f in fields(option)})  # type: ignore[arg-type]
