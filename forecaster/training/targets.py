"""train.zero_moves: what the model's training rows make of a next candle that does not move.

Only the rows a model is fitted on change; validation and test rows keep the dataset's targets and are
scored exactly as before (a call against a zero move is a miss), so every option is judged alike.
About one 1m candle in ten does not move on liquid venues: as a target both heads learn "no", which
pulls the probabilities towards FLAT without telling the direction of anything.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import numpy as np

from forecaster.facts import BPS
from forecaster.training.dataset import Dataset


def _drop(rows: Dataset, threshold_bps: float) -> Dataset:
    """Rows whose next candle closes exactly where this one did are left out."""
    return rows[rows.next_ret != 0]


def _flat(rows: Dataset, threshold_bps: float) -> Dataset:
    """Every row kept: a move inside +-threshold_bps (0: no move) has both targets 0."""
    return rows


def _down(rows: Dataset, threshold_bps: float) -> Dataset:
    """Every row kept, and a move that is not up (ret <= +threshold) is a down target."""
    y = rows.y.copy()
    y[:, 1] = 1.0 - y[:, 0]
    return replace(rows, y=y)


def _threshold(rows: Dataset, threshold_bps: float) -> Dataset:
    """Rows whose move is inside +-threshold_bps are left out (threshold_bps=0: as `drop`)."""
    return rows[np.abs(rows.next_ret) > threshold_bps / BPS]


TRAINING_TARGETS: dict[str, Callable[[Dataset, float], Dataset]] = {
    "drop": _drop,
    "flat": _flat,
    "down": _down,
    "threshold": _threshold,
}


def training_rows(rows: Dataset, zero_moves: str, threshold_bps: float) -> Dataset:
    """The rows and targets a model is fitted on, under train.zero_moves."""
    return TRAINING_TARGETS[zero_moves](rows, threshold_bps)
