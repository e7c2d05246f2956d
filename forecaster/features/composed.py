"""A feature set composed of blocks (features=rich and any list a user writes in conf/features/).

The YAML lists the blocks with their parameters, each a `_target_` node checked like any part
(forecaster/parts.py); the set's row is the blocks' rows side by side, its window the longest
block's, and its fingerprint follows every block's class and parameters.

A preset keys its list by its own name (`blocks: {rich: [...]}`), so that several presets chosen at
once (`features=[rich,memory]`, which Hydra merges in order) keep every preset's blocks: the set is
then named `rich+memory`, its blocks in that order.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, fields, is_dataclass
from typing import Any

import numpy as np

from forecaster.candles import Candle, CandleArray
from forecaster.errors import ConfigError
from forecaster.features.base import FeatureBlock, LiveBlock, LiveRows, reads_flow

# Bump when the meaning of any block's feature changes: models trained on the old meaning must not load.
COMPOSED_VERSION = 1
FINGERPRINT_CHARS = 12


@dataclass(frozen=True)
class ComposedFeatures:
    """The blocks' feature rows concatenated in the listed order."""

    # FeatureBlock objects, built from the YAML's `_target_` nodes: a list, or lists keyed by preset
    # (concatenated in order). Typed Any because the config schema (OmegaConf) can hold neither a
    # Protocol type nor a list-or-mapping; `_blocks` is the typed view. None, not [], by default: the
    # schema's default would fix the node's type to a list.
    blocks: Any = None
    name: str = ""  # default: the presets joined by "+" ("rich+memory"), or "composed" for a list

    def __post_init__(self) -> None:
        if not self.name:
            keyed = isinstance(self.blocks, Mapping)
            object.__setattr__(self, "name", "+".join(self.blocks) if keyed else "composed")
        if not self._blocks:
            raise ConfigError(
                f"features={self.name} lists no blocks; give at least one under features.blocks"
            )
        repeated = [n for n, count in Counter(self.names).items() if count > 1]
        if repeated:
            raise ConfigError(
                f"features={self.name}: feature '{repeated[0]}' comes from two blocks; drop one"
            )

    @property
    def _blocks(self) -> list[FeatureBlock]:
        if isinstance(self.blocks, Mapping):
            return [block for preset in self.blocks.values() for block in preset]
        return list(self.blocks or [])

    @property
    def window(self) -> int:
        """Candles needed before the first complete row: the longest block's."""
        return max(block.window for block in self._blocks)

    @property
    def names(self) -> list[str]:
        return [name for block in self._blocks for name in block.names]

    @property
    def n_features(self) -> int:
        return len(self.names)

    @property
    def reads_flow(self) -> bool:
        return any(reads_flow(block) for block in self._blocks)

    def fingerprint(self) -> str:
        """Saved with a model: the blocks, their order and parameters (not the presets' names)."""
        blocks = [_spec(block) for block in self._blocks]
        spec = json.dumps({"blocks": blocks, "version": COMPOSED_VERSION}, sort_keys=True)
        return hashlib.sha256(spec.encode()).hexdigest()[:FINGERPRINT_CHARS]

    def batch(self, candles: CandleArray) -> np.ndarray:
        """(T, F) float64 in column-major order (each feature contiguous, as the blocks compute them);
        rows before the first full window are NaN."""
        out = np.full((self.n_features, len(candles)), np.nan)
        if len(candles) < self.window:
            return out.T
        column = 0
        for block in self._blocks:
            for values in block.columns(candles):
                out[column] = values
                column += 1
        out[:, : self.window - 1] = np.nan
        return out.T

    def live(self) -> LiveRows:
        """The blocks' incremental forms side by side."""
        return _ComposedLive([block.live() for block in self._blocks])


def check_combination(node: Mapping[str, Any]) -> None:
    """A one-line ConfigError where `features=[a,b]` merged a preset that is not a composed set (its
    keys and the composed presets' `blocks` in one node), instead of an unknown key of either."""
    presets = node.get("blocks")
    if not isinstance(presets, Mapping):
        return
    target = f"{ComposedFeatures.__module__}.{ComposedFeatures.__name__}"
    own = {"_target_", *(f.name for f in fields(ComposedFeatures))}
    if node.get("_target_") == target and own.issuperset(node):
        return
    other = node.get("name") or str(node.get("_target_")).rsplit(".", 1)[-1]
    raise ConfigError(
        f"features: {other} is not a composed feature set (blocks:), so it cannot be combined with"
        f" {'+'.join(presets)}; combine composed presets only, e.g. features=[rich,memory]"
    )


def _spec(value: Any) -> Any:
    """A block as {"block": class name, **parameters}, blocks nested in it (context) likewise."""
    if is_dataclass(value) and not isinstance(value, type):
        params = {f.name: _spec(getattr(value, f.name)) for f in fields(value)}
        return {"block": type(value).__name__, **params}
    if isinstance(value, list):
        return [_spec(item) for item in value]
    return value


class _ComposedLive:
    def __init__(self, blocks: list[LiveBlock]) -> None:
        self._blocks = blocks

    def push(self, candle: Candle) -> np.ndarray:
        row: list[float] = []
        for block in self._blocks:
            row += block.push(candle)
        return np.array(row)
