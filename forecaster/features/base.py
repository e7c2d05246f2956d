"""What every feature set offers: a batch form for history and the window it needs live.

A feature set is one class plus one YAML file (conf/features/<name>.yaml with `_target_`); its
dataclass fields are the option's keys. Live prediction keeps the last `window` candles and takes
the newest row of `batch` over them (forecaster/features/window.py), so live equals batch.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np

from forecaster.candles import Candle, CandleArray


class FeatureSet(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def window(self) -> int:
        """Candles needed before the first complete row."""
        ...

    @property
    def names(self) -> list[str]: ...

    @property
    def n_features(self) -> int: ...

    def fingerprint(self) -> str:
        """Saved with a model: a model only runs on the features it was trained on."""
        ...

    def batch(self, candles: CandleArray) -> np.ndarray:
        """(T, F) float64 rows, row t from candles <= t only; rows before the first full window are NaN."""
        ...


class LiveRows(Protocol):
    """The incremental form of a feature set or block: one candle in, its feature row out."""

    def push(self, candle: Candle) -> np.ndarray:
        """The row ending at `candle` (the batch row of the same candle); NaN while the window fills."""
        ...


@runtime_checkable
class IncrementalFeatures(Protocol):
    """A feature set with an incremental live form, O(1) work per candle in Python."""

    def live(self) -> LiveRows: ...


@runtime_checkable
class FlowReading(Protocol):
    """A feature set or block that reads each candle's order-flow bar (Candle.flow): live mode then
    streams the flow beside the candles and records it (forecaster/live/flow_join.py)."""

    @property
    def reads_flow(self) -> bool: ...


def reads_flow(features: object) -> bool:
    return isinstance(features, FlowReading) and features.reads_flow


class LiveBlock(Protocol):
    """The incremental form of one block: plain floats, gathered into one array by the composed set."""

    def push(self, candle: Candle) -> list[float]:
        """The block's row ending at `candle`; NaN while its window fills."""
        ...


class FeatureBlock(Protocol):
    """One group of related features inside a composed feature set (forecaster/features/composed.py).

    A block is a frozen dataclass whose fields are its config keys; they also make its fingerprint.
    """

    @property
    def window(self) -> int:
        """Candles needed before the block's first complete row."""
        ...

    @property
    def names(self) -> list[str]: ...

    def columns(self, candles: CandleArray) -> list[np.ndarray]:
        """One float64 series of length T per name, value t from candles <= t only. Values before the
        block's window may be partial: the composed set blanks every row before its own window."""
        ...

    def live(self) -> LiveBlock:
        """A fresh incremental form giving the same rows as `batch`, candle by candle."""
        ...
