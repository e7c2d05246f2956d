"""A feature set composed of blocks (features=rich and any list a user writes in conf/features/).

The YAML lists the blocks with their parameters, each a `_target_` node checked like any part
(forecaster/parts.py); the set's row is the blocks' rows side by side, its window the longest
block's, and its fingerprint follows every block's class and parameters.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from dataclasses import dataclass, field, fields, is_dataclass
from typing import Any

import numpy as np

from forecaster.candles import Candle, CandleArray
from forecaster.errors import ConfigError
from forecaster.features.base import FeatureBlock, LiveBlock, LiveRows

# Bump when the meaning of any block's feature changes: models trained on the old meaning must not load.
COMPOSED_VERSION = 1
FINGERPRINT_CHARS = 12


@dataclass(frozen=True)
class ComposedFeatures:
    """The blocks' feature rows concatenated in the listed order."""

    # FeatureBlock objects, built from the YAML's `_target_` nodes; typed Any because the config
    # schema (OmegaConf) cannot hold a Protocol type. `_blocks` is the typed view.
    blocks: list[Any] = field(default_factory=list)
    name: str = "composed"

    def __post_init__(self) -> None:
        if not self.blocks:
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
        return list(self.blocks)

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

    def fingerprint(self) -> str:
        """Saved with a model: the blocks, their order and parameters (not the preset's name)."""
        blocks = [_spec(block) for block in self.blocks]
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
