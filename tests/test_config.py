"""Config composition and every bad input, through the real entry point."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from hydra.utils import get_object
from omegaconf import OmegaConf

from forecaster.config import Config, compose_config, config_source
from forecaster.errors import ConfigError
from tests.conftest import REPO, run_cli

GROUPS = (
    "mode",
    "source",
    "features",
    "model",
    "flat",
    "timeframe",
    "sink",
    "tracking",
    "paths",
    "train/schedule",
)


def _options(group: str) -> list[str]:
    return sorted(p.stem for p in (REPO / "conf" / group).glob("*.yaml"))


def _compose(*overrides: str) -> Config:
    return compose_config(list(overrides))


def _node(config: Config, group: str) -> object:
    node: object = config
    for part in group.split("/"):
        node = getattr(node, part)
    return node


def test_config_comes_from_the_checkout() -> None:
    assert Path(config_source()) == REPO / "conf"


def test_defaults_match_the_contract() -> None:
    config = _compose()
    assert config.mode.name == "dryrun"
    assert config.source.rest_url == "https://api.bybit.com"
    assert config.source.ws_url == "wss://stream.bybit.com/v5/public/spot"
    assert config.source.symbol == "BTCUSDT"
    assert config.source.ping_interval_s == 20
    assert config.source.max_backoff_s == 60
    assert config.live.max_candles is None
    assert config.model.path is None
    assert config.tracking.uri is None
    assert config.seed == 0


@pytest.mark.parametrize(("group", "option"), [(g, o) for g in GROUPS for o in _options(g)])
def test_every_option_composes(group: str, option: str) -> None:
    config = _compose(f"{group}={option}")
    node = _node(config, group)
    if hasattr(node, "name"):
        assert node.name == option
    target = OmegaConf.load(REPO / "conf" / group / f"{option}.yaml").get("_target_")
    if target is not None:  # a pluggable part: built as the class its option file names
        assert type(node) is get_object(target)


def test_validation_does_not_import_jax() -> None:
    """Parts are light to build: a bad command line is refused before JAX (and the GPU probe) load."""
    code = (
        "import sys; from forecaster.config import compose_config; "
        "models = ('twohead', 'logreg', 'ensemble', 'persistence'); "
        "[compose_config([f'model={m}', 'mode=train']) for m in models]; "
        "assert 'jax' not in sys.modules and 'mlflow' not in sys.modules and 'aiohttp' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)


def test_groups_have_the_designed_options() -> None:
    assert set(_options("mode")) == {"dryrun", "live", "facts", "train", "eval"}
    assert set(_options("model")) >= {"twohead", "logreg", "ensemble", "persistence"}
    assert set(_options("flat")) == {"balanced", "strict", "loose", "off"}
    assert set(_options("timeframe")) == {"1m", "5m", "15m", "60m"}
    assert set(_options("tracking")) == {"mlflow", "off"}
    assert set(_options("source")) >= {"bybit", "replay"}


def test_experiment_presets_set_several_groups() -> None:
    config = _compose("experiment=ensemble_5m")
    assert (config.model.name, config.model.members, config.timeframe.name, config.flat.name) == (
        "ensemble",
        8,
        "5m",
        "strict",
    )
    assert _compose("experiment=logreg_15m").train.threshold_bps == 2.0
    assert _compose("hparams_search=twohead_optuna").optimized_metric == "test.model.log_loss_up"
    assert _compose("experiment=ensemble_5m", "flat=loose").flat.name == "loose", "the command line wins"


def test_values_are_converted_to_their_types() -> None:
    config = _compose("flat.min_prob=0.7", "source.ping_interval_s=5", "live.max_candles=3")
    assert config.flat.min_prob == 0.7
    assert isinstance(config.source.ping_interval_s, float)
    assert config.live.max_candles == 3


def test_plus_cannot_smuggle_a_typo_in() -> None:
    with pytest.raises(ConfigError, match=r"unknown key 'flat\.min_prb'"):
        _compose("+flat.min_prb=0.3")


BAD_INPUTS = [
    (["flat.min_prob=1.5"], "flat.min_prob", "<= 1"),
    (["timeframe=7m"], "timeframe=7m", "1m, 5m"),
    (["source.ping_interval_s=-1"], "source.ping_interval_s", "> 0"),
    (["source.max_backoff_s=0"], "source.max_backoff_s", "> 0"),
    (["flat.min_prb=0.3"], "flat.min_prb", "min_prob"),
    (["+flat.min_prb=0.3"], "flat.min_prb", "min_prob"),
    (["+typo=1"], "typo", "allowed keys"),
    (["seed=abc"], "seed", "Integer"),
    (["seed=-1"], "seed", ">= 0"),
    (["model=huge"], "model=huge", "twohead"),
    (["model.activation=swish"], "model.activation", "relu"),
    (["model.dropout=1"], "model.dropout", "< 1"),
    (["live.max_candles=0"], "live.max_candles", ">= 1"),
    (["mode.check_network=maybe"], "mode.check_network", "bool"),
    (["model.path=a", "model.uri=b"], "model.path", "only one"),
    (["-m", "flat=strict,nope"], "flat=nope", "balanced"),
    (["live.predictors=[{modle: twohead}]"], "'modle' in a PredictorEntry", "model, timeframe"),
    (["-m", "train.learning_rate=interval(0.001,0.01)"], "train.learning_rate", "hparams_search"),
    (["-m", "flat.min_prob=0.5,2"], "flat.min_prob", "<= 1"),
]


@pytest.mark.parametrize(("args", "key", "allowed"), BAD_INPUTS, ids=[" ".join(a) for a, _, _ in BAD_INPUTS])
def test_bad_input_is_one_clear_line_and_exit_2(
    tmp_path: Path, args: list[str], key: str, allowed: str
) -> None:
    result = run_cli(*args, cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert key in lines[0] and allowed in lines[0]
    assert "Traceback" not in result.stderr + result.stdout
    assert not (tmp_path / "outputs").exists() and not (tmp_path / "multirun").exists(), "work started"


def test_help_explains_the_groups(tmp_path: Path) -> None:
    result = run_cli("--help", cwd=tmp_path)
    assert result.returncode == 0
    for group in GROUPS:
        assert f"{group}:" in result.stdout
