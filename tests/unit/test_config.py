"""Config composition and every bad input, through the real entry point."""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra.utils import get_object
from omegaconf import OmegaConf

from forecaster.config import Config, compose_config, config_source
from forecaster.errors import ConfigError
from tests.conftest import REPO

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


def test_groups_have_the_designed_options() -> None:
    assert set(_options("mode")) == {"dryrun", "live", "facts", "train", "eval", "audit", "models", "record"}
    assert set(_options("model")) >= {"twohead", "logreg", "ensemble", "gbm", "persistence"}
    assert set(_options("flat")) == {"balanced", "strict", "loose", "off", "coverage"}
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
    assert _compose("hparams_search=twohead_optuna").optimized_metric == "val.model.log_loss_up"
    assert _compose("experiment=ensemble_5m", "flat=loose").flat.name == "loose", "the command line wins"


def test_the_rich_experiments_compose_what_validation_chose() -> None:
    rich_1m = _compose("experiment=rich_1m")
    assert (rich_1m.model.name, rich_1m.model.members, rich_1m.features.name, rich_1m.flat.name) == (
        "blend",
        ("twohead", "gbm"),
        "rich",
        "off",
    )
    assert rich_1m.model.options[0].hidden == (32,)  # the twohead member, first in the list
    for timeframe in ("5m", "15m"):
        config = _compose(f"experiment=rich_{timeframe}")
        assert (config.model.name, config.model.hidden, config.timeframe.name) == (
            "twohead",
            (32,),
            timeframe,
        )


def test_values_are_converted_to_their_types() -> None:
    config = _compose("flat.min_prob=0.7", "source.ping_interval_s=5", "live.max_candles=3")
    assert config.flat.min_prob == 0.7
    assert isinstance(config.source.ping_interval_s, float)
    assert config.live.max_candles == 3


def test_plus_cannot_smuggle_a_typo_in() -> None:
    with pytest.raises(ConfigError, match=r"unknown key 'flat\.min_prb'"):
        _compose("+flat.min_prb=0.3")
