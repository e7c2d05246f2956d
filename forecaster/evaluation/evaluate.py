"""Predictions judged against facts, as typed sections: train's scores and eval's full evaluation.

Inputs are arrays over the same candles: the predicted direction (UP/DOWN/FLAT), the actual
direction of the next candle (a zero move is FLAT), the two probabilities and the two targets.
FLAT predictions are abstentions; a decided prediction against a zero move is a miss. A metric
that is undefined on the input (no decided prediction, no rows) is None in its section and named
with its reason in the section's `undefined`, never reported as NaN or as a made-up number; table
rows (reliability bins, coverage points, hours) hold None for a value whose count is 0. Train's
scores and eval's sections both derive from the same confusion counts.

On joined records, the baselines are judged on exactly the joined candles: persistence predicts
the move that led into t (the fact whose `candle_ts` is t) again; majority always predicts the
more frequent direction among the facts evaluated (in-sample, which flatters it; it is a
yardstick, not a model).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import numpy as np

from forecaster.baselines import BaselinePredictions, Majority, persistence_from_moves, reversal
from forecaster.config import FlatConfig
from forecaster.direction import Direction
from forecaster.evaluation.comparisons import economics, paired_test
from forecaster.evaluation.coverage import DEFAULT_GRID, ThresholdGrid, coverage_section
from forecaster.evaluation.join import Joined
from forecaster.evaluation.sections import (
    MODEL,
    PERSISTENCE,
    REVERSAL,
    VS_PERSISTENCE,
    Confusion,
    Decided,
    Evaluation,
    EvaluationSet,
    Head,
    Heads,
    HourRow,
    Overall,
    ReliabilityBin,
    Scores,
)
from forecaster.evaluation.statistics import (
    CHANCE,
    CONFIDENCE,
    DOWN_CODE,
    FLAT_CODE,
    LABELS,
    UP_CODE,
    binomial_p_value,
    brier,
    checked_probabilities,
    direction_codes,
    log_loss,
    wilson_interval,
)
from forecaster.flat import directions

CALIBRATION_BINS = 10  # equal-width bins of [0, 1] for ECE and the reliability table
HOURS_PER_DAY = 24
MS_PER_HOUR = 3_600_000

NO_ROWS = "no predictions"
NO_DECIDED = "no decided prediction (empty or all FLAT)"


def summary(
    confusion: Confusion,
    brier_up: float | None,
    brier_down: float | None,
    log_loss_up: float | None,
    log_loss_down: float | None,
) -> Scores:
    """Train's scores from the confusion counts and the heads' losses (None without rows)."""
    n = confusion.n
    if not n:
        return Scores(n=0.0)
    decided = confusion.decided
    return Scores(
        n=float(n),
        decided=float(decided),
        flat_share=1 - decided / n,
        accuracy=confusion.hits / n,
        zero_moves=float(confusion.array()[:, FLAT_CODE].sum()),
        brier_up=brier_up,
        brier_down=brier_down,
        log_loss_up=log_loss_up,
        log_loss_down=log_loss_down,
        decided_accuracy=confusion.hits / decided if decided else None,
    )


def score(
    predicted: np.ndarray,
    actual: np.ndarray,
    p_up: np.ndarray,
    p_down: np.ndarray,
    y_up: np.ndarray,
    y_down: np.ndarray,
) -> Scores:
    """Decided accuracy, FLAT share and, per head, Brier score and log loss: what train reports."""
    confusion = Confusion.of(direction_codes(predicted, "predicted"), direction_codes(actual, "actual"))
    if not len(p_up):
        return summary(confusion, None, None, None, None)
    losses = brier(p_up, y_up), brier(p_down, y_down), log_loss(p_up, y_up), log_loss(p_down, y_down)
    return summary(confusion, *losses)


def overall_section(confusion: Confusion) -> Overall:
    """Accuracy over all predictions (FLAT counts as not right), FLAT share, fact counts."""
    counts = confusion.array()
    n, hits = confusion.n, confusion.hits
    facts = counts.sum(axis=0)
    return Overall(
        n=n,
        hits=hits,
        facts={label: int(facts[code]) for code, label in enumerate(LABELS)},
        zero_moves=int(facts[FLAT_CODE]),
        accuracy=hits / n if n else None,
        flat_share=(n - confusion.decided) / n if n else None,
        undefined={} if n else dict.fromkeys(("accuracy", "flat_share"), NO_ROWS),
    )


def decided_section(confusion: Confusion, confidence: float = CONFIDENCE) -> Decided:
    """Decided accuracy with its Wilson interval and exact one-sided p-values.

    The majority rate is what a constant predictor of the more frequent fact direction would hit on
    the same decided rows (zero moves are misses for it too). Being chosen in-sample it flatters the
    yardstick, so beating it is the stricter test.
    """
    facts = confusion.array()[[UP_CODE, DOWN_CODE]].sum(axis=0)  # the facts of the decided rows
    n, hits = int(facts.sum()), confusion.hits
    counts = Decided(n=n, hits=hits, zero_moves=int(facts[FLAT_CODE]), confidence=confidence)
    if not n:
        keys = (
            "accuracy",
            "wilson_low",
            "wilson_high",
            "majority_rate",
            "p_value_vs_chance",
            "p_value_vs_majority",
            "nonzero_accuracy",
            "nonzero_wilson_low",
            "nonzero_wilson_high",
        )
        return replace(counts, nonzero_n=0, undefined=dict.fromkeys(keys, NO_DECIDED))
    low, high = wilson_interval(hits, n, confidence)
    nonzero = n - counts.zero_moves  # a zero move is a miss, so every hit is on a non-zero move
    nonzero_low, nonzero_high = wilson_interval(hits, nonzero, confidence) if nonzero else (None, None)
    majority = Direction.UP if facts[UP_CODE] >= facts[DOWN_CODE] else Direction.DOWN
    majority_rate = int(facts[LABELS.index(majority)]) / n
    return replace(
        counts,
        accuracy=hits / n,
        wilson_low=low,
        wilson_high=high,
        majority_direction=majority,
        majority_rate=majority_rate,
        p_value_vs_chance=binomial_p_value(hits, n, CHANCE),
        p_value_vs_majority=binomial_p_value(hits, n, majority_rate),
        nonzero_n=nonzero,
        nonzero_accuracy=hits / nonzero if nonzero else None,
        nonzero_wilson_low=nonzero_low,
        nonzero_wilson_high=nonzero_high,
    )


def reliability_table(
    p: np.ndarray, y: np.ndarray, bins: int = CALIBRATION_BINS
) -> tuple[ReliabilityBin, ...]:
    """Per equal-width bin of p: count, mean predicted probability, observed frequency (None if empty).

    Bin i holds i/bins <= p < (i+1)/bins; p == 1 goes into the last bin.
    """
    p, y = np.asarray(p, np.float64), np.asarray(y, np.float64)
    index = np.minimum((p * bins).astype(np.int64), bins - 1)
    counts = np.bincount(index, minlength=bins)
    sum_p = np.bincount(index, weights=p, minlength=bins)
    sum_y = np.bincount(index, weights=y, minlength=bins)
    return tuple(
        ReliabilityBin(
            bin_low=i / bins,
            bin_high=(i + 1) / bins,
            count=int(counts[i]),
            mean_predicted=float(sum_p[i] / counts[i]) if counts[i] else None,
            observed=float(sum_y[i] / counts[i]) if counts[i] else None,
        )
        for i in range(bins)
    )


def calibration_errors(table: Sequence[ReliabilityBin]) -> tuple[float, float]:
    """(ECE, MCE) of a reliability table: the count-weighted mean and the max of |mean p - observed|."""
    filled = [
        (row.count, abs(predicted - observed))
        for row in table
        if (predicted := row.mean_predicted) is not None and (observed := row.observed) is not None
    ]
    if not filled:
        raise ValueError("calibration_errors needs at least one row")
    weights, gaps = [count for count, _ in filled], [gap for _, gap in filled]
    return sum(w * g for w, g in zip(weights, gaps, strict=True)) / sum(weights), max(gaps)


def head_section(p: np.ndarray, y: np.ndarray, bins: int = CALIBRATION_BINS) -> Head:
    """One head: Brier score, log loss, base rate, calibration (ECE, MCE, reliability table)."""
    n = len(p)
    table = reliability_table(p, y, bins)
    if not n:
        undefined: dict[str, str] = dict.fromkeys(("brier", "log_loss", "base_rate", "ece", "mce"), NO_ROWS)
        return Head(n=n, reliability=table, undefined=undefined)
    ece, mce = calibration_errors(table)
    return Head(
        n=n,
        brier=brier(p, y),
        log_loss=log_loss(p, y),
        base_rate=float(np.mean(y)),
        mean_predicted=float(np.mean(p)),
        ece=ece,
        mce=mce,
        reliability=table,
    )


def utc_hours(candle_ts_ms: np.ndarray) -> np.ndarray:
    """Hour of day (UTC) of candle start times in epoch milliseconds."""
    return (np.asarray(candle_ts_ms, np.int64) // MS_PER_HOUR) % HOURS_PER_DAY


def hour_section(pred: np.ndarray, fact: np.ndarray, hours: np.ndarray) -> tuple[HourRow, ...]:
    """Per UTC hour: predictions, decided, hits and decided accuracy (None where none was decided)."""
    hours = np.asarray(hours, np.int64)
    if len(hours) != len(pred):
        raise ValueError("hours must have one value per prediction")
    if ((hours < 0) | (hours >= HOURS_PER_DAY)).any():
        raise ValueError("hours must be in 0..23 (use utc_hours for timestamps)")
    decided = pred != FLAT_CODE
    hit = decided & (pred == fact)
    n = np.bincount(hours, minlength=HOURS_PER_DAY)
    d = np.bincount(hours, weights=decided, minlength=HOURS_PER_DAY).astype(np.int64)
    h = np.bincount(hours, weights=hit, minlength=HOURS_PER_DAY).astype(np.int64)
    return tuple(
        HourRow(
            hour=hour,
            n=int(n[hour]),
            decided=int(d[hour]),
            hits=int(h[hour]),
            accuracy=int(h[hour]) / int(d[hour]) if d[hour] else None,
        )
        for hour in range(HOURS_PER_DAY)
    )


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
) -> Evaluation:
    """Everything eval reports about one predictor on one set of candles.

    `by_hour` is there when `hours` (UTC hour of each row, 0..23) is given. The coverage curve
    re-decides from the probabilities with each grid rule, whatever rule made `predicted`.
    """
    pred, fact = direction_codes(predicted, "predicted"), direction_codes(actual, "actual")
    p_up, p_down = checked_probabilities(p_up, "p_up"), checked_probabilities(p_down, "p_down")
    y_up, y_down = np.asarray(y_up, np.float64), np.asarray(y_down, np.float64)
    if not len(pred) == len(fact) == len(p_up) == len(p_down) == len(y_up) == len(y_down):
        raise ValueError("evaluate: all inputs must have one value per prediction")
    confusion = Confusion.of(pred, fact)
    up, down = head_section(p_up, y_up, bins), head_section(p_down, y_down, bins)
    return Evaluation(
        n=len(pred),
        summary=summary(confusion, up.brier, down.brier, up.log_loss, down.log_loss),
        confusion=confusion,
        overall=overall_section(confusion),
        decided=decided_section(confusion),
        heads=Heads(up, down),
        coverage=coverage_section(p_up, p_down, fact, grid, rules),
        by_hour=None if hours is None else hour_section(pred, fact, hours),
    )


def _baselines(joined: Joined) -> dict[str, BaselinePredictions]:
    """Persistence (the move into t again), its reversal and majority (in-sample) on the joined candles."""
    majority = Majority.fit(
        (joined.actual == Direction.UP).astype(float), (joined.actual == Direction.DOWN).astype(float)
    )
    bar = persistence_from_moves(joined.last_move)
    return {PERSISTENCE: bar, REVERSAL: reversal(bar), "majority": majority.batch(joined.actual)}


def evaluate_predictions(
    joined: Joined, threshold_bps: float, rule: FlatConfig, redecide: bool = False
) -> Evaluation:
    """The evaluation of the joined predictions; `rule` is marked on the coverage curve and, with
    `redecide`, replaces the recorded decisions (to compare FLAT rules on the same probabilities)."""
    predicted = decisions(joined, rule, redecide)
    y_up, y_down = _targets(joined, threshold_bps)
    result = evaluate(predicted, joined.actual, joined.p_up, joined.p_down, y_up, y_down,
                      hours=_hours(joined), rules=(rule,))  # fmt: skip
    if joined.raw_p_up is None or joined.raw_p_down is None:
        return result
    before = Heads(head_section(joined.raw_p_up, y_up), head_section(joined.raw_p_down, y_down))
    return replace(result, uncalibrated=before)


def evaluate_joined(
    joined: Joined, threshold_bps: float, rule: FlatConfig, redecide: bool = False, cost_bps: float = 0.0
) -> EvaluationSet:
    """The join report, the model's evaluation and the baselines' on the same candles, each with the
    economic size of its calls against `cost_bps`, and the model paired against persistence."""
    model = evaluate_predictions(joined, threshold_bps, rule, redecide)
    judged = {
        MODEL: replace(
            model, economics=economics(decisions(joined, rule, redecide), joined.ret_bps, cost_bps)
        )
    }
    y_up, y_down = _targets(joined, threshold_bps)
    baselines = _baselines(joined)
    for name, guess in baselines.items():
        judged[name] = evaluate(
            guess.directions, joined.actual, guess.p_up, guess.p_down, y_up, y_down, hours=_hours(joined)
        )
        judged[name] = replace(judged[name], economics=economics(guess.directions, joined.ret_bps, cost_bps))
    bar = paired_test(decisions(joined, rule, redecide), baselines[PERSISTENCE].directions, joined.actual)
    return EvaluationSet(joined.report, judged, {VS_PERSISTENCE: bar})


def decisions(joined: Joined, rule: FlatConfig, redecide: bool) -> np.ndarray:
    """The model's decisions as judged: recorded, or re-decided under `rule`."""
    return directions(joined.p_up, joined.p_down, rule, joined.spread) if redecide else joined.predicted


def _targets(joined: Joined, threshold_bps: float) -> tuple[np.ndarray, np.ndarray]:
    """What the heads are scored against: up = ret_bps > +threshold, down = ret_bps < -threshold."""
    return (joined.ret_bps > threshold_bps).astype(np.float64), (joined.ret_bps < -threshold_bps).astype(
        np.float64
    )


def _hours(joined: Joined) -> np.ndarray:
    return utc_hours(joined.target_ts)  # the hour of the candle being forecast
