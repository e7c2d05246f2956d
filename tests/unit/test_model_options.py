"""The pluggable model options and learning-rate schedules: light imports, specs, persistence."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import optax
import pytest

from forecaster.config import compose_config
from forecaster.errors import UserError
from forecaster.features.basic import BasicFeatures
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
    "forecaster.models.describe",
    "forecaster.models.spec",
    "forecaster.models.twohead",
    "forecaster.models.persistence",
    "forecaster.models.gbm",
    "forecaster.models.blend",
    "forecaster.training",
    "forecaster.training.schedules",
    "forecaster.config",
    "forecaster.features.basic",
    "forecaster.modes.dryrun",
    "forecaster.modes.facts",
    "forecaster.modes.live",
    "forecaster.modes.train",
    "forecaster.modes.eval",
)
HEAVY_MODULES = ("jax", "equinox", "optax", "lightgbm")


def test_options_and_schedules_import_without_jax() -> None:
    """Config validation imports these before JAX loads; none may pull in JAX, Equinox, Optax or LightGBM."""
    code = (
        f"import sys\nfor name in {LIGHT_MODULES!r}: __import__(name)\n"
        f"print([m for m in {HEAVY_MODULES!r} if m in sys.modules])"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


@pytest.mark.parametrize(
    ("overrides", "option", "expected"),
    [
        (["model=twohead"], TwoHead(), ModelSpec("twohead", N_FEATURES, (64, 64), seed=3)),
        (
            ["model=ensemble", "model.dropout=0.1"],
            Ensemble(dropout=0.1),
            ModelSpec("ensemble", N_FEATURES, (64, 64), dropout=0.1, members=8, seed=3, ensemble=True),
        ),
        (["model=logreg"], LogReg(), ModelSpec("logreg", N_FEATURES, (), seed=3)),
    ],
)
def test_each_option_builds_its_spec(overrides: list[str], option: object, expected: ModelSpec) -> None:
    model = compose_config(overrides).model
    assert model == option and model.trainable
    assert model.spec(N_FEATURES, 3) == expected


@pytest.mark.slow  # JAX compiles several networks: seconds each
def test_stacking_follows_the_option_and_the_member_count() -> None:
    assert isinstance(Ensemble(members=1, hidden=(8,)).untrained(N_FEATURES, 0).model, EnsembleNet)
    assert isinstance(TwoHead(members=3, hidden=(8,)).untrained(N_FEATURES, 0).model, EnsembleNet)
    single = TwoHead(hidden=(8,)).untrained(N_FEATURES, 0)
    assert isinstance(single, CompiledModel) and isinstance(single.model, TwoHeadNet)
    assert single.trained is False


def test_persistence_is_its_own_predictor_and_has_no_weights() -> None:
    model = compose_config(["model=persistence"]).model
    assert model == Persistence() and not model.trainable and model.path is None and model.uri is None
    assert model.untrained(N_FEATURES, 0) is model
    x = np.zeros(N_FEATURES)
    x[0] = -1e-3
    assert model(x) == (0.0, 1.0, 0.0) and model.trained is True
    with pytest.raises(UserError, match="has no weights"):
        model.spec(N_FEATURES, 0)


def test_load_model_serves_each_option_without_weights() -> None:
    features = BasicFeatures()
    loaded = load_model(Persistence(), features, "1m", 0, None)
    assert loaded == type(loaded)(Persistence())
    untrained = load_model(LogReg(), features, "1m", 0, None)
    assert untrained.card is None and untrained.standardizer is None
    assert isinstance(untrained.model, CompiledModel) and untrained.model.trained is False


def test_schedules() -> None:
    steps, rate = 1000, 0.01
    cosine = WarmupCosine(0.1)(rate, steps)
    reference = optax.warmup_cosine_decay_schedule(0.0, rate, 100, steps)
    assert [float(cosine(i)) for i in (0, 50, 100, 600)] == [float(reference(i)) for i in (0, 50, 100, 600)]
    assert Constant()(rate, steps) == rate
    assert compose_config(["train.schedule.warmup_fraction=0.2"]).train.schedule == WarmupCosine(0.2)
    assert compose_config(["train/schedule=constant"]).train.schedule == Constant()
