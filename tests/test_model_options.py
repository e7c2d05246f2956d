"""The pluggable model options and learning-rate schedules: light imports, specs, persistence, the bridge."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import optax
import pytest
from forecaster.config_bridge import model_from_config, schedule_from_config

from forecaster.config import Config, ModelConfig, TrainConfig
from forecaster.errors import UserError
from forecaster.features import BasicFeatures
from forecaster.models.inference import CompiledModel
from forecaster.models.network import EnsembleNet, TwoHeadNet
from forecaster.models.persistence import Persistence
from forecaster.models.spec import ModelSpec
from forecaster.models.twohead import Ensemble, LogReg, TwoHead
from forecaster.predictor import load_model
from forecaster.training.schedules import Constant, WarmupCosine

N_FEATURES = 19
LIGHT_MODULES = (
    "forecaster.models",
    "forecaster.models.base",
    "forecaster.models.spec",
    "forecaster.models.twohead",
    "forecaster.models.persistence",
    "forecaster.training",
    "forecaster.training.schedules",
    "forecaster.config_bridge",
)
HEAVY_MODULES = ("jax", "equinox", "optax")


def test_options_and_schedules_import_without_jax() -> None:
    """Config validation imports these before JAX loads; none may pull in JAX, Equinox or Optax."""
    code = (
        f"import sys\nfor name in {LIGHT_MODULES!r}: __import__(name)\n"
        f"print([m for m in {HEAVY_MODULES!r} if m in sys.modules])"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


@pytest.mark.parametrize(
    ("config", "option", "expected"),
    [
        (ModelConfig(name="twohead"), TwoHead(), ModelSpec("twohead", N_FEATURES, (64, 64), seed=3)),
        (
            ModelConfig(name="ensemble", members=8, dropout=0.1),
            Ensemble(dropout=0.1),
            ModelSpec("ensemble", N_FEATURES, (64, 64), dropout=0.1, members=8, seed=3, ensemble=True),
        ),
        (ModelConfig(name="logreg", hidden=[]), LogReg(), ModelSpec("logreg", N_FEATURES, (), seed=3)),
    ],
)
def test_each_option_builds_its_spec(config: ModelConfig, option: object, expected: ModelSpec) -> None:
    model = model_from_config(config)
    assert model == option and model.trainable
    assert model.spec(N_FEATURES, 3) == expected


def test_stacking_follows_the_option_and_the_member_count() -> None:
    assert isinstance(Ensemble(members=1, hidden=(8,)).untrained(N_FEATURES, 0).model, EnsembleNet)
    assert isinstance(TwoHead(members=3, hidden=(8,)).untrained(N_FEATURES, 0).model, EnsembleNet)
    single = TwoHead(hidden=(8,)).untrained(N_FEATURES, 0)
    assert isinstance(single, CompiledModel) and isinstance(single.model, TwoHeadNet)
    assert single.trained is False


def test_persistence_is_its_own_predictor_and_has_no_weights() -> None:
    model = model_from_config(ModelConfig(name="persistence", hidden=[]))
    assert model == Persistence() and not model.trainable and model.path is None and model.uri is None
    assert model.untrained(N_FEATURES, 0) is model
    x = np.zeros(N_FEATURES)
    x[0] = -1e-3
    assert model(x) == (0.0, 1.0, 0.0) and model.trained is True
    with pytest.raises(UserError, match="has no weights"):
        model.spec(N_FEATURES, 0)


def test_load_model_serves_each_option_without_weights() -> None:
    features = BasicFeatures.from_config(Config().features)
    loaded = load_model(Config(model=ModelConfig(name="persistence", hidden=[])), features)
    assert loaded == type(loaded)(Persistence())
    untrained = load_model(Config(model=ModelConfig(name="logreg", hidden=[])), features)
    assert untrained.card is None and untrained.standardizer is None
    assert isinstance(untrained.model, CompiledModel) and untrained.model.trained is False


def test_schedules() -> None:
    steps, rate = 1000, 0.01
    cosine = WarmupCosine(0.1)(rate, steps)
    reference = optax.warmup_cosine_decay_schedule(0.0, rate, 100, steps)
    assert [float(cosine(i)) for i in (0, 50, 100, 600)] == [float(reference(i)) for i in (0, 50, 100, 600)]
    assert Constant()(rate, steps) == rate
    assert schedule_from_config(TrainConfig(schedule="cosine", warmup_fraction=0.2)) == WarmupCosine(0.2)
    assert schedule_from_config(TrainConfig(schedule="constant")) == Constant()
