"""The abstain rule: FLAT is a decision not to call a direction, not a third model output.

Abstain when `max(p_up, p_down) < min_prob` or `|p_up - p_down| < min_margin`; an exact tie is
FLAT even with `flat=off`, since neither direction is preferred. With `max_spread` set, also
abstain when the ensemble's members disagree more than that (their spread, see model.summarise):
a confident mean over members that contradict each other is not a confident call.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import numpy as np

from forecaster.config import FlatConfig
from forecaster.direction import Direction
from forecaster.errors import UserError

QUANTILE_POINTS = 101  # the margin's quantiles kept in a model card: every percentile of validation


def directions(
    p_up: np.ndarray, p_down: np.ndarray, rule: FlatConfig, spread: np.ndarray | None = None
) -> np.ndarray:
    """Vectorised: one of UP / DOWN / FLAT per pair of probabilities (and member spread, if known).

    Without `spread` (e.g. records that do not hold it) the spread rule cannot apply and is skipped.
    """
    p_up, p_down = np.asarray(p_up, np.float64), np.asarray(p_down, np.float64)
    abstain = (
        (np.maximum(p_up, p_down) < rule.min_prob)
        | (np.abs(p_up - p_down) < rule.min_margin)
        | (p_up == p_down)
    )
    if rule.max_spread is not None and spread is not None:
        abstain |= np.asarray(spread, np.float64) > rule.max_spread
    return np.where(abstain, Direction.FLAT, np.where(p_up > p_down, Direction.UP, Direction.DOWN))


def direction(p_up: float, p_down: float, rule: FlatConfig, spread: float | None = None) -> Direction:
    spreads = None if spread is None else np.array([spread])
    return Direction(directions(np.array([p_up]), np.array([p_down]), rule, spreads)[0])


def describe(rule: FlatConfig) -> str:
    """The rule in one line, as a live session and `--help` state it: when a candle is FLAT."""
    parts = []
    if rule.min_prob > 0:
        parts.append(f"max(p_up, p_down) < {rule.min_prob:g}")
    if rule.min_margin > 0:
        parts.append(f"|p_up - p_down| < {rule.min_margin:.4g}")
    if rule.max_spread is not None:
        parts.append(f"the members' spread > {rule.max_spread:g}")
    when = " or ".join(parts) if parts else "p_up == p_down (a tie)"
    return f"FLAT (abstain) when {when} (flat={rule.name})"


def margin_quantiles(p_up: np.ndarray, p_down: np.ndarray) -> tuple[float, ...]:
    """Every percentile of |p_up - p_down| on these rows (fitted on validation, stored in the card)."""
    margins = np.abs(np.asarray(p_up, np.float64) - np.asarray(p_down, np.float64))
    return tuple(float(q) for q in np.quantile(margins, np.linspace(0.0, 1.0, QUANTILE_POINTS)))


def fitted(rule: FlatConfig, quantiles: Sequence[float] | None) -> FlatConfig:
    """`rule` with the margin that decides its `coverage` share on the rows the quantiles came from."""
    if rule.coverage is None:
        return rule
    if not quantiles:
        raise UserError(
            "flat=coverage needs the validation margins of a model trained with this version "
            "(its model card has none); re-train it, or choose another flat rule"
        )
    levels = np.linspace(0.0, 1.0, len(quantiles))
    margin = float(np.interp(1.0 - rule.coverage, levels, np.asarray(quantiles, np.float64)))
    return replace(rule, min_margin=max(rule.min_margin, margin))
