"""Entry point: `python -m forecaster [overrides]`.

The command line is composed and validated before Hydra runs anything (and before JAX or MLflow
are imported), so a bad config costs a fraction of a second and prints one line, exit code 2.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import logging
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import hydra
from hydra import compose, initialize_config_dir, initialize_config_module
from hydra._internal.utils import get_args_parser
from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import HydraException, MissingConfigException
from omegaconf import DictConfig
from omegaconf.errors import ConfigAttributeError, ConfigKeyError, OmegaConfBaseException

from forecaster import backend
from forecaster.config import (
    CONFIG_NAME,
    Config,
    ConfigError,
    config_source,
    register_schema,
    to_config,
    unknown_key_message,
)
from forecaster.errors import UserError
from forecaster.modes import METRICS_FILE

log = logging.getLogger("forecaster")
EXIT_USER_ERROR = 2
SEARCH_OVERRIDES = ("hydra/sweeper=", "hparams_search=")  # what brings a sweeper that expands interval()


def check_command_line(argv: list[str]) -> None:
    """Compose every value each override may take (sweeps included) and validate it; raise ConfigError."""
    args, _ = get_args_parser().parse_known_args(argv)
    if args.help or args.hydra_help or args.info or args.shell_completion:
        return
    for overrides in _override_variants(args.overrides):
        try:
            to_config(_compose(overrides))
        except ConfigError:
            raise
        except (HydraException, OmegaConfBaseException, ValueError) as exc:
            raise ConfigError(f"{_one_line(exc)} (in: {' '.join(overrides)})") from exc


def _override_variants(overrides: list[str]) -> Iterator[list[str]]:
    """The first value of every sweep, then each other value of each sweep in turn.

    This checks every value once without composing the whole cartesian product.
    """
    try:
        parsed = OverridesParser.create().parse_overrides(overrides)
    except HydraException as exc:
        raise ConfigError(_one_line(exc)) from exc
    choices: list[list[str]] = []
    for override in parsed:
        key = override.get_key_element()
        if not override.is_sweep_override():
            choices.append([f"{key}={override.get_value_element_as_str()}"])
            continue
        if override.is_interval_sweep() and not any(o.startswith(SEARCH_OVERRIDES) for o in overrides):
            raise ConfigError(
                f"{key}: interval(...) needs a search sweeper (hparams_search=...); list values instead"
            )
        try:
            choices.append([f"{key}={value}" for value in override.sweep_string_iterator()])
        except Exception:  # searches such as interval(...) are the sweeper's to expand
            continue
    base = [values[0] for values in choices]
    yield base
    for index, values in enumerate(choices):
        for value in values[1:]:
            yield [*base[:index], value, *base[index + 1 :]]


def _compose(overrides: list[str]) -> DictConfig:
    source = config_source()
    if source.startswith("pkg://"):
        init = initialize_config_module(config_module=source.removeprefix("pkg://"), version_base="1.3")
    else:
        init = initialize_config_dir(config_dir=source, version_base="1.3")
    with init:
        return compose(config_name=CONFIG_NAME, overrides=overrides)


def _one_line(exc: BaseException) -> str:
    """Hydra/OmegaConf errors are multi-line with object dumps; keep what names the key and the fix."""
    missing = next((e for e in _causes(exc) if isinstance(e, MissingConfigException)), None)
    if missing is not None and missing.options:
        group = (missing.missing_cfg_file or "").rpartition("/")[0] or "config group"
        wanted = (missing.missing_cfg_file or "").rpartition("/")[2]
        return f"{group}={wanted} does not exist; choose one of: {', '.join(sorted(missing.options))}"
    omega = next((e for e in _causes(exc) if isinstance(e, OmegaConfBaseException)), None)
    if isinstance(omega, (ConfigKeyError, ConfigAttributeError)) and omega.full_key:
        owner = omega.object_type
        if "." not in omega.full_key and dataclasses.is_dataclass(owner) and owner is not Config:
            # inside a list of structured entries OmegaConf reports the key without its path
            allowed = ", ".join(f.name for f in dataclasses.fields(owner))
            return f"unknown key '{omega.full_key}' in a {owner.__name__}; allowed keys: {allowed}"
        return unknown_key_message(omega.full_key)
    if omega is not None and getattr(omega, "full_key", None):
        return f"{omega.full_key}: {str(getattr(omega, 'msg', omega)).splitlines()[0]}"
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return " ".join(lines[:2]) if lines else type(exc).__name__


def _causes(exc: BaseException | None) -> Iterator[BaseException]:
    while exc is not None:
        yield exc
        exc = exc.__cause__ or exc.__context__


def run(cfg: DictConfig) -> float | None:
    """One Hydra job: validate, then hand over to the module of the chosen mode.

    Returns the job's `optimized_metric` when one is configured: what a search sweeper optimises.
    """
    try:
        config = to_config(cfg)
        backend.select_platform()
        mode = importlib.import_module(f"forecaster.modes.{config.mode.name}")
        run_dir = Path(HydraConfig.get().runtime.output_dir)
        code = mode.run(config, run_dir)
        objective = read_objective(run_dir, config.optimized_metric) if config.optimized_metric else None
    except UserError as exc:
        log.error("%s", exc)
        sys.exit(EXIT_USER_ERROR)
    if code:
        sys.exit(code)
    return objective


def read_objective(run_dir: Path, key: str) -> float:
    """`key` (dotted, e.g. test.model.log_loss_up) of the job's metrics.json."""
    path = run_dir / METRICS_FILE
    try:
        value: Any = json.loads(path.read_text())
        for part in key.split("."):
            value = value[part]
        return float(value)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise UserError(
            f"optimized_metric={key} is not a number in {path}; use a dotted key of that file, "
            "e.g. test.model.log_loss_up for mode=train"
        ) from exc


def main() -> None:
    register_schema()
    try:
        check_command_line(sys.argv[1:])
    except ConfigError as exc:
        print(f"forecaster: config error: {exc}", file=sys.stderr)
        sys.exit(EXIT_USER_ERROR)
    hydra.main(version_base="1.3", config_path=config_source(), config_name=CONFIG_NAME)(run)()


if __name__ == "__main__":
    main()
