"""The abstain rule: FLAT is a decision not to call a direction, not a third model output.

Abstain when `max(p_up, p_down) < min_prob` or `|p_up - p_down| < min_margin`; an exact tie is
FLAT even with `flat=off`, since neither direction is preferred.
"""

from __future__ import annotations

import numpy as np

from forecaster.config import FlatConfig

UP, DOWN, FLAT = "UP", "DOWN", "FLAT"


def directions(p_up: np.ndarray, p_down: np.ndarray, rule: FlatConfig) -> np.ndarray:
    """Vectorised: one of UP / DOWN / FLAT per pair of probabilities."""
    p_up, p_down = np.asarray(p_up, np.float64), np.asarray(p_down, np.float64)
    abstain = (
        (np.maximum(p_up, p_down) < rule.min_prob)
        | (np.abs(p_up - p_down) < rule.min_margin)
        | (p_up == p_down)
    )
    return np.where(abstain, FLAT, np.where(p_up > p_down, UP, DOWN))


def direction(p_up: float, p_down: float, rule: FlatConfig) -> str:
    return str(directions(np.array([p_up]), np.array([p_down]), rule)[0])
