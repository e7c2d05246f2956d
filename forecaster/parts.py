"""Pluggable parts: a config node with a `_target_` is checked against its target's own fields and built.

A model, source, feature set, tracker, mode or schedule is one class plus one YAML file naming it in
`_target_`. The class is its own schema: its dataclass fields are the keys the option may set, with
their types, bounds and choices (forecaster/schema.py). Building goes through
`hydra.utils.instantiate`, after unknown keys and bad types are turned into one-line ConfigErrors.
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Mapping, Sequence
from typing import Any

from hydra.errors import InstantiationException
from hydra.utils import get_object, instantiate
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from forecaster.errors import ConfigError, UserError
from forecaster.schema import check_bounds

TARGET = "_target_"
# Hydra's instantiate keywords: they steer the build and are not the part's own keys.
RESERVED = frozenset({TARGET, "_partial_", "_convert_", "_recursive_", "_args_"})


def is_part(node: Any) -> bool:
    return isinstance(node, Mapping) and TARGET in node


def factory_of(node: Mapping[str, Any], key: str) -> Any:
    target = str(node[TARGET])
    group = key.split(".")[0]
    try:
        return get_object(target)
    except Exception as exc:  # hydra wraps import and attribute errors alike
        raise ConfigError(f"{key}._target_={target} cannot be imported; check conf/{group}/*.yaml") from exc


def allowed_keys(factory: Any) -> list[str]:
    """The keys a part's option may set: its dataclass fields, or its factory's keyword parameters."""
    if dataclasses.is_dataclass(factory):
        return [f.name for f in dataclasses.fields(factory) if f.init]
    return [name for name in inspect.signature(factory).parameters if name != "self"]


def build(node: Mapping[str, Any], key: str) -> Any:
    """The part `node` describes, its values converted to the declared types and checked against bounds.

    Parts nested in it (e.g. the blocks of a composed feature set) are checked the same way, with
    their place in the message (`features.blocks[2].windows`), and built with it.
    """
    try:
        part = instantiate(checked(node, key), _convert_="all")
    except InstantiationException as exc:
        if isinstance(exc.__cause__, UserError):
            raise exc.__cause__ from None
        raise ConfigError(f"{key}: {str(exc.__cause__ or exc).splitlines()[0]}") from exc
    if dataclasses.is_dataclass(part):
        check_bounds(part, f"{key}.")
    return part


def checked(node: Mapping[str, Any], key: str) -> dict[str, Any]:
    """`node` with its keys checked against its target's fields and its values typed, nested parts too."""
    factory = factory_of(node, key)
    params = {name: value for name, value in node.items() if name not in RESERVED}
    allowed = allowed_keys(factory)
    unknown = [name for name in params if name not in allowed]
    if unknown:
        keys = ", ".join(allowed) or "none"
        raise ConfigError(f"unknown key '{key}.{unknown[0]}'; allowed keys in '{key}': {keys}")
    params = {name: _checked_nested(value, f"{key}.{name}") for name, value in params.items()}
    if dataclasses.is_dataclass(factory):
        params = _typed(factory, params, key)
    steering = {name: value for name, value in node.items() if name in RESERVED}
    return {**steering, **params}


def _checked_nested(value: Any, key: str) -> Any:
    if is_part(value):
        return checked(value, key)
    if isinstance(value, Mapping):  # e.g. a composed set's block lists keyed by preset
        return {name: _checked_nested(item, f"{key}.{name}") for name, item in value.items()}
    if isinstance(value, Sequence) and not isinstance(value, str):
        return [_checked_nested(item, f"{key}[{index}]") for index, item in enumerate(value)]
    return value


def _typed(schema: Any, params: Mapping[str, Any], key: str) -> dict[str, Any]:
    """`params` merged onto the dataclass schema: OmegaConf converts '5' to 5 and rejects 'abc' for an int."""
    base = OmegaConf.structured(schema)
    OmegaConf.set_readonly(base, False)  # frozen dataclasses give read-only nodes; the merge writes
    try:
        merged = OmegaConf.merge(base, OmegaConf.create(dict(params)))
    except OmegaConfBaseException as exc:
        where = f"{key}.{exc.key}" if getattr(exc, "key", None) else key
        raise ConfigError(f"{where}: {str(getattr(exc, 'msg', exc)).splitlines()[0]}") from exc
    missing = sorted(OmegaConf.missing_keys(merged))
    if missing:
        raise ConfigError(f"{key}.{missing[0]} has no value; set it, e.g. {key}.{missing[0]}=...")
    container = OmegaConf.to_container(merged, resolve=True)
    assert isinstance(container, dict)
    return {str(name): value for name, value in container.items()}
