"""The run's typed config and the one place that decides whether a composed config is valid.

Two kinds of blocks. Plain blocks (flat, timeframe, sink, paths, live, data, train, eval) are
dataclasses below; Hydra merges their YAML onto them, so a wrong type or key fails at composition.
Pluggable parts (mode, source, features, model, tracking, train.schedule, train.calibration) name
their class in `_target_` and are checked against that class's own fields, then built (forecaster/parts.py).
Ranges and choices live in field metadata and are checked by `to_config` (forecaster/schema.py),
which also catches keys smuggled in with `+key=value`.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hydra import compose, initialize_config_dir, initialize_config_module
from hydra.core.config_store import ConfigStore
from hydra.core.global_hydra import GlobalHydra
from omegaconf import MISSING, DictConfig, OmegaConf

from forecaster.errors import ConfigError
from forecaster.features.composed import check_combination
from forecaster.parts import build, is_part
from forecaster.schema import bounded, check_bounds, choice

if TYPE_CHECKING:
    from forecaster.calibration import Calibrator
    from forecaster.features.base import FeatureSet
    from forecaster.models.base import ProbabilityModel
    from forecaster.modes.base import Mode
    from forecaster.sources.base import CandleSource
    from forecaster.tracking import TrackingBackend
    from forecaster.training.schedules import Schedule

CONFIG_NAME = "config"
SCHEMA_NAME = "config_schema"
TIMEFRAMES = ("1m", "5m", "15m", "60m")
VALIDATION = "val"  # the metrics block (metrics.json, MLflow) that searches and "best of" choices use
# train.zero_moves: what training targets make of a next candle that does not move (training/targets.py)
ZERO_MOVES = ("drop", "flat", "down", "threshold")
SELECT_BY = ("edge", "score", "decided_accuracy")  # the sweep leaderboard's choice on validation
BEST_OF_TESTS = ("spa", "reality_check")
# train.epochs' bound: far beyond any useful run (early stopping ends runs sooner), and it keeps the
# jitted loop's step count in int32 for usual batch sizes (training/loop.py checks the product)
MAX_EPOCHS = 100_000


@dataclass
class FlatConfig:
    """Abstain (FLAT) when max(p_up, p_down) < min_prob or |p_up - p_down| < min_margin."""

    name: str = "balanced"
    min_prob: float = bounded(0.55, ge=0, le=1)
    min_margin: float = bounded(0.05, ge=0, le=1)
    max_spread: float | None = bounded(None, ge=0)  # ensembles: abstain above this member spread
    # decide only this share of candles, the most confident by |p_up - p_down|; the margin it takes is
    # fitted on the validation rows at training and stored in the model card (flat=coverage)
    coverage: float | None = bounded(None, gt=0, le=1)


@dataclass
class TimeframeConfig:
    name: str = choice("1m", *TIMEFRAMES)


@dataclass
class SinkConfig:
    name: str = "jsonl"
    candles: str = "candles.jsonl"
    predictions: str = "predictions.jsonl"
    facts: str = "facts.jsonl"
    flow: str = "flow.jsonl"
    fsync: bool = False
    # keys kept per record file to skip duplicates; older ones are taken as written (a week of 1m)
    dedupe_window: int = bounded(10080, ge=1)


@dataclass
class PathsConfig:
    mlruns: str = "mlruns"
    data_cache: str = ".cache/forecaster/klines"
    jax_cache: str = ".cache/forecaster/jax"
    shared_data: str = "../shared/data"
    flow_store: str = "flow_store"


@dataclass
class PredictorEntry:
    """One predictor of a live session: a model option and a timeframe, plus a few overrides.

    model and flat name options of conf/model and conf/flat; None takes the model option's value
    (members, path, uri) or the run's top-level `flat` (flat and its thresholds).
    """

    model: str = "twohead"
    timeframe: str = choice("1m", *TIMEFRAMES)
    name: str | None = None  # default: <model>-<timeframe>; names the records' subdirectory
    members: int | None = bounded(None, ge=1)
    path: str | None = None
    uri: str | None = None
    flat: str | None = None
    min_prob: float | None = bounded(None, ge=0, le=1)
    min_margin: float | None = bounded(None, ge=0, le=1)
    max_spread: float | None = bounded(None, ge=0)
    # model=combiner (conf/model/combiner.yaml): Hedge's learning rate, its window, the entries it combines
    eta: float | None = bounded(None, gt=0)
    window: int | None = bounded(None, ge=1)
    predictors: list[str] | None = None

    @property
    def label(self) -> str:
        return self.name or f"{self.model}-{self.timeframe}"


@dataclass
class LiveConfig:
    max_candles: int | None = bounded(None, ge=1)  # per predictor; the session ends when all are done
    rolling_window: int = bounded(100, ge=1)
    upload_every: int = bounded(60, ge=1)
    metrics_every: int = bounded(60, ge=1)  # candles per MLflow metrics point
    shutdown_timeout_s: float = bounded(30.0, gt=0)  # first stop signal -> exit 0, at the latest
    reward: float = 1.0  # score of a correct decided prediction
    penalty: float = -1.0  # score of a wrong decided prediction
    flat_score: float = 0.0  # score of an abstention
    predictors: list[PredictorEntry] = field(default_factory=list)  # empty: the run's model/timeframe/flat
    min_free_mb: float = bounded(100.0, ge=0)  # below this free on the run dir's disk: stop; 0: no floor
    disk_check_s: float = bounded(10.0, ge=0)  # seconds between free-space checks (0: before every candle)
    flow_wait_ms: int = bounded(5_000, ge=0)  # the longest a candle waits for its flow bar (flow features)

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
    days: float = bounded(30.0, gt=0)  # used when start is null
    test_start: str | None = (
        None  # the test block's first candle (ISO UTC or epoch ms); null: the newest rows
    )
    test_end: str | None = None  # exclusive; null: to the end of the data


@dataclass
class TrainConfig:
    if TYPE_CHECKING:
        schedule: Schedule = MISSING
        calibration: Calibrator = MISSING
    else:
        schedule: Any = MISSING  # conf/train/schedule: the learning-rate schedule, a pluggable part
        calibration: Any = MISSING  # conf/train/calibration: fitted on validation, stored in the card
    threshold_bps: float = bounded(0.0, ge=0)
    zero_moves: str = choice("drop", *ZERO_MOVES)  # training rows whose next candle does not move
    val_fraction: float = bounded(0.15, gt=0, lt=1)
    test_fraction: float = bounded(0.15, gt=0, lt=1)
    embargo_windows: int = bounded(1, ge=1)
    folds: int = bounded(1, ge=1)
    epochs: int = bounded(20, ge=1, le=MAX_EPOCHS)
    batch_size: int = bounded(1024, ge=1)
    learning_rate: float = bounded(1e-3, gt=0)
    weight_decay: float = bounded(1e-4, ge=0)
    grad_clip: float = bounded(1.0, gt=0)
    patience: int = bounded(3, ge=1)
    bootstrap: bool = False  # each ensemble member trains on its own resample of the rows
    clip_z: float | None = bounded(None, gt=0)  # standardised inputs cut to +-clip_z; null: no cut
    label_smoothing: float = bounded(0.0, ge=0, lt=1)  # training targets pulled towards 1/2 by this much
    class_balance: bool = False  # weigh each head's up and not-up rows equally in the training loss
    yardstick: bool = True  # also fit model=gbm's defaults on the same rows and report them beside the model
    progress: bool = True

    def __post_init__(self) -> None:
        if self.val_fraction + self.test_fraction >= 1:
            raise ConfigError(
                f"train.val_fraction={self.val_fraction:g} + train.test_fraction={self.test_fraction:g} "
                "leaves no rows to train on; keep their sum below 1"
            )


@dataclass
class EvalConfig:
    records: str | None = None  # a run dir with predictions.jsonl + facts.jsonl, or an MLflow run id
    threshold_bps: float = bounded(0.0, ge=0)
    redecide: bool = False  # apply this run's flat rule to the recorded probabilities
    plots: bool = True
    compare: str | None = None  # another trained model (weights folder or models:/ URI) on the same candles
    cost_bps: float = bounded(20.0, ge=0)  # a round trip the calls' size is set against (spot taker: 2 x 10)
    min_decided: int = bounded(100, ge=1)  # fewer decided calls: "too few to judge" instead of a percentage
    # the sweep leaderboard (see conf/config.yaml): a multirun dir or an MLflow sweep tag
    sweep: str | None = None
    select: str = choice("edge", *SELECT_BY)  # what the best job is chosen by, on validation
    best_of: str = choice("spa", *BEST_OF_TESTS)  # the corrected p of "the best of N beats persistence"
    bootstrap_draws: int = bounded(1000, ge=1)
    mean_block: float = bounded(10.0, ge=1)  # stationary bootstrap's mean block length, in candles
    champion: str | None = "champion"  # alias set on the chosen job's registered version; null: none

    def __post_init__(self) -> None:
        if self.sweep and self.records:
            raise ConfigError("eval.sweep judges a training sweep, eval.records a live session: give one")


@dataclass
class Config:
    # Pluggable parts: each group option names its class in `_target_` (conf/<group>/*.yaml).
    if TYPE_CHECKING:
        mode: Mode = MISSING
        source: CandleSource = MISSING
        features: FeatureSet = MISSING
        model: ProbabilityModel = MISSING
        tracking: TrackingBackend = MISSING
    else:
        mode: Any = MISSING
        source: Any = MISSING
        features: Any = MISSING
        model: Any = MISSING
        tracking: Any = MISSING
    flat: FlatConfig = field(default_factory=FlatConfig)
    timeframe: TimeframeConfig = field(default_factory=TimeframeConfig)
    sink: SinkConfig = field(default_factory=SinkConfig)
    paths: PathsConfig = field(default_factory=PathsConfig)
    live: LiveConfig = field(default_factory=LiveConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    seed: int = bounded(0, ge=0)
    # a dotted key of the run's metrics (e.g. val.model.log_loss_up) returned to a search sweeper
    optimized_metric: str | None = None


def register_schema() -> None:
    ConfigStore.instance().store(name=SCHEMA_NAME, node=Config)


def config_source() -> str:
    """conf/ of the checkout when run from one, else the installed package `forecaster.conf`."""
    checkout = Path(__file__).resolve().parent.parent / "conf"
    if (checkout / f"{CONFIG_NAME}.yaml").is_file() and (checkout.parent / "pyproject.toml").is_file():
        return str(checkout)
    return "pkg://forecaster.conf"


def initialize_hydra() -> Any:
    """A context in which Hydra's compose API reads our config source (for use outside a Hydra app)."""
    source = config_source()
    if source.startswith("pkg://"):
        return initialize_config_module(config_module=source.removeprefix("pkg://"), version_base="1.3")
    return initialize_config_dir(config_dir=source, version_base="1.3")


def hydra_context() -> Any:
    """Nothing inside the Hydra app (compose works there); elsewhere, `initialize_hydra()`."""
    return contextlib.nullcontext() if GlobalHydra.instance().is_initialized() else initialize_hydra()


def compose_config(overrides: list[str]) -> Config:
    """The validated config of a command line, as `python -m forecaster OVERRIDES` would run it."""
    register_schema()
    with hydra_context():
        return to_config(compose(config_name=CONFIG_NAME, overrides=overrides))


def to_config(cfg: DictConfig) -> Config:
    """Check a composed config and build its parts; raise ConfigError on the first problem."""
    _reject_unknown_keys(cfg, Config, "")
    check_combination(cfg.features)
    try:
        config = OmegaConf.to_object(cfg)
    except ConfigError:
        raise
    except Exception as exc:  # omegaconf raises several unrelated types for bad values
        raise ConfigError(str(exc).splitlines()[0]) from exc
    assert isinstance(config, Config)
    config = _build_parts(config, "")
    check_bounds(config)
    _check_objective(config.optimized_metric)
    check_predictors(config)
    return config


def check_predictors(config: Config) -> dict[str, Config]:
    """Each `live.predictors` entry's whole config by name, every combiner's members checked."""
    from forecaster.models.base import Combining

    configs = {
        entry.label: entry_config(config, entry, f"live.predictors[{index}].")
        for index, entry in enumerate(config.live.predictors)
    }
    for label, each in configs.items():
        if isinstance(each.model, Combining):
            each.model.members(label, each.timeframe.name, configs)
    return configs


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


def group_options(group: str) -> list[str]:
    """The options of a config group (the files of conf/<group>), through Hydra's config loader."""
    loader = GlobalHydra.instance().config_loader()
    return sorted(loader.get_group_options(group))


def group_option(group: str, option: str) -> DictConfig:
    """The option file conf/<group>/<option>.yaml as composed by Hydra (no schema applied).

    Composed on its own, an option lands under its group's package (e.g. `model:`).
    """
    node = OmegaConf.select(compose(config_name=f"{group}/{option}"), group.replace("/", "."))
    assert isinstance(node, DictConfig)
    return node


def entry_config(config: Config, entry: PredictorEntry, where: str = "live.predictors: ") -> Config:
    """The whole run config one `live.predictors` entry stands for.

    The model comes from the entry's model option with its overrides; the FLAT rule from the entry's
    flat option, else the run's top-level one, then the entry's thresholds.
    """
    with hydra_context():
        return _entry_config(config, entry, where)


def _entry_config(config: Config, entry: PredictorEntry, where: str) -> Config:
    overrides = {
        "members": entry.members,
        "path": entry.path,
        "uri": entry.uri,
        "eta": entry.eta,
        "window": entry.window,
        "predictors": entry.predictors,
    }
    keys = {key: value for key, value in overrides.items() if value is not None}
    model = model_option(entry.model, keys, f"{where}model", f"{where}model")
    if entry.flat is not None and entry.flat not in (options := group_options("flat")):
        raise ConfigError(f"{where}flat={entry.flat} is not allowed; choose one of: {', '.join(options)}")
    flat = config.flat
    if entry.flat is not None:
        flat = OmegaConf.to_object(OmegaConf.merge(FlatConfig, group_option("flat", entry.flat)))
        assert isinstance(flat, FlatConfig)
    thresholds = {"min_prob": entry.min_prob, "min_margin": entry.min_margin, "max_spread": entry.max_spread}
    flat = dataclasses.replace(flat, **{k: v for k, v in thresholds.items() if v is not None})
    return dataclasses.replace(config, model=model, flat=flat, timeframe=TimeframeConfig(entry.timeframe))


def model_option(name: str, keys: Mapping[str, Any], where: str, at: str) -> ProbabilityModel:
    """conf/model/<name>.yaml with `keys` over its defaults, checked and built as `model=<name>` is.

    `where` names the setting that chose `name` and `at` the node of `keys`, for one-line errors.
    """
    with hydra_context():
        if name not in (options := group_options("model")):
            raise ConfigError(f"{where}={name} is not allowed; choose one of: {', '.join(options)}")
        option = OmegaConf.to_container(group_option("model", name), resolve=True)
    assert isinstance(option, dict)
    return build({**{str(key): value for key, value in option.items()}, **keys}, at)


def _check_objective(key: str | None) -> None:
    """A search may only choose on validation: the test block is scored once, to report the choice."""
    if key is not None and key.split(".")[0] != VALIDATION:
        raise ConfigError(
            f"optimized_metric={key} would choose on what is not the validation block; the test block "
            f"is scored once, to report the result. Optimise a {VALIDATION}.* key, "
            f"e.g. {VALIDATION}.model.log_loss_up"
        )


def _build_parts(value: Any, key: str) -> Any:
    """Replace every `_target_` node in the converted config with the part it describes."""
    if is_part(value):
        return build(value, key.rstrip("."))
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        changes = {
            f.name: built
            for f in dataclasses.fields(value)
            if (built := _build_parts(getattr(value, f.name), f"{key}{f.name}."))
            is not getattr(value, f.name)
        }
        return dataclasses.replace(value, **changes) if changes else value
    return value


def _reject_unknown_keys(node: DictConfig, schema: type, prefix: str) -> None:
    fields = {f.name: f for f in dataclasses.fields(schema)}
    for key in node:
        if key not in fields:
            raise ConfigError(unknown_key_message(f"{prefix}{key}"))
        kind = _resolve_type(fields[key].type)
        child = node.get(key)
        if isinstance(child, DictConfig) and isinstance(kind, type) and dataclasses.is_dataclass(kind):
            _reject_unknown_keys(child, kind, f"{prefix}{key}.")


def _resolve_type(annotation: Any) -> Any:
    """A field's annotation as a type (they are strings under `from __future__ import annotations`)."""
    return globals().get(annotation, annotation) if isinstance(annotation, str) else annotation
