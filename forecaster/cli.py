"""The command line: `python -m forecaster [overrides]` (forecaster/__main__.py wraps it).

The command line is composed and validated before Hydra runs anything (and before JAX or MLflow
are imported), so a bad config, or a run dir that cannot be written, costs a fraction of a second
and prints one line, exit code 2.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import sys
import unicodedata
from collections.abc import Iterator
from pathlib import Path

import hydra
from hydra import compose
from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override, ValueType
from hydra.errors import HydraException, MissingConfigException
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf, open_dict
from omegaconf.errors import ConfigAttributeError, ConfigKeyError, OmegaConfBaseException

from forecaster import backend
from forecaster.config import (
    CONFIG_NAME,
    Config,
    config_source,
    initialize_hydra,
    register_schema,
    to_config,
    unknown_key_message,
)
from forecaster.errors import EXIT_USER_ERROR, ConfigError, UserError
from forecaster.interrupts import exit_interrupted
from forecaster.parts import allowed_keys, factory_of, is_part
from forecaster.run_dir_preflight import output_dir, unwritable

log = logging.getLogger("forecaster")
SEARCH_OVERRIDES = ("hydra/sweeper=", "hparams_search=")  # what brings a sweeper that expands interval()
# Hydra's own command-line flags (hydra --help): those that take a value, and those that only print.
VALUE_FLAGS = (
    ("--cfg", "-c"),
    ("--package", "-p"),
    ("--config-path", "-cp"),
    ("--config-name", "-cn"),
    ("--config-dir", "-cd"),
    ("--experimental-rerun",),
)
SWITCHES = (("--run", "-r"), ("--multirun", "-m"), ("--resolve",))
PRINT_ONLY = (("--help", "-h"), ("--hydra-help",), ("--version",), ("--shell-completion", "-sc"))
GRAMMAR_URL = "https://hydra.cc/docs/1.2/advanced/override_grammar/basic"  # as Hydra's own messages cite it
EXIT_BROKEN_PIPE = 141  # as a shell reports a writer killed by SIGPIPE


def command_line(argv: list[str]) -> tuple[bool, bool, list[str]]:
    """(whether the command only prints help or info, whether it is a -m sweep, its overrides), as
    Hydra reads them."""
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("overrides", nargs="*")
    for names in VALUE_FLAGS:
        parser.add_argument(*names)
    for names in (*SWITCHES, *PRINT_ONLY):
        parser.add_argument(*names, action="store_true", dest=_dest(names))
    parser.add_argument("--info", "-i", nargs="?", const="all")
    args, unknown = parser.parse_known_args(argv)
    printing = args.info is not None or any(getattr(args, _dest(names)) for names in PRINT_ONLY)
    if unknown and not printing:  # Hydra's argparse refuses them too, with its whole usage text
        raise ConfigError(
            f"unrecognized arguments: {' '.join(unknown)}; flags such as -m go before all the overrides "
            "or after them (python -m forecaster --help)"
        )
    return printing, args.multirun, list(args.overrides)


def _dest(names: tuple[str, ...]) -> str:
    """argparse's attribute for a flag: "--hydra-help" -> "hydra_help"."""
    return names[0].lstrip("-").replace("-", "_")


def check_command_line(argv: list[str]) -> Path | None:
    """Compose every value each override may take (sweeps included) and validate it; raise ConfigError.

    Returns the run dir (the sweep dir with -m) the command will write, as Hydra resolves it from
    the first composition; None for a command that only prints.
    """
    printing, multirun, overrides = command_line(argv)
    if printing:
        return None
    parsed = _parsed(overrides)
    target = None
    for variant in _override_variants(parsed, overrides):
        with initialize_hydra():
            try:
                cfg = compose(config_name=CONFIG_NAME, overrides=variant, return_hydra_config=target is None)
                if target is None:
                    multirun = _check_run_mode(cfg, multirun, parsed)
                    target = output_dir(cfg, multirun)
                    with open_dict(cfg):
                        del cfg["hydra"]
                to_config(cfg)
            except ConfigError:
                raise
            except (HydraException, OmegaConfBaseException, ValueError) as exc:
                raise ConfigError(f"{_one_line(exc, variant)} (in: {' '.join(variant)})") from exc
    return target


def _parsed(overrides: list[str]) -> list[Override]:
    """The overrides as Hydra reads them; an unreadable one is named with what to type instead."""
    parser = OverridesParser.create()
    for override in overrides:
        try:
            parser.parse_overrides([override])
        except HydraException as exc:
            raise ConfigError(_unreadable(override, exc)) from exc
    return parser.parse_overrides(overrides)


def _unreadable(override: str, exc: HydraException) -> str:
    """One line for an override Hydra's grammar rejects: a stray non-ASCII character, or the syntax."""
    odd = next(((i, c) for i, c in enumerate(override) if not c.isascii()), None)
    if odd is None:
        reason = str(exc).splitlines()[0].removeprefix("LexerNoViableAltException: ")
        return f"cannot read the override {override!r}: {reason}; see {GRAMMAR_URL}"
    index, char = odd
    what = f"{char!r} ({unicodedata.name(char, 'unnamed character')}) at position {index + 1}"
    ascii_form = unicodedata.normalize("NFKC", override)
    if ascii_form.isascii():
        return f"{override!r}: {what} is not plain ASCII; did you mean {ascii_form}?"
    if index < override.find("="):
        return f"{override!r}: {what}: config keys are plain ASCII (python -m forecaster --help lists them)"
    key, _, value = override.partition("=")
    return f"{override!r}: {what}; quote a value with such characters, e.g. {key}='{value}'"


def _check_run_mode(cfg: DictConfig, multirun: bool, parsed: list[Override]) -> bool:
    """Whether the command sweeps (-m, or hydra.mode=MULTIRUN as hparams_search sets); refuse what
    Hydra would refuse later with a multi-line message, or what would run nothing."""
    multirun = multirun or OmegaConf.select(cfg, "hydra.mode") == RunMode.MULTIRUN
    sweep = next((o for o in parsed if o.is_sweep_override()), None)
    if sweep is not None and not multirun:
        key, value = sweep.get_key_element(), str(sweep.input_line).partition("=")[2]
        if sweep.value_type != ValueType.SIMPLE_CHOICE_SWEEP:
            raise ConfigError(f"{sweep.input_line} is a sweep: add -m to run one job per value")
        raise ConfigError(
            f"{sweep.input_line} gives several values: add -m to run one job per value, or write "
            f"{key}=[{value}] for a list or {key}='{value}' for text"
        )
    trials = OmegaConf.select(cfg, "hydra.sweeper.n_trials", default=None)
    if multirun and isinstance(trials, int) and trials < 1:
        raise ConfigError(f"hydra.sweeper.n_trials={trials} runs no trial; set it to 1 or more")
    return multirun


def _override_variants(parsed: list[Override], overrides: list[str]) -> Iterator[list[str]]:
    """The first value of every sweep, then each other value of each sweep in turn.

    This checks every value once without composing the whole cartesian product.
    """
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


def _one_line(exc: BaseException, overrides: list[str]) -> str:
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
        return _part_key_message(omega.full_key, overrides) or unknown_key_message(omega.full_key)
    if omega is not None and getattr(omega, "full_key", None):
        return f"{omega.full_key}: {str(getattr(omega, 'msg', omega)).splitlines()[0]}"
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return " ".join(lines[:2]) if lines else type(exc).__name__


def _part_key_message(full_key: str, overrides: list[str]) -> str | None:
    """An unknown key inside a pluggable part: the message names the keys its class allows."""
    parent = full_key.rpartition(".")[0]
    if not parent:
        return None
    others = [o for o in overrides if o.lstrip("+~").partition("=")[0] != full_key]
    try:
        node = OmegaConf.select(compose(config_name=CONFIG_NAME, overrides=others), parent)
    except (HydraException, OmegaConfBaseException):
        return None
    if not is_part(node):
        return None
    allowed = ", ".join(allowed_keys(factory_of(node, parent)))
    return f"unknown key '{full_key}'; allowed keys in '{parent}': {allowed}"


def _causes(exc: BaseException | None) -> Iterator[BaseException]:
    while exc is not None:
        yield exc
        exc = exc.__cause__ or exc.__context__


def run(cfg: DictConfig) -> float | None:
    """One Hydra job: validate, build the parts, run the chosen mode.

    Returns the job's `optimized_metric` when one is configured: what a search sweeper optimises.
    """
    try:
        backend.select_platform()
        config = to_config(cfg)
        run_dir = Path(HydraConfig.get().runtime.output_dir)
        try:
            result = config.mode.run(config, run_dir)
        except KeyboardInterrupt as exc:
            exit_interrupted(exc, f"in mode={config.mode.name}")
        except BrokenPipeError:  # the reader went away (`... | head`): records are closed; stop quietly
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # nothing left to flush there
            sys.exit(EXIT_BROKEN_PIPE)
        objective = result.objective(config.optimized_metric) if config.optimized_metric else None
    except UserError as exc:
        log.error("%s", exc)
        sys.exit(EXIT_USER_ERROR)
    if result.exit_code:
        sys.exit(result.exit_code)
    return objective


def main() -> None:
    register_schema()
    try:
        target = check_command_line(sys.argv[1:])
    except ConfigError as exc:
        print(f"forecaster: config error: {exc}", file=sys.stderr)
        sys.exit(EXIT_USER_ERROR)
    if target is not None and (problem := unwritable(target)) is not None:
        print(f"forecaster: {problem}", file=sys.stderr)
        sys.exit(EXIT_USER_ERROR)
    hydra.main(version_base="1.3", config_path=config_source(), config_name=CONFIG_NAME)(run)()
