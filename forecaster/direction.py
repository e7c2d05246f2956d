"""UP / DOWN / FLAT: what a prediction says about the next candle, and what that candle did.

A StrEnum, so a direction is its own text wherever it goes: records (JSON "UP"), numpy string
arrays, console lines. FLAT is an abstention when predicted and a zero move as a fact.
"""

from __future__ import annotations

import enum

import numpy as np


class Direction(enum.StrEnum):
    UP = "UP"
    DOWN = "DOWN"
    FLAT = "FLAT"


def actual_directions(next_ret: np.ndarray) -> np.ndarray:
    """UP / DOWN / FLAT of each move (a zero move is FLAT), as a string array."""
    return np.where(next_ret > 0, Direction.UP, np.where(next_ret < 0, Direction.DOWN, Direction.FLAT))
