"""Baselines that need no training, judged on the same candles as the models.

Each gives, per feature row, a decided direction and the two probabilities, so the evaluation
module scores them exactly like a model. Persistence, also a model option, is
forecaster.models.persistence.Persistence.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from forecaster.direction import Direction

CERTAIN, UNSURE = 1.0, 0.5


@dataclass(frozen=True)
class BaselinePredictions:
    directions: np.ndarray
    p_up: np.ndarray
    p_down: np.ndarray


def persistence_from_moves(moves: np.ndarray) -> BaselinePredictions:
    """Persistence given the direction of the move into each candle (from features or from facts)."""
    p_up = np.where(moves == Direction.UP, CERTAIN, np.where(moves == Direction.DOWN, 1 - CERTAIN, UNSURE))
    p_down = np.where(moves == Direction.FLAT, UNSURE, 1 - p_up)
    return BaselinePredictions(np.asarray(moves), p_up, p_down)


def reversal(bar: BaselinePredictions) -> BaselinePredictions:
    """The last move reversed: persistence's mirror. Where persistence is right on fewer than half of
    the non-zero moves (a mean-reverting period), this scores above 50 % with no model at all, so a
    model's edge over persistence is worth something only if it also beats this."""
    moves = bar.directions
    directions = np.where(
        moves == Direction.UP, Direction.DOWN, np.where(moves == Direction.DOWN, Direction.UP, Direction.FLAT)
    )
    return BaselinePredictions(directions, bar.p_down, bar.p_up)


@dataclass(frozen=True)
class Majority:
    """Always the direction that was more frequent in training, with its base rates as probabilities."""

    direction: Direction
    p_up: float
    p_down: float

    @classmethod
    def fit(cls, y_up: np.ndarray, y_down: np.ndarray) -> Majority:
        if len(y_up) == 0:
            return cls(Direction.UP, UNSURE, UNSURE)
        p_up, p_down = float(np.mean(y_up)), float(np.mean(y_down))
        return cls(Direction.UP if p_up >= p_down else Direction.DOWN, p_up, p_down)

    def batch(self, rows: np.ndarray) -> BaselinePredictions:
        n = len(rows)
        return BaselinePredictions(np.full(n, self.direction), np.full(n, self.p_up), np.full(n, self.p_down))
