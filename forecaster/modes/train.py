"""mode=train: history -> dataset -> walk-forward training -> test metrics against baselines -> weights.

Each fold trains on everything before its validation block and is scored on its own test block;
the persistence and majority baselines are scored on exactly the same test rows. The model of the
last fold (trained on the most data) is saved in the run dir with its sidecar, logged to the
MLflow run and registered as `forecaster-<model>-<timeframe>`.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from forecaster import __version__, backend
from forecaster.baselines import Majority
from forecaster.config import Config, FlatConfig
from forecaster.direction import actual_directions
from forecaster.errors import UserError
from forecaster.evaluation.comparisons import paired_test, pooled
from forecaster.evaluation.evaluate import head_section, score
from forecaster.evaluation.outcomes import OUTCOMES_FILE, Outcomes, save_outcomes
from forecaster.evaluation.report import paired_line
from forecaster.evaluation.sections import (
    MODEL,
    PAIRED,
    PERSISTENCE,
    VS_PERSISTENCE,
    Paired,
    Scores,
    named_scalars,
)
from forecaster.flat import directions, fitted, margin_quantiles
from forecaster.history import load_history
from forecaster.models.base import ProbabilityModel
from forecaster.models.card import CandleRange, ModelCard, read_card
from forecaster.models.describe import version_description, version_tags
from forecaster.models.persistence import Persistence
from forecaster.modes.base import METRICS_FILE, RunResult
from forecaster.registry import registered_name
from forecaster.run_labels import flatten, run_tags
from forecaster.tracking import Tracker
from forecaster.training.dataset import Dataset, make_dataset
from forecaster.training.splits import Split, walk_forward

if TYPE_CHECKING:
    from forecaster.calibration import Calibration
    from forecaster.training.loop import EpochStats, TrainResult

log = logging.getLogger(__name__)
MODEL_DIR = "model"
PAIRED_KEY = f"{PAIRED}.{VS_PERSISTENCE}"  # MLflow names of the paired test, after val. / test.
COVERAGE_SLACK = 0.05  # flat=coverage deciding a share further than this from the one asked: warn
ALL_FLAT = 0.99  # a FLAT share this high on validation means the rule, not the model, decides the result
SUMMARY_METRICS = ("decided_accuracy", "flat_share", "brier_up", "brier_down", "log_loss_up", "log_loss_down")


@dataclass(frozen=True)
class BlockScores:
    """The model and the baselines on the same rows of one block, and the model paired with persistence."""

    scores: dict[str, Scores]
    vs_persistence: Paired
    outcomes: Outcomes  # per candle, for the sweep leaderboard


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
) -> BlockScores:
    """The model and both baselines on the same rows of one block (`where`: fold, val or test);
    persistence is the bar."""
    p_up, p_down = probabilities
    actual = actual_directions(block.next_ret)
    y_up, y_down = block.y[:, 0], block.y[:, 1]
    called = directions(p_up, p_down, rule)
    out = {MODEL: score(called, actual, p_up, p_down, y_up, y_down)}
    bar = Persistence().batch(block.X)
    guesses = {
        PERSISTENCE: bar,
        "majority": Majority.fit(train_part.y[:, 0], train_part.y[:, 1]).batch(block.X),
    }
    for name, guess in guesses.items():
        out[name] = score(guess.directions, actual, guess.p_up, guess.p_down, y_up, y_down)
    outcomes = Outcomes.of_block(
        *where, block.candle_ts, probabilities, called, block.next_ret, bar.directions
    )
    return BlockScores(out, paired_test(called, bar.directions, actual), outcomes)


def _fold(
    k: int, split: Split, data: Dataset, model: ProbabilityModel, config: Config, tracker: Tracker
) -> tuple[TrainResult, FoldScores]:
    def on_epoch(stats: EpochStats) -> None:
        values = {
            "train_loss": stats.train_loss,
            "val_loss": stats.val_loss,
            "samples_per_s": stats.samples_per_s,
        }
        tracker.log_metrics({f"fold{k}/{key}": value for key, value in values.items()}, step=stats.epoch)

    n_train, n_val, n_test = split.sizes()
    log.info("fold %d: train %d, validation %d, test %d rows", k, n_train, n_val, n_test)
    result = model.fit(data[split.train], data[split.val], config.train, config.seed, on_epoch)
    log.info("fold %d: best epoch %d of %d", k, result.best_epoch, len(result.history))
    from forecaster.training.loop import predict_probabilities  # JAX: not needed to validate a config

    train_part, val_part, test_part = data[split.train], data[split.val], data[split.test]
    raw_val = predict_probabilities(result.model, result.standardizer, val_part.X)
    raw_test = predict_probabilities(result.model, result.standardizer, test_part.X)
    calibration = config.train.calibration.fit(*raw_val, val_part.y[:, 0], val_part.y[:, 1])
    if calibration is not None:
        log.info("fold %d: calibrated on validation: %s", k, calibration.describe())
    val_p, test_p = (
        (raw_val, raw_test) if calibration is None else (calibration(*raw_val), calibration(*raw_test))
    )
    reliability = {
        "val": reliability_change(raw_val, val_p, val_part),
        "test": reliability_change(raw_test, test_p, test_part),
    }
    quantiles = margin_quantiles(*val_p)
    rule = fitted(config.flat, quantiles)  # flat=coverage: the margin is chosen on validation only
    val = score_block(val_p, train_part, val_part, rule, (k, "val"))
    if config.flat.coverage is not None:
        log.info("fold %d: flat=coverage decides when |p_up - p_down| >= %.4f", k, rule.min_margin)
        _check_coverage(k, config.flat.coverage, val.scores[MODEL].flat_share)
    test = score_block(test_p, train_part, test_part, rule, (k, "test"))
    return result, FoldScores(val, test, quantiles, calibration, reliability)


def _check_coverage(k: int, coverage: float, flat_share: float | None) -> None:
    """Warn when flat=coverage's fitted margin decides far from its share of validation candles."""
    if flat_share is not None and abs(1.0 - flat_share - coverage) > COVERAGE_SLACK:
        log.warning(
            "fold %d: flat=coverage decides %.1f%% of validation candles, not %.0f%%: many candles share "
            "the same margin (isotonic calibration makes probabilities step-wise; prefer temperature)",
            k,
            100 * (1.0 - flat_share),
            100 * coverage,
        )


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


def _paired_lines(folds: list[FoldScores]) -> list[str]:
    """Per fold and pooled: the model against persistence on the test candles both decide."""
    tests = [fold.test.vs_persistence for fold in folds]
    named = [*((f"fold {k}", t) for k, t in enumerate(tests)), ("pooled", pooled(tests))]
    return [f"  {name}: {paired_line(VS_PERSISTENCE, t)}" for name, t in named]


def _mean(reports: list[dict[str, Scores]]) -> dict[str, Scores]:
    """Per who and metric, the mean over folds (of the folds where it is defined)."""
    return {who: Scores.mean([report[who] for report in reports]) for who in reports[0]}


def _json(scores: Mapping[str, Scores], sort: bool = False) -> dict[str, dict[str, float]]:
    """`sort`: metric names in alphabetical order, as the mean over folds has always been written."""
    return {who: dict(sorted(s.to_json().items())) if sort else s.to_json() for who, s in scores.items()}


def summary_table(scores: dict[str, Scores]) -> str:
    header = f"{'':<12}" + "".join(f"{name:>18}" for name in SUMMARY_METRICS)
    rows = [header]
    for who, values in scores.items():
        cells = "".join(
            f"{'-':>18}" if (value := getattr(values, name)) is None else f"{value:>18.4f}"
            for name in SUMMARY_METRICS
        )
        rows.append(f"{who:<12}{cells}")
    return "\n".join(rows)


@dataclass(frozen=True)
class Train:
    name: str = "train"

    def run(self, config: Config, run_dir: Path) -> RunResult:
        model = config.model
        if not model.trainable:
            raise UserError(
                f"model={model.name} needs no training; every training run reports it as a baseline"
            )
        backend.configure_jax(config.paths.jax_cache)
        from forecaster.models.checkpoint import save

        candles = load_history(config.source, config.data, config.timeframe.name, config.paths)
        features = config.features
        data = make_dataset(candles, features, config.train.threshold_bps)
        embargo = config.train.embargo_windows * features.window
        splits = walk_forward(
            len(data), config.train.folds, config.train.val_fraction, config.train.test_fraction, embargo
        )
        spec = model.spec(features.n_features, config.seed)

        tracker = config.tracking.open(config.paths)
        tracker.start(
            f"train-{config.model.name}-{config.timeframe.name}",
            flatten(asdict(config)),
            run_tags(config, run_dir),
        )
        status = "FAILED"
        try:
            folds = [_fold(k, split, data, model, config, tracker) for k, split in enumerate(splits)]
            fold_scores = [report for _, report in folds]
            reports = [report.test.scores for report in fold_scores]
            checks = [report.val.scores for report in fold_scores]
            scores, val_scores = _mean(reports), _mean(checks)
            bars = {
                "val": pooled([report.val.vs_persistence for report in fold_scores]),
                "test": pooled([report.test.vs_persistence for report in fold_scores]),
            }
            for k, report in enumerate(fold_scores):
                tracker.log_metrics(named_scalars(report.val.scores, f"fold{k}/val."), step=0)
                tracker.log_metrics(named_scalars(report.test.scores, f"fold{k}/test."), step=0)
                tracker.log_metrics(
                    named_scalars({PAIRED_KEY: report.test.vs_persistence}, f"fold{k}/test."), 0
                )
            reliability = mean_reliability(fold_scores)
            tracker.log_metrics(flatten(reliability, "calibration."), step=0)
            tracker.log_metrics(named_scalars(val_scores, "val."), step=0)
            tracker.log_metrics(named_scalars(scores, "test."), step=0)
            for block, bar in bars.items():
                tracker.log_metrics(named_scalars({PAIRED_KEY: bar}, f"{block}."), step=0)
            if (share := val_scores[MODEL].flat_share) is not None and share >= ALL_FLAT:
                log.warning(
                    "the model abstains on %.1f%% of validation candles: its probabilities sit inside "
                    "the FLAT thresholds; try flat=loose or flat=off, or judge it by its coverage curve "
                    "in mode=eval",
                    100 * share,
                )
            result = folds[-1][0]
            last_test = data[splits[-1].test]
            card = ModelCard(
                spec=spec,
                trained=True,
                feature_set=features.name,
                feature_fingerprint=features.fingerprint(),
                feature_names=tuple(features.names),
                timeframe=config.timeframe.name,
                threshold_bps=config.train.threshold_bps,
                normalisation=result.standardizer,
                data_range=CandleRange(int(candles.start_ms[0]), int(candles.start_ms[-1])),
                symbol=config.source.symbol,
                best_epoch=result.best_epoch,
                margin_quantiles=fold_scores[-1].margin_quantiles,
                calibration=fold_scores[-1].calibration,
                val=_json(val_scores, sort=True),
                test=_json(scores, sort=True),
                # the last fold's test block: mode=eval replays it by default and should agree with this
                test_range=CandleRange(int(last_test.candle_ts[0]), int(last_test.candle_ts[-1])),
                last_fold_test=_json(reports[-1]),
                code_version=__version__,
            )
            model_dir = save(run_dir / MODEL_DIR, result.model, card)
            blocks = [part.outcomes for fold in fold_scores for part in (fold.val, fold.test)]
            outcomes = save_outcomes(run_dir / OUTCOMES_FILE, Outcomes.concat(blocks), config.timeframe.name)
            tracker.log_artifact(outcomes)
            saved = read_card(model_dir)  # as saved: with the weights' sha256
            version = tracker.register_model(
                model_dir,
                registered_name(config),
                {**run_tags(config, run_dir), **version_tags(saved, bars)},
                version_description(saved, bars),
            )
            metrics = {
                # validation: what searches and any "best of" choose on; test: scored once, reported
                "val": _json(val_scores, sort=True),
                "test": _json(scores, sort=True),
                "folds": [_json(report) for report in reports],
                "val_folds": [_json(report) for report in checks],
                # the model against persistence on the candles both decide: exact one-sided McNemar
                "paired": {
                    "val": bars["val"].to_json(),
                    "test": bars["test"].to_json(),
                    "folds": [report.test.vs_persistence.to_json() for report in fold_scores],
                },
                # ECE and log loss per head before and after calibration (mean over folds)
                "calibration": reliability,
            }
            if version is not None:  # the sweep leaderboard aliases the version it chooses
                metrics["registered"] = {"name": registered_name(config), "version": version}
            (run_dir / METRICS_FILE).write_text(json.dumps(metrics, indent=2) + "\n")
            tracker.log_artifact(run_dir / METRICS_FILE)
            print(
                f"validation split ({int(val_scores['model'].n)} rows per fold on average; choose on these):"
            )
            print(summary_table(val_scores))
            print(f"test split ({len(splits)} fold(s), {int(scores['model'].n)} rows per fold on average):")
            print(summary_table(scores))
            print(calibration_summary(fold_scores))
            print("test block, per fold and pooled:")
            print("\n".join(_paired_lines(fold_scores)))
            print(f"weights: {model_dir}")
            if version is not None:
                print(f"registered: models:/{registered_name(config)}/{version} ({tracker.describe()})")
            status = "FINISHED"
        finally:
            tracker.finish(status)
        return RunResult(metrics=metrics)
