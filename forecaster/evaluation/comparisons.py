"""The comparisons that decide whether a predictor is any good: paired against another on the same
candles (persistence is the bar, not 50 %), and the economic size of its calls against a trading cost.

Both are evaluation only: nothing here trades or is used to choose anything.
"""

from __future__ import annotations

import math
from dataclasses import replace
from statistics import NormalDist

import numpy as np

from forecaster.direction import Direction
from forecaster.evaluation.sections import Economics, Paired
from forecaster.evaluation.statistics import (
    CHANCE,
    CONFIDENCE,
    FLAT_CODE,
    binomial_p_value,
    direction_codes,
)

NO_SHARED = "no candle that both decide"
NO_CALLS = "no decided call"
TOO_FEW_FOR_SPREAD = "fewer than two decided calls"


def paired_test(first: np.ndarray, other: np.ndarray, actual: np.ndarray) -> Paired:
    """Exact one-sided McNemar test of `first` against `other` (direction arrays on the same candles).

    Only candles where both decide count; a call against a zero move is a miss for either.
    """
    codes = (direction_codes(a, what) for a, what in ((first, "first"), (other, "other"), (actual, "actual")))
    return paired_codes(*codes)


def paired_codes(first: np.ndarray, other: np.ndarray, actual: np.ndarray) -> Paired:
    """`paired_test` on direction codes (statistics.LABELS order): no string work, for many predictors."""
    both = (first != FLAT_CODE) & (other != FLAT_CODE)
    right, other_right = (first == actual)[both], (other == actual)[both]
    n = int(both.sum())
    only_first, only_other = int((right & ~other_right).sum()), int((other_right & ~right).sum())
    return pooled([Paired(n, int(right.sum()), int(other_right.sum()), only_first, only_other)])


def pooled(tests: list[Paired]) -> Paired:
    """Several folds' paired tests as one: the counts add up, the exact test is redone on the sums."""
    n = sum(t.n for t in tests)
    only_first, only_other = sum(t.only_first for t in tests), sum(t.only_other for t in tests)
    counts = Paired(n, sum(t.hits for t in tests), sum(t.other_hits for t in tests), only_first, only_other)
    if not n:
        return replace(counts, undefined=dict.fromkeys(("accuracy", "other_accuracy", "p_value"), NO_SHARED))
    return replace(
        counts,
        accuracy=counts.hits / n,
        other_accuracy=counts.other_hits / n,
        p_value=binomial_p_value(only_first, only_first + only_other, CHANCE),
    )


def economics(
    predicted: np.ndarray, ret_bps: np.ndarray, cost_bps: float, confidence: float = CONFIDENCE
) -> Economics:
    """Mean next-candle move in bps in the called direction per decided call, with its interval."""
    predicted = np.asarray(predicted).astype(str)
    sign = np.where(predicted == Direction.UP, 1.0, np.where(predicted == Direction.DOWN, -1.0, 0.0))
    moves = (sign * np.asarray(ret_bps, np.float64))[sign != 0]
    n = len(moves)
    base = Economics(n=n, cost_bps=cost_bps, confidence=confidence)
    keys = ("mean_bps", "low_bps", "high_bps", "after_cost_bps")
    if n == 0:
        return replace(base, undefined=dict.fromkeys(keys, NO_CALLS))
    mean = float(moves.mean())
    base = replace(base, mean_bps=mean, after_cost_bps=mean - cost_bps)
    if n < 2:
        return replace(base, undefined=dict.fromkeys(("low_bps", "high_bps"), TOO_FEW_FOR_SPREAD))
    half = NormalDist().inv_cdf(0.5 + confidence / 2) * float(moves.std(ddof=1)) / math.sqrt(n)
    return replace(base, low_bps=mean - half, high_bps=mean + half)
