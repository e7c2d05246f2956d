"""Typed config schemas and the one place that decides whether a composed config is valid.

Hydra merges every group option onto these dataclasses, so a wrong type or an unknown key fails
at composition. Ranges and choices live in field metadata and are checked by `validate`, which
also catches keys smuggled in with `+key=value` (that syntax opens a structured config).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig, ListConfig, OmegaConf

from forecaster.errors import UserError

CONFIG_NAME = "config"
SCHEMA_NAME = "config_schema"
TIMEFRAMES = ("1m", "5m", "15m", "60m")


class ConfigError(UserError):
    """A config the user wrote that cannot run; the message is one line saying what to change."""


def _choice(default: Any, *choices: Any) -> Any:
    return field(default=default, metadata={"choices": choices})


def _bounded(default: Any, **bounds: float) -> Any:
    """bounds: any of ge, gt, le, lt."""
    return field(default=default, metadata=bounds)


@dataclass
class ModeConfig:
    name: str = _choice("dryrun", "dryrun", "live", "facts", "train", "eval")
    check_network: bool = False
    last_n: int = _bounded(5, ge=1)


@dataclass
class SourceConfig:
    name: str = _choice("bybit", "bybit", "replay")
    rest_url: str = "https://api.bybit.com"
    ws_url: str = "wss://stream.bybit.com/v5/public/spot"
    category: str = _choice("spot", "spot", "linear")
    symbol: str = "BTCUSDT"
    ping_interval_s: float = _bounded(20.0, gt=0)
    max_backoff_s: float = _bounded(60.0, gt=0)
    request_timeout_s: float = _bounded(10.0, gt=0)
    stale_timeout_s: float = _bounded(30.0, gt=0)
    healthy_reset_s: float = _bounded(60.0, gt=0)
    backoff_base_s: float = _bounded(0.5, gt=0)
    max_retries: int = _bounded(8, ge=0)
    max_concurrency: int = _bounded(4, ge=1)
    max_message_bytes: int = _bounded(65536, ge=1024)
    queue_size: int = _bounded(1000, ge=1)
    path: str | None = None
    speed: float = _bounded(0.0, ge=0)


@dataclass
class FeaturesConfig:
    name: str = _choice("basic", "basic")
    n_returns: int = _bounded(16, ge=1)
    volume_window: int = _bounded(60, ge=2)


@dataclass
class ModelConfig:
    name: str = _choice("twohead", "twohead", "logreg", "ensemble", "persistence")
    hidden: list[int] = field(default_factory=lambda: [64, 64])
    activation: str = _choice("relu", "relu", "gelu", "tanh")
    dropout: float = _bounded(0.0, ge=0, lt=1)
    members: int = _bounded(1, ge=1)
    path: str | None = None
    uri: str | None = None


@dataclass
class FlatConfig:
    name: str = _choice("balanced", "balanced", "strict", "loose", "off")
    min_prob: float = _bounded(0.55, ge=0, le=1)
    min_margin: float = _bounded(0.05, ge=0, le=1)
    max_spread: float | None = _bounded(None, ge=0)  # ensembles: abstain above this member spread


@dataclass
class TimeframeConfig:
    name: str = _choice("1m", *TIMEFRAMES)


@dataclass
class SinkConfig:
    name: str = _choice("jsonl", "jsonl")
    candles: str = "candles.jsonl"
    predictions: str = "predictions.jsonl"
    facts: str = "facts.jsonl"
    fsync: bool = False


@dataclass
class TrackingConfig:
    name: str = _choice("mlflow", "mlflow", "off")
    uri: str | None = None
    experiment: str = "forecaster"
    metrics_batch: int = _bounded(200, ge=1)


@dataclass
class PathsConfig:
    mlruns: str = "mlruns"
    data_cache: str = ".cache/forecaster/klines"
    jax_cache: str = ".cache/forecaster/jax"
    shared_data: str = "../shared/data"


@dataclass
class PredictorEntry:
    """One predictor of a live session: a model option and a timeframe, plus a few overrides.

    The model and flat options are the files of conf/model and conf/flat; None takes the model
    option's value (members, path, uri) or the run's top-level `flat` (flat and its thresholds).
    """

    model: str = _choice("twohead", *ModelConfig.__dataclass_fields__["name"].metadata["choices"])
    timeframe: str = _choice("1m", *TIMEFRAMES)
    name: str | None = None  # default: <model>-<timeframe>; names the records' subdirectory
    members: int | None = _bounded(None, ge=1)
    path: str | None = None
    uri: str | None = None
    flat: str | None = _choice(None, *FlatConfig.__dataclass_fields__["name"].metadata["choices"])
    min_prob: float | None = _bounded(None, ge=0, le=1)
    min_margin: float | None = _bounded(None, ge=0, le=1)
    max_spread: float | None = _bounded(None, ge=0)

    @property
    def label(self) -> str:
        return self.name or f"{self.model}-{self.timeframe}"


@dataclass
class LiveConfig:
    max_candles: int | None = _bounded(None, ge=1)  # per predictor; the session ends when all are done
    rolling_window: int = _bounded(100, ge=1)
    upload_every: int = _bounded(60, ge=1)
    reward: float = 1.0  # score of a correct decided prediction
    penalty: float = -1.0  # score of a wrong decided prediction
    flat_score: float = 0.0  # score of an abstention
    predictors: list[PredictorEntry] = field(default_factory=list)  # empty: the run's model/timeframe/flat

    def __post_init__(self) -> None:
        labels = [entry.label for entry in self.predictors]
        twice = sorted({label for label in labels if labels.count(label) > 1})
        if twice:
            raise ConfigError(f"live.predictors: name {twice[0]!r} is used twice; give each entry a name")
        for entry in self.predictors:
            if entry.path and entry.uri:
                raise ConfigError(f"live.predictors: {entry.label} sets both path and uri; give only one")


@dataclass
class DataConfig:
    """History for train/eval: from REST (start/end, or the last `days`) or from source=replay files."""

    start: str | None = None  # ISO date/time (UTC) or epoch ms
    end: str | None = None  # exclusive; null: now
    days: float = _bounded(30.0, gt=0)  # used when start is null


@dataclass
class TrainConfig:
    threshold_bps: float = _bounded(0.0, ge=0)
    val_fraction: float = _bounded(0.15, gt=0, lt=1)
    test_fraction: float = _bounded(0.15, gt=0, lt=1)
    embargo_windows: int = _bounded(1, ge=1)
    folds: int = _bounded(1, ge=1)
    epochs: int = _bounded(20, ge=1)
    batch_size: int = _bounded(1024, ge=1)
    learning_rate: float = _bounded(1e-3, gt=0)
    schedule: str = _choice("cosine", "cosine", "constant")
    warmup_fraction: float = _bounded(0.05, ge=0, lt=1)
    weight_decay: float = _bounded(1e-4, ge=0)
    grad_clip: float = _bounded(1.0, gt=0)
    patience: int = _bounded(3, ge=1)
    bootstrap: bool = False  # each ensemble member trains on its own resample of the rows
    progress: bool = True


@dataclass
class EvalConfig:
    records: str | None = None  # a run dir with predictions.jsonl + facts.jsonl, or an MLflow run id
    threshold_bps: float = _bounded(0.0, ge=0)
    redecide: bool = False  # apply this run's flat rule to the recorded probabilities
    plots: bool = True
    compare: str | None = None  # another trained model (weights folder or models:/ URI) on the same candles


@dataclass
class Config:
    mode: ModeConfig = field(default_factory=ModeConfig)
    source: SourceConfig = field(default_factory=SourceConfig)
    features: FeaturesConfig = field(default_factory=FeaturesConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    flat: FlatConfig = field(default_factory=FlatConfig)
    timeframe: TimeframeConfig = field(default_factory=TimeframeConfig)
    sink: SinkConfig = field(default_factory=SinkConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    paths: PathsConfig = field(default_factory=PathsConfig)
    live: LiveConfig = field(default_factory=LiveConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    seed: int = _bounded(0, ge=0)
    # a dotted key of the run's metrics.json (e.g. test.model.log_loss_up) returned to a search sweeper
    optimized_metric: str | None = None


def register_schema() -> None:
    ConfigStore.instance().store(name=SCHEMA_NAME, node=Config)


def config_source() -> str:
    """conf/ of the checkout when run from one, else the installed package `forecaster.conf`."""
    checkout = Path(__file__).resolve().parent.parent / "conf"
    if (checkout / f"{CONFIG_NAME}.yaml").is_file() and (checkout.parent / "pyproject.toml").is_file():
        return str(checkout)
    return "pkg://forecaster.conf"


def to_config(cfg: DictConfig) -> Config:
    """Check a composed config against the schema and its bounds; raise ConfigError on the first problem."""
    _reject_unknown_keys(cfg, Config, "")
    try:
        config = OmegaConf.to_object(cfg)
    except Exception as exc:  # omegaconf raises several unrelated types for bad values
        raise ConfigError(str(exc).splitlines()[0]) from exc
    _check_bounds(config, "")
    if config.model.path and config.model.uri:
        raise ConfigError("model.path and model.uri are both set; give only one of them")
    check_liveness(config.source)
    return config


def unknown_key_message(full_key: str) -> str:
    """'flat.min_prb' -> the message naming the keys allowed beside it."""
    parent, _, _ = full_key.rpartition(".")
    schema: Any = Config
    for part in filter(None, parent.split(".")):
        schema = _resolve_type({f.name: f.type for f in dataclasses.fields(schema)}.get(part))
        if not dataclasses.is_dataclass(schema):
            return f"unknown key '{full_key}'"
    allowed = ", ".join(f.name for f in dataclasses.fields(schema))
    return f"unknown key '{full_key}'; allowed keys in '{parent or 'config'}': {allowed}"


def check_liveness(source: SourceConfig) -> None:
    """Pongs come every ping_interval_s: a shorter silence limit would drop healthy connections."""
    if source.stale_timeout_s <= source.ping_interval_s:
        raise ConfigError(
            f"source.stale_timeout_s={source.stale_timeout_s} must exceed source.ping_interval_s="
            f"{source.ping_interval_s}, or a healthy but quiet connection looks dead"
        )


def _reject_unknown_keys(node: DictConfig, schema: type, prefix: str) -> None:
    fields = {f.name: f for f in dataclasses.fields(schema)}
    for key in node:
        if key not in fields:
            raise ConfigError(unknown_key_message(f"{prefix}{key}"))
        kind = fields[key].type
        child = node._get_node(key)
        if isinstance(child, DictConfig) and dataclasses.is_dataclass(_resolve_type(kind)):
            _reject_unknown_keys(child, _resolve_type(kind), f"{prefix}{key}.")


def _resolve_type(annotation: Any) -> Any:
    return globals().get(annotation, annotation) if isinstance(annotation, str) else annotation


def _check_bounds(obj: Any, prefix: str) -> None:
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        key = f"{prefix}{f.name}"
        if dataclasses.is_dataclass(value):
            _check_bounds(value, f"{key}.")
            continue
        if isinstance(value, list) and any(dataclasses.is_dataclass(item) for item in value):
            for index, item in enumerate(value):
                _check_bounds(item, f"{key}[{index}].")
            continue
        if value is None or isinstance(value, (DictConfig, ListConfig)):
            continue
        problem = _bound_problem(value, f.metadata)
        if problem:
            raise ConfigError(f"{key}={value!s} is not allowed; {problem}")


def _bound_problem(value: Any, meta: Any) -> str | None:
    if "choices" in meta and value not in meta["choices"]:
        return f"choose one of: {', '.join(str(c) for c in meta['choices'])}"
    checks = {
        "ge": (lambda b: value >= b, ">="),
        "gt": (lambda b: value > b, ">"),
        "le": (lambda b: value <= b, "<="),
        "lt": (lambda b: value < b, "<"),
    }
    wanted = [f"value {sign} {meta[name]}" for name, (ok, sign) in checks.items() if name in meta]
    failed = [name for name, (ok, _) in checks.items() if name in meta and not ok(meta[name])]
    return f"allowed: {' and '.join(wanted)}" if failed else None
