"""Evaluation cost: `evaluate` on 1M synthetic predictions (target: under 2 s on CPU), its parts
timed apart, and the four plots on 100k predictions (separately: eval writes them once per run).

The first `evaluate` call is timed on its own as `first_call_s`: it imports scipy.stats (the exact
binomial tail), a one-off cost of the process, not of the data.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypedDict

import numpy as np

from forecaster.config import FlatConfig
from forecaster.direction import actual_directions
from forecaster.evaluation.coverage import coverage_section
from forecaster.evaluation.evaluate import (
    decided_section,
    evaluate,
    head_section,
    hour_section,
    overall_section,
    score,
    utc_hours,
)
from forecaster.evaluation.sections import Confusion, Evaluation
from forecaster.evaluation.statistics import checked_probabilities, direction_codes
from forecaster.flat import directions

SAMPLES = 1_000_000
QUICK_SAMPLES = 100_000
PLOT_SAMPLES = 100_000
QUICK_PLOT_SAMPLES = 10_000
REPEATS = 5
QUICK_REPEATS = 2
ZERO_MOVE_SHARE = 0.05
PROB_NOISE = 0.05
SIGNAL = 0.3  # how much the synthetic return follows p_up - p_down, so the metrics are not all at chance
START_MS = 1_700_000_000_000
MINUTE_MS = 60_000
RULES = (FlatConfig("strict", 0.6, 0.1), FlatConfig("balanced", 0.55, 0.05), FlatConfig("loose", 0.52, 0.02))
SEED = 0


class Synthetic(TypedDict):
    """The arguments of `evaluate` that describe one predictor's calls and the facts."""

    predicted: np.ndarray
    actual: np.ndarray
    p_up: np.ndarray
    p_down: np.ndarray
    y_up: np.ndarray
    y_down: np.ndarray


def synthetic(n: int, rng: np.random.Generator) -> Synthetic:
    """Predictions from the balanced rule, facts with a weak link to them and some zero moves."""
    p_up = rng.uniform(0, 1, n)
    p_down = np.clip(1 - p_up + PROB_NOISE * rng.standard_normal(n), 0, 1)
    ret = rng.standard_normal(n) + SIGNAL * (p_up - p_down)
    ret[rng.uniform(size=n) < ZERO_MOVE_SHARE] = 0
    return {
        "predicted": directions(p_up, p_down, FlatConfig()),
        "actual": actual_directions(ret),
        "p_up": p_up,
        "p_down": p_down,
        "y_up": (ret > 0).astype(np.float64),
        "y_down": (ret < 0).astype(np.float64),
    }


def _best(fn: Callable[[], Any], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return min(times)


def _parts(data: Synthetic, hours: np.ndarray, repeats: int) -> dict[str, float]:
    """Seconds of each piece `evaluate` is built from, on the same data (they add up to about the total)."""
    pred = direction_codes(data["predicted"], "predicted")
    fact = direction_codes(data["actual"], "actual")
    p_up, p_down = data["p_up"], data["p_down"]
    confusion = Confusion.of(pred, fact)
    pieces: dict[str, Callable[[], Any]] = {
        "direction_codes": lambda: (
            direction_codes(data["predicted"], "predicted"),
            direction_codes(data["actual"], "actual"),
        ),
        "probability_checks": lambda: (
            checked_probabilities(p_up, "p_up"),
            checked_probabilities(p_down, "p_down"),
        ),
        "score_summary": lambda: score(
            data["predicted"], data["actual"], p_up, p_down, data["y_up"], data["y_down"]
        ),
        "confusion_overall_decided": lambda: (
            Confusion.of(pred, fact),
            overall_section(confusion),
            decided_section(confusion),
        ),
        "heads_brier_logloss_calibration": lambda: (
            head_section(p_up, data["y_up"]),
            head_section(p_down, data["y_down"]),
        ),
        "coverage_curve": lambda: coverage_section(p_up, p_down, fact, rules=RULES),
        "by_hour": lambda: hour_section(pred, fact, hours),
    }
    return {name: round(_best(fn, repeats), 4) for name, fn in pieces.items()}


def _plots(n: int, rng: np.random.Generator, repeats: int) -> dict[str, Any]:
    from forecaster.evaluation import plots  # timed apart: importing matplotlib is a one-off cost

    data = synthetic(n, rng)
    ts = START_MS + MINUTE_MS * np.arange(n, dtype=np.int64)
    result = evaluate(**data, hours=utc_hours(ts), rules=RULES)
    out: dict[str, Any] = {"samples": n}
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        pieces: dict[str, Callable[[], Any]] = {
            "confusion": lambda: plots.confusion(result.confusion, directory / "c.png"),
            "reliability": lambda: plots.reliability(result.heads, directory / "r.png"),
            "coverage": lambda: plots.coverage(result.coverage, directory / "v.png"),
            "cumulative_accuracy": lambda: plots.cumulative_accuracy(
                ts, data["predicted"], data["actual"], directory / "a.png"
            ),
        }
        seconds = {name: round(_best(fn, repeats), 4) for name, fn in pieces.items()}
    out["seconds"] = seconds
    out["total_s"] = round(sum(seconds.values()), 4)
    return out


def run(quick: bool) -> dict[str, Any]:
    rng = np.random.default_rng(SEED)
    n = QUICK_SAMPLES if quick else SAMPLES
    repeats = QUICK_REPEATS if quick else REPEATS
    data = synthetic(n, rng)
    hours = utc_hours(START_MS + MINUTE_MS * np.arange(n, dtype=np.int64))

    def judge() -> Evaluation:
        return evaluate(**data, hours=hours, rules=RULES)

    first = _best(judge, 1)
    total = _best(judge, repeats)
    parts = _parts(data, hours, repeats)
    result = judge()
    accuracy = result.decided.accuracy
    return {
        "samples": n,
        "evaluate_s": round(total, 4),
        "first_call_s": round(first, 4),
        "predictions_per_s": round(n / total),
        "parts_s": parts,
        "parts_share": {name: round(s / total, 3) for name, s in parts.items()},
        "coverage_points": len(result.coverage.by_min_prob) + len(result.coverage.by_min_margin),
        "decided_accuracy": None if accuracy is None else round(accuracy, 4),
        "plots": _plots(QUICK_PLOT_SAMPLES if quick else PLOT_SAMPLES, rng, QUICK_REPEATS),
    }
