"""Bounds and choices of config values, declared beside each field and checked in one place.

Every config class (the top-level blocks in forecaster/config.py and every pluggable part built
from a `_target_`) declares its limits with `bounded` or `choice`; `check_bounds` walks a built
config and raises a one-line ConfigError naming the first value outside them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import field
from typing import Any

from forecaster.errors import ConfigError

BOUND_CHECKS: dict[str, tuple[Callable[[Any, Any], bool], str]] = {
    "ge": (lambda value, bound: value >= bound, ">="),
    "gt": (lambda value, bound: value > bound, ">"),
    "le": (lambda value, bound: value <= bound, "<="),
    "lt": (lambda value, bound: value < bound, "<"),
}


def choice(default: Any, *choices: Any) -> Any:
    """A field whose value must be one of `choices`."""
    return field(default=default, metadata={"choices": choices})


def bounded(default: Any, **bounds: float) -> Any:
    """A field with numeric bounds: any of ge, gt, le, lt (for a list or tuple: of each entry)."""
    return field(default=default, metadata=bounds)


def check_bounds(obj: Any, prefix: str = "") -> None:
    """Raise ConfigError for the first field of `obj` (a dataclass, searched recursively) out of bounds."""
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        key = f"{prefix}{f.name}"
        if dataclasses.is_dataclass(value):
            check_bounds(value, f"{key}.")
        elif isinstance(value, list | tuple | Mapping) and _holds_parts(value):
            _check_parts(value, key)
        elif isinstance(value, list | tuple):  # bounds of a list field hold for each entry
            problem = next(filter(None, (bound_problem(item, f.metadata) for item in value)), None)
            if problem:
                raise ConfigError(f"{key}={list(value)} is not allowed; {problem} for each entry")
        elif value is not None:
            problem = bound_problem(value, f.metadata)
            if problem:
                raise ConfigError(f"{key}={value!s} is not allowed; {problem}")


def _holds_parts(value: Any) -> bool:
    """A list of dataclasses, or a mapping of such lists (a composed set's blocks keyed by preset)."""
    items = list(value.values()) if isinstance(value, Mapping) else value
    return any(
        dataclasses.is_dataclass(item) or (isinstance(item, list) and _holds_parts(item)) for item in items
    )


def _check_parts(value: Any, key: str) -> None:
    if isinstance(value, Mapping):
        for name, item in value.items():
            _check_parts(item, f"{key}.{name}")
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            _check_parts(item, f"{key}[{index}]")
    elif dataclasses.is_dataclass(value):
        check_bounds(value, f"{key}.")


def bound_problem(value: Any, meta: Mapping[str, Any]) -> str | None:
    """What is wrong with `value` under a field's metadata, or None."""
    if "choices" in meta and value not in meta["choices"]:
        return f"choose one of: {', '.join(str(c) for c in meta['choices'])}"
    declared = [(name, check, sign) for name, (check, sign) in BOUND_CHECKS.items() if name in meta]
    if any(not check(value, meta[name]) for name, check, _ in declared):
        return "allowed: " + " and ".join(f"value {sign} {meta[name]}" for name, _, sign in declared)
    return None
