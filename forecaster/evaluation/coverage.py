"""The accuracy-vs-coverage curve: the decided share and accuracy each FLAT threshold would have
given on the same probabilities, whatever rule made the recorded directions."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from forecaster.config import FlatConfig
from forecaster.evaluation.sections import Coverage, CoveragePoint, RulePoint
from forecaster.evaluation.statistics import DOWN_CODE, UP_CODE, checked_probabilities, direction_codes

GRID_STEP = 0.01
# decided shares of the coverage table: the most confident share of candles by |p_up - p_down|
SHARES = (1.0, 0.5, 0.2, 0.1, 0.05, 0.02, 0.01)
# FLAT thresholds swept by the accuracy-vs-coverage curve. min_prob starts at 0 (only ties abstain:
# with two independent heads both probabilities can be below 0.5) and then runs 0.50..0.80.
MIN_PROB_GRID = (0.0, *np.round(np.arange(0.50, 0.80 + GRID_STEP / 2, GRID_STEP), 2).tolist())
MIN_MARGIN_GRID = tuple(np.round(np.arange(0.0, 0.30 + GRID_STEP / 2, GRID_STEP), 2).tolist())


@dataclass(frozen=True)
class ThresholdGrid:
    """FLAT thresholds of the coverage curve: each swept alone, the other held at 0."""

    min_probs: tuple[float, ...] = MIN_PROB_GRID
    min_margins: tuple[float, ...] = MIN_MARGIN_GRID


DEFAULT_GRID = ThresholdGrid()


def coverage_curve(
    p_up: np.ndarray, p_down: np.ndarray, actual: np.ndarray, rules: Sequence[tuple[float, float]]
) -> list[CoveragePoint]:
    """Coverage and decided accuracy for each FLAT rule (min_prob, min_margin); see `_coverage`."""
    return _coverage(
        checked_probabilities(p_up, "p_up"),
        checked_probabilities(p_down, "p_down"),
        direction_codes(actual, "actual"),
        rules,
    )


def _coverage(
    p_up: np.ndarray, p_down: np.ndarray, fact: np.ndarray, rules: Sequence[tuple[float, float]]
) -> list[CoveragePoint]:
    """Coverage and decided accuracy if the FLAT rule were (min_prob, min_margin), for every rule.

    Re-decides from the probabilities exactly as `forecaster.flat.directions` does, without running
    it per rule: a row is decided at (a, b) iff a <= max(p) and b <= |p_up - p_down| and no tie, and
    the direction it takes does not depend on the rule. So each row is placed once in a 2-D histogram
    over the grid thresholds it passes, and reverse cumulative sums give every rule's counts.
    """
    n = len(p_up)
    probs = np.unique(np.array([r[0] for r in rules], np.float64))
    margins = np.unique(np.array([r[1] for r in rules], np.float64))
    open_rows = p_up != p_down
    conf = np.maximum(p_up, p_down)[open_rows]
    margin = np.abs(p_up - p_down)[open_rows]
    hit = np.where(p_up > p_down, fact == UP_CODE, fact == DOWN_CODE)[open_rows]
    passed_p = np.searchsorted(probs, conf, side="right")  # how many min_prob values each row passes
    passed_m = np.searchsorted(margins, margin, side="right")
    shape = (len(probs) + 1, len(margins) + 1)
    cell = passed_p * shape[1] + passed_m
    counts = np.bincount(cell, minlength=shape[0] * shape[1]).reshape(shape)
    hits = np.bincount(cell, weights=hit, minlength=shape[0] * shape[1]).reshape(shape)

    def tail(a: np.ndarray) -> np.ndarray:  # [i, j] = sum of a[i:, j:]
        return a[::-1, ::-1].cumsum(0).cumsum(1)[::-1, ::-1]

    counts, hits = tail(counts), tail(hits)
    out = []
    for min_prob, min_margin in rules:
        i = int(np.searchsorted(probs, min_prob)) + 1
        j = int(np.searchsorted(margins, min_margin)) + 1
        decided, right = int(counts[i, j]), round(float(hits[i, j]))
        out.append(
            CoveragePoint(
                min_prob=float(min_prob),
                min_margin=float(min_margin),
                decided=decided,
                hits=right,
                coverage=decided / n if n else None,
                accuracy=right / decided if decided else None,
            )
        )
    return out


def coverage_section(
    p_up: np.ndarray,
    p_down: np.ndarray,
    fact: np.ndarray,
    grid: ThresholdGrid = DEFAULT_GRID,
    rules: Sequence[FlatConfig] = (),
) -> Coverage:
    """The accuracy-vs-coverage curves (min_prob swept with min_margin 0, and the reverse) and the
    named FLAT rules as points, all in one pass over checked probabilities and fact codes. Only the
    probability thresholds are applied: an ensemble's `max_spread` needs the member spread, which is
    not an input here."""
    by_prob = [(float(a), 0.0) for a in grid.min_probs]
    by_margin = [(0.0, float(b)) for b in grid.min_margins]
    named = [(float(r.min_prob), float(r.min_margin)) for r in rules]
    margins = np.abs(p_up - p_down)
    by_share = [
        (0.0, float(np.quantile(margins, 1.0 - share))) if len(margins) else (0.0, 0.0) for share in SHARES
    ]
    points = _coverage(p_up, p_down, fact, by_prob + by_margin + named + by_share)
    k, m, r = len(by_prob), len(by_margin), len(named)
    return Coverage(
        by_min_prob=tuple(points[:k]),
        by_min_margin=tuple(points[k : k + m]),
        rules=tuple(
            RulePoint(rule.name, point) for rule, point in zip(rules, points[k + m : k + m + r], strict=True)
        ),
        by_share=tuple(points[k + m + r :]),
    )
