"""How mode=train scores a fold: the model and the baselines on the same rows of each block, the
paired tests against persistence and the gbm yardstick, calibration before and after; and the tables
train prints.

Persistence is the bar: every figure of the model has its persistence figure on the same rows. The
yardstick (gradient-boosted trees on the same rows) shows whether the model leaves signal behind.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from forecaster.baselines import Majority, reversal
from forecaster.config import FlatConfig
from forecaster.direction import actual_directions
from forecaster.evaluation.comparisons import paired_test, pooled
from forecaster.evaluation.evaluate import head_section, score
from forecaster.evaluation.outcomes import Outcomes
from forecaster.evaluation.report import paired_line
from forecaster.evaluation.sections import MODEL, PERSISTENCE, REVERSAL, VS_PERSISTENCE, Paired, Scores
from forecaster.flat import directions
from forecaster.models.persistence import Persistence
from forecaster.training.dataset import Dataset

if TYPE_CHECKING:
    from forecaster.calibration import Calibration

YARDSTICK = "yardstick"  # who of the gbm yardstick in the tables and metrics.json
VS_YARDSTICK = f"{MODEL}_vs_{YARDSTICK}"
SUMMARY_METRICS = ("decided_accuracy", "flat_share", "brier_up", "brier_down", "log_loss_up", "log_loss_down")


@dataclass(frozen=True)
class Judged:
    """A predictor's (calibrated) probabilities on one block, and the FLAT rule that decides on them."""

    p_up: np.ndarray
    p_down: np.ndarray
    rule: FlatConfig


@dataclass(frozen=True)
class BlockScores:
    """The model and the baselines on the same rows of one block, and the model paired with persistence
    (and with the yardstick, when there is one)."""

    scores: dict[str, Scores]
    vs_persistence: Paired
    outcomes: Outcomes  # per candle, for the sweep leaderboard
    vs_yardstick: Paired | None = None


@dataclass(frozen=True)
class FoldScores:
    """One fold's validation block (to choose on) and test block (to report)."""

    val: BlockScores
    test: BlockScores
    margin_quantiles: tuple[float, ...]  # of |p_up - p_down| on validation: flat=coverage's margin
    calibration: Calibration | None  # fitted on this fold's validation rows
    reliability: dict[str, dict[str, float]]  # per block, ECE and log loss before and after calibration


def score_block(
    probabilities: tuple[np.ndarray, np.ndarray],
    train_part: Dataset,
    block: Dataset,
    rule: FlatConfig,
    where: tuple[int, str],
    yardstick: Judged | None = None,
) -> BlockScores:
    """The model, both baselines and the yardstick (if any) on the same rows of one block (`where`:
    fold, val or test); persistence is the bar."""
    p_up, p_down = probabilities
    actual = actual_directions(block.next_ret)
    y_up, y_down = block.y[:, 0], block.y[:, 1]
    called = directions(p_up, p_down, rule)
    out = {MODEL: score(called, actual, p_up, p_down, y_up, y_down)}
    bar = Persistence().batch(block.X)
    guesses = {
        PERSISTENCE: bar,
        REVERSAL: reversal(bar),
        "majority": Majority.fit(train_part.y[:, 0], train_part.y[:, 1]).batch(block.X),
    }
    for name, guess in guesses.items():
        out[name] = score(guess.directions, actual, guess.p_up, guess.p_down, y_up, y_down)
    vs_yardstick = None
    if yardstick is not None:
        trees = directions(yardstick.p_up, yardstick.p_down, yardstick.rule)
        out[YARDSTICK] = score(trees, actual, yardstick.p_up, yardstick.p_down, y_up, y_down)
        vs_yardstick = paired_test(called, trees, actual)
    outcomes = Outcomes.of_block(
        *where, block.candle_ts, probabilities, called, block.next_ret, bar.directions
    )
    return BlockScores(out, paired_test(called, bar.directions, actual), outcomes, vs_yardstick)


def reliability_change(
    raw: tuple[np.ndarray, np.ndarray], calibrated: tuple[np.ndarray, np.ndarray], block: Dataset
) -> dict[str, float]:
    """ECE and log loss of each head on one block, before and after calibration."""
    out: dict[str, float] = {}
    for index, head in enumerate(("up", "down")):
        before, after = (
            head_section(raw[index], block.y[:, index]),
            head_section(calibrated[index], block.y[:, index]),
        )
        for name in ("ece", "log_loss"):
            out[f"{name}_{head}_before"] = float(getattr(before, name))
            out[f"{name}_{head}_after"] = float(getattr(after, name))
    return out


def mean_reliability(folds: list[FoldScores]) -> dict[str, dict[str, float]]:
    """Per block and figure, the mean over folds of reliability_change."""
    return {
        block: {key: float(np.mean([f.reliability[block][key] for f in folds])) for key in keys}
        for block, keys in folds[0].reliability.items()
    }


def calibration_summary(folds: list[FoldScores]) -> str:
    """The test block's ECE before and after, averaged over folds: did calibrating on validation help?"""
    test = mean_reliability(folds)["test"]
    if folds[-1].calibration is None:
        ece = f"up {test['ece_up_before']:.4f}, down {test['ece_down_before']:.4f}"
        return f"calibration: none (train.calibration=none); test ECE {ece}"
    heads = ", ".join(
        f"{head} {test[f'ece_{head}_before']:.4f} -> {test[f'ece_{head}_after']:.4f}"
        for head in ("up", "down")
    )
    return f"calibration ({folds[-1].calibration.up.method}, fitted on validation): test ECE {heads}"


def paired_lines(folds: list[FoldScores]) -> list[str]:
    """Per fold and pooled: the model against persistence (and the yardstick) on the test candles both
    decide."""
    lines = []
    for against, tests in (
        (VS_PERSISTENCE, [fold.test.vs_persistence for fold in folds]),
        (VS_YARDSTICK, [t for fold in folds if (t := fold.test.vs_yardstick) is not None]),
    ):
        if tests:
            named = [*((f"fold {k}", t) for k, t in enumerate(tests)), ("pooled", pooled(tests))]
            lines += [f"  {name}: {paired_line(against, t)}" for name, t in named]
    return lines


def mean_scores(reports: list[dict[str, Scores]]) -> dict[str, Scores]:
    """Per who and metric, the mean over folds (of the folds where it is defined)."""
    return {who: Scores.mean([report[who] for report in reports]) for who in reports[0]}


def scores_json(scores: Mapping[str, Scores], sort: bool = False) -> dict[str, dict[str, float]]:
    """`sort`: metric names in alphabetical order, as the mean over folds has always been written."""
    return {who: dict(sorted(s.to_json().items())) if sort else s.to_json() for who, s in scores.items()}


def summary_table(scores: dict[str, Scores]) -> str:
    """Each predictor's figures beside its counts: n candles scored, and the decided calls behind
    decided_accuracy (the other figures are over all n)."""
    header = f"{'':<12}{'n':>8}{'decided':>9}" + "".join(f"{name:>18}" for name in SUMMARY_METRICS)
    rows = [header]
    for who, values in scores.items():
        counts = f"{values.n:>8.0f}{'-' if values.decided is None else f'{values.decided:.0f}':>9}"
        cells = "".join(
            f"{'-':>18}" if (value := getattr(values, name)) is None else f"{value:>18.4f}"
            for name in SUMMARY_METRICS
        )
        rows.append(f"{who:<12}{counts}{cells}")
    return "\n".join(rows)
