"""How good predictions are: the one module training and evaluation both use.

Inputs are arrays over the same candles: the predicted direction (UP/DOWN/FLAT), the actual
direction of the next candle (a zero move is FLAT), the two probabilities and the two targets.
FLAT predictions are abstentions; a decided prediction against a zero move is a miss. Metrics
that are undefined on the input (no decided prediction, no rows) are left out rather than
reported as NaN or as a made-up number: `evaluate` names each omission and its reason under the
section's `undefined` key, and per-row tables (reliability bins, coverage points, hours) give
null for a value whose count is 0. Everything `evaluate` returns is strict JSON (no NaN/inf).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from statistics import NormalDist
from typing import Any

import numpy as np

from forecaster.config import FlatConfig
from forecaster.flat import DOWN, FLAT, UP

# Probabilities are clipped this far from 0 and 1 in the log loss, so one confident miss is a
# large but finite penalty.
LOG_LOSS_EPS = 1e-7


def actual_directions(next_ret: np.ndarray) -> np.ndarray:
    """UP / DOWN / FLAT of the next candle's move."""
    return np.where(next_ret > 0, UP, np.where(next_ret < 0, DOWN, FLAT))


def brier(p: np.ndarray, y: np.ndarray) -> float:
    return float(np.mean((np.asarray(p, np.float64) - y) ** 2))


def log_loss(p: np.ndarray, y: np.ndarray) -> float:
    p = np.clip(np.asarray(p, np.float64), LOG_LOSS_EPS, 1 - LOG_LOSS_EPS)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))


def score(
    predicted: np.ndarray,
    actual: np.ndarray,
    p_up: np.ndarray,
    p_down: np.ndarray,
    y_up: np.ndarray,
    y_down: np.ndarray,
) -> dict[str, float]:
    """Decided accuracy, FLAT share and, per head, Brier score and log loss."""
    n = len(predicted)
    if n == 0:
        return {"n": 0.0}
    decided = predicted != FLAT
    correct = decided & (predicted == actual)
    out = {
        "n": float(n),
        "decided": float(decided.sum()),
        "flat_share": float(1 - decided.mean()),
        "accuracy": float(correct.mean()),
        "zero_moves": float((actual == FLAT).sum()),
        "brier_up": brier(p_up, y_up),
        "brier_down": brier(p_down, y_down),
        "log_loss_up": log_loss(p_up, y_up),
        "log_loss_down": log_loss(p_down, y_down),
    }
    if decided.any():
        out["decided_accuracy"] = float(correct.sum() / decided.sum())
    return out


# --- evaluation: the full report (eval mode) built from small functions -------------------------

LABELS = (UP, DOWN, FLAT)  # row/column order of the confusion matrix
CONFIDENCE = 0.95  # two-sided level of the Wilson interval
CALIBRATION_BINS = 10  # equal-width bins of [0, 1] for ECE and the reliability table
HOURS_PER_DAY = 24
MS_PER_HOUR = 3_600_000
CHANCE = 0.5  # hit rate of a coin flip between UP and DOWN, the first yardstick of decided accuracy
GRID_STEP = 0.01
# FLAT thresholds swept by the accuracy-vs-coverage curve. min_prob starts at 0 (only ties abstain:
# with two independent heads both probabilities can be below 0.5) and then runs 0.50..0.80.
MIN_PROB_GRID = (0.0, *np.round(np.arange(0.50, 0.80 + GRID_STEP / 2, GRID_STEP), 2).tolist())
MIN_MARGIN_GRID = tuple(np.round(np.arange(0.0, 0.30 + GRID_STEP / 2, GRID_STEP), 2).tolist())

NO_ROWS = "no predictions"
NO_DECIDED = "no decided prediction (empty or all FLAT)"


@dataclass(frozen=True)
class ThresholdGrid:
    """FLAT thresholds of the coverage curve: each swept alone, the other held at 0."""

    min_probs: tuple[float, ...] = MIN_PROB_GRID
    min_margins: tuple[float, ...] = MIN_MARGIN_GRID


DEFAULT_GRID = ThresholdGrid()


def _codes(directions: np.ndarray, what: str) -> np.ndarray:
    """UP/DOWN/FLAT as 0/1/2 (the LABELS order), so counting is one bincount; anything else is an error."""
    directions = np.asarray(directions)
    codes = np.full(directions.shape, -1, np.int64)
    for code, label in enumerate(LABELS):
        codes[directions == label] = code
    if (codes < 0).any():
        bad = sorted({str(v) for v in directions[codes < 0][:5]})
        raise ValueError(f"{what}: directions must be one of {LABELS}, got {bad}")
    return codes


def _probabilities(p: np.ndarray, what: str) -> np.ndarray:
    p = np.asarray(p, np.float64)
    if not np.isfinite(p).all() or (p < 0).any() or (p > 1).any():
        raise ValueError(f"{what}: probabilities must be finite and in [0, 1]")
    return p


def _confusion(pred: np.ndarray, fact: np.ndarray) -> np.ndarray:
    k = len(LABELS)
    return np.bincount(pred * k + fact, minlength=k * k).reshape(k, k)


def confusion_matrix(predicted: np.ndarray, actual: np.ndarray) -> np.ndarray:
    """3x3 counts, rows predicted and columns fact, both in LABELS order."""
    return _confusion(_codes(predicted, "predicted"), _codes(actual, "actual"))


def confusion_dict(matrix: np.ndarray) -> dict[str, dict[str, int]]:
    """`{"pred_UP": {"fact_UP": n, ...}, ...}`: self-describing, and flattens to MLflow metric names."""
    return {
        f"pred_{p}": {f"fact_{a}": int(matrix[i, j]) for j, a in enumerate(LABELS)}
        for i, p in enumerate(LABELS)
    }


def confusion_array(confusion: Mapping[str, Mapping[str, int]]) -> np.ndarray:
    """Back from `confusion_dict` to the 3x3 array (for plots and reports)."""
    return np.array([[confusion[f"pred_{p}"][f"fact_{a}"] for a in LABELS] for p in LABELS], np.int64)


def wilson_bounds(
    hits: np.ndarray, n: np.ndarray, confidence: float = CONFIDENCE
) -> tuple[np.ndarray, np.ndarray]:
    """Vectorised Wilson score interval of hits/n (every n > 0): unlike the normal approximation it
    stays inside [0, 1] and is sensible for small n and for rates near 0 or 1."""
    hits, n = np.asarray(hits, np.float64), np.asarray(n, np.float64)
    if (n <= 0).any():
        raise ValueError("the Wilson interval needs n > 0")
    z = NormalDist().inv_cdf(0.5 + confidence / 2)
    rate, z2 = hits / n, z * z
    centre = (rate + z2 / (2 * n)) / (1 + z2 / n)
    half = z / (1 + z2 / n) * np.sqrt(rate * (1 - rate) / n + z2 / (4 * n * n))
    # At 0 or n hits the bound is exactly 0 or 1; rounding would leave it a hair off.
    low = np.where(hits <= 0, 0.0, np.maximum(0.0, centre - half))
    return low, np.where(hits >= n, 1.0, np.minimum(1.0, centre + half))


def wilson_interval(hits: int, n: int, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """Wilson score interval of one proportion hits/n (n > 0)."""
    low, high = wilson_bounds(np.array(hits), np.array(n), confidence)
    return float(low), float(high)


@functools.cache
def _scipy_binom_sf() -> Callable[..., Any] | None:
    """scipy.stats (installed with mlflow, not a declared dependency) if present; imported lazily (slow)."""
    try:
        from scipy.stats import binom
    except ImportError:  # pragma: no cover - depends on the environment
        return None
    return binom.sf


def binomial_tail_logspace(hits: int, n: int, p0: float) -> float:
    """P(X >= hits) for X ~ Binomial(n, p0), exact, summed in log space (fallback without scipy).

    The pmf from `hits` on follows from log pmf(hits) by cumulative sums of the ratios
    pmf(j+1)/pmf(j) = (n-j)/(j+1) * p0/(1-p0), so n up to millions costs one vectorised pass.
    """
    if hits <= 0:
        return 1.0
    if hits > n or p0 <= 0:
        return 0.0
    if p0 >= 1:
        return 1.0
    j = np.arange(hits, n, dtype=np.float64)
    log_ratio = np.log((n - j) / (j + 1)) + (math.log(p0) - math.log1p(-p0))
    log_first = (
        math.lgamma(n + 1)
        - math.lgamma(hits + 1)
        - math.lgamma(n - hits + 1)
        + hits * math.log(p0)
        + (n - hits) * math.log1p(-p0)
    )
    logs = log_first + np.concatenate(([0.0], np.cumsum(log_ratio)))
    top = float(logs.max())
    return float(min(1.0, math.exp(top) * float(np.exp(logs - top).sum())))


def binomial_p_value(hits: int, n: int, p0: float) -> float:
    """One-sided exact p-value P(X >= hits | n, p0): how surprising this many hits is if the true
    hit rate were only p0."""
    if hits <= 0:
        return 1.0
    if hits > n:
        return 0.0
    sf = _scipy_binom_sf()
    if sf is None:
        return binomial_tail_logspace(hits, n, p0)
    return float(min(1.0, max(0.0, sf(hits - 1, n, p0))))


def overall_section(pred: np.ndarray, fact: np.ndarray) -> dict[str, Any]:
    """Accuracy over all predictions (FLAT counts as not right), FLAT share, fact counts."""
    n = len(pred)
    flat, up, down = LABELS.index(FLAT), LABELS.index(UP), LABELS.index(DOWN)
    facts = np.bincount(fact, minlength=len(LABELS))
    hits = int(((pred == fact) & (pred != flat)).sum())
    out: dict[str, Any] = {
        "n": n,
        "hits": hits,
        "facts": {UP: int(facts[up]), DOWN: int(facts[down]), FLAT: int(facts[flat])},
        "zero_moves": int(facts[flat]),
    }
    if n:
        out["accuracy"] = hits / n
        out["flat_share"] = float((pred == flat).mean())
    else:
        out["undefined"] = {"accuracy": NO_ROWS, "flat_share": NO_ROWS}
    return out


def decided_section(pred: np.ndarray, fact: np.ndarray, confidence: float = CONFIDENCE) -> dict[str, Any]:
    """Decided accuracy with its Wilson interval and exact one-sided p-values.

    The majority rate is what a constant predictor of the more frequent fact direction would hit on
    the same decided rows (zero moves are misses for it too). Being chosen in-sample it flatters the
    yardstick, so beating it is the stricter test.
    """
    flat, up, down = LABELS.index(FLAT), LABELS.index(UP), LABELS.index(DOWN)
    decided = pred != flat
    n = int(decided.sum())
    facts = np.bincount(fact[decided], minlength=len(LABELS))
    hits = int((pred[decided] == fact[decided]).sum())
    out: dict[str, Any] = {"n": n, "hits": hits, "zero_moves": int(facts[flat]), "confidence": confidence}
    if not n:
        keys = (
            "accuracy",
            "wilson_low",
            "wilson_high",
            "majority_rate",
            "p_value_vs_chance",
            "p_value_vs_majority",
        )
        out["undefined"] = dict.fromkeys(keys, NO_DECIDED)
        return out
    low, high = wilson_interval(hits, n, confidence)
    majority = UP if facts[up] >= facts[down] else DOWN
    majority_rate = int(facts[LABELS.index(majority)]) / n
    out.update(
        accuracy=hits / n,
        wilson_low=low,
        wilson_high=high,
        majority_direction=majority,
        majority_rate=majority_rate,
        p_value_vs_chance=binomial_p_value(hits, n, CHANCE),
        p_value_vs_majority=binomial_p_value(hits, n, majority_rate),
    )
    return out


def reliability_table(p: np.ndarray, y: np.ndarray, bins: int = CALIBRATION_BINS) -> list[dict[str, Any]]:
    """Per equal-width bin of p: count, mean predicted probability, observed frequency (null if empty).

    Bin i holds i/bins <= p < (i+1)/bins; p == 1 goes into the last bin.
    """
    p, y = np.asarray(p, np.float64), np.asarray(y, np.float64)
    index = np.minimum((p * bins).astype(np.int64), bins - 1)
    counts = np.bincount(index, minlength=bins)
    sum_p = np.bincount(index, weights=p, minlength=bins)
    sum_y = np.bincount(index, weights=y, minlength=bins)
    rows = []
    for i in range(bins):
        count = int(counts[i])
        rows.append(
            {
                "bin_low": i / bins,
                "bin_high": (i + 1) / bins,
                "count": count,
                "mean_predicted": float(sum_p[i] / count) if count else None,
                "observed": float(sum_y[i] / count) if count else None,
            }
        )
    return rows


def calibration_errors(table: Sequence[Mapping[str, Any]]) -> tuple[float, float]:
    """(ECE, MCE) of a reliability table: the count-weighted mean and the max of |mean p - observed|."""
    total = sum(row["count"] for row in table)
    gaps = [abs(row["mean_predicted"] - row["observed"]) for row in table if row["count"]]
    weights = [row["count"] for row in table if row["count"]]
    if not total:
        raise ValueError("calibration_errors needs at least one row")
    return sum(w * g for w, g in zip(weights, gaps, strict=True)) / total, max(gaps)


def head_section(p: np.ndarray, y: np.ndarray, bins: int = CALIBRATION_BINS) -> dict[str, Any]:
    """One head: Brier score, log loss, base rate, calibration (ECE, MCE, reliability table)."""
    n = len(p)
    table = reliability_table(p, y, bins)
    out: dict[str, Any] = {"n": n}
    if not n:
        out["reliability"] = table
        out["undefined"] = dict.fromkeys(("brier", "log_loss", "base_rate", "ece", "mce"), NO_ROWS)
        return out
    ece, mce = calibration_errors(table)
    out.update(
        brier=brier(p, y),
        log_loss=log_loss(p, y),
        base_rate=float(np.mean(y)),
        mean_predicted=float(np.mean(p)),
        ece=ece,
        mce=mce,
        reliability=table,
    )
    return out


def coverage_curve(
    p_up: np.ndarray, p_down: np.ndarray, actual: np.ndarray, rules: Sequence[tuple[float, float]]
) -> list[dict[str, Any]]:
    """Coverage and decided accuracy for each FLAT rule (min_prob, min_margin); see `_coverage`."""
    return _coverage(
        _probabilities(p_up, "p_up"), _probabilities(p_down, "p_down"), _codes(actual, "actual"), rules
    )


def _coverage(
    p_up: np.ndarray, p_down: np.ndarray, fact: np.ndarray, rules: Sequence[tuple[float, float]]
) -> list[dict[str, Any]]:
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
    hit = np.where(p_up > p_down, fact == LABELS.index(UP), fact == LABELS.index(DOWN))[open_rows]
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
            {
                "min_prob": float(min_prob),
                "min_margin": float(min_margin),
                "decided": decided,
                "hits": right,
                "coverage": decided / n if n else None,
                "accuracy": right / decided if decided else None,
            }
        )
    return out


def coverage_section(
    p_up: np.ndarray,
    p_down: np.ndarray,
    fact: np.ndarray,
    grid: ThresholdGrid = DEFAULT_GRID,
    rules: Sequence[FlatConfig] = (),
) -> dict[str, Any]:
    """The accuracy-vs-coverage curves (min_prob swept with min_margin 0, and the reverse) and the
    named FLAT rules as points, all in one pass. Only the probability thresholds are applied: an
    ensemble's `max_spread` needs the member spread, which is not an input here."""
    by_prob = [(float(a), 0.0) for a in grid.min_probs]
    by_margin = [(0.0, float(b)) for b in grid.min_margins]
    named = [(float(r.min_prob), float(r.min_margin)) for r in rules]
    points = _coverage(p_up, p_down, fact, by_prob + by_margin + named)
    k, m = len(by_prob), len(by_margin)
    return {
        "by_min_prob": points[:k],
        "by_min_margin": points[k : k + m],
        "rules": [{"name": r.name, **pt} for r, pt in zip(rules, points[k + m :], strict=True)],
    }


def utc_hours(candle_ts_ms: np.ndarray) -> np.ndarray:
    """Hour of day (UTC) of candle start times in epoch milliseconds."""
    return (np.asarray(candle_ts_ms, np.int64) // MS_PER_HOUR) % HOURS_PER_DAY


def hour_section(pred: np.ndarray, fact: np.ndarray, hours: np.ndarray) -> list[dict[str, Any]]:
    """Per UTC hour: predictions, decided, hits and decided accuracy (null where none was decided)."""
    hours = np.asarray(hours, np.int64)
    if len(hours) != len(pred):
        raise ValueError("hours must have one value per prediction")
    if ((hours < 0) | (hours >= HOURS_PER_DAY)).any():
        raise ValueError("hours must be in 0..23 (use utc_hours for timestamps)")
    decided = pred != LABELS.index(FLAT)
    hit = decided & (pred == fact)
    n = np.bincount(hours, minlength=HOURS_PER_DAY)
    d = np.bincount(hours, weights=decided, minlength=HOURS_PER_DAY).astype(np.int64)
    h = np.bincount(hours, weights=hit, minlength=HOURS_PER_DAY).astype(np.int64)
    return [
        {
            "hour": hour,
            "n": int(n[hour]),
            "decided": int(d[hour]),
            "hits": int(h[hour]),
            "accuracy": int(h[hour]) / int(d[hour]) if d[hour] else None,
        }
        for hour in range(HOURS_PER_DAY)
    ]


def running_accuracy(predicted: np.ndarray, actual: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(positions of the decided rows, hits so far, decided so far) at each decided row: the decided
    accuracy over time is hits / decided (with `wilson_bounds` for its uncertainty)."""
    pred, fact = _codes(predicted, "predicted"), _codes(actual, "actual")
    where = np.flatnonzero(pred != LABELS.index(FLAT))
    return where, np.cumsum(pred[where] == fact[where]), np.arange(1, len(where) + 1)


def evaluate(
    predicted: np.ndarray,
    actual: np.ndarray,
    p_up: np.ndarray,
    p_down: np.ndarray,
    y_up: np.ndarray,
    y_down: np.ndarray,
    hours: np.ndarray | None = None,
    grid: ThresholdGrid = DEFAULT_GRID,
    rules: Sequence[FlatConfig] = (),
    bins: int = CALIBRATION_BINS,
) -> dict[str, Any]:
    """Everything eval reports about one predictor on one set of candles, as strict-JSON-able dict.

    Keys: n, summary (= `score`, what train reports), confusion, overall, decided, heads.{up,down},
    coverage, and by_hour when `hours` (UTC hour of each row, 0..23) is given. The coverage curve
    re-decides from the probabilities with each grid rule, whatever rule made `predicted`.
    """
    pred, fact = _codes(predicted, "predicted"), _codes(actual, "actual")
    p_up, p_down = _probabilities(p_up, "p_up"), _probabilities(p_down, "p_down")
    y_up, y_down = np.asarray(y_up, np.float64), np.asarray(y_down, np.float64)
    if not len(pred) == len(fact) == len(p_up) == len(p_down) == len(y_up) == len(y_down):
        raise ValueError("evaluate: all inputs must have one value per prediction")
    summary = score(np.asarray(predicted), np.asarray(actual), p_up, p_down, y_up, y_down)
    out: dict[str, Any] = {
        "n": len(pred),
        "summary": summary,
        "confusion": confusion_dict(_confusion(pred, fact)),
        "overall": overall_section(pred, fact),
        "decided": decided_section(pred, fact),
        "heads": {"up": head_section(p_up, y_up, bins), "down": head_section(p_down, y_down, bins)},
        "coverage": coverage_section(p_up, p_down, fact, grid, rules),
    }
    if hours is not None:
        out["by_hour"] = hour_section(pred, fact, hours)
    return out


def flat_metrics(result: Mapping[str, Any], prefix: str = "") -> dict[str, float]:
    """The scalar numbers of an `evaluate` result under dotted names (e.g. `decided.accuracy`), for
    MLflow; tables (lists), strings and nulls are left to the JSON and the report."""
    out: dict[str, float] = {}
    for key, value in result.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(flat_metrics(value, f"{name}."))
        elif isinstance(value, int | float) and not isinstance(value, bool):
            out[name] = float(value)
    return out
