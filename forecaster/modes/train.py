"""mode=train: history -> dataset -> walk-forward training -> test metrics against baselines -> weights.

Each fold trains on everything before its validation block and is scored on its own test block;
the persistence and majority baselines, and the gbm yardstick (train.yardstick), are scored on
exactly the same rows. The model option fits, predicts and saves (models.base.Fitted), so this mode
knows no model's internals. The model of the last fold (trained on the most data) is saved in the
run dir with its sidecar, logged to the MLflow run and registered as `forecaster-<model>-<timeframe>`.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from forecaster import __version__, backend
from forecaster.candles import timeframe_ms
from forecaster.config import Config
from forecaster.errors import UserError
from forecaster.evaluation.comparisons import pooled
from forecaster.evaluation.outcomes import OUTCOMES_FILE, Outcomes, save_outcomes
from forecaster.evaluation.sections import (
    MODEL,
    PAIRED,
    VS_PERSISTENCE,
    Paired,
    named_scalars,
)
from forecaster.flat import fitted, margin_quantiles
from forecaster.history import chosen_test_block, load_histories
from forecaster.models.base import Combining, Fitted, ProbabilityModel
from forecaster.models.card import CandleRange, ModelCard, read_card
from forecaster.models.describe import version_description, version_tags
from forecaster.models.gbm import GBM
from forecaster.modes.base import METRICS_FILE, RunResult
from forecaster.registry import registered_name
from forecaster.run_labels import flatten, run_tags
from forecaster.show import show
from forecaster.tracking import Tracker
from forecaster.training.dataset import Dataset
from forecaster.training.scores import (
    VS_YARDSTICK,
    FoldScores,
    Judged,
    calibration_summary,
    mean_reliability,
    mean_scores,
    paired_lines,
    reliability_change,
    score_block,
    scores_json,
    summary_table,
)
from forecaster.training.segments import make_datasets
from forecaster.training.splits import Split, Timeline, walk_forward
from forecaster.training.targets import training_rows
from forecaster.training.venues import venue_figures

if TYPE_CHECKING:
    from forecaster.calibration import Calibration
    from forecaster.training.loop import EpochStats

log = logging.getLogger(__name__)
MODEL_DIR = "model"
PAIRED_KEY = f"{PAIRED}.{VS_PERSISTENCE}"  # MLflow names of the paired test, after val. / test.
YARDSTICK_KEY = f"{PAIRED}.{VS_YARDSTICK}"
COVERAGE_SLACK = 0.05  # flat=coverage deciding a share further than this from the one asked: warn
ALL_FLAT = 0.99  # a FLAT share this high on validation means the rule, not the model, decides the result
Pair = tuple[np.ndarray, np.ndarray]  # (p_up, p_down) of one block


def _fold(
    k: int, split: Split, data: Dataset, model: ProbabilityModel, config: Config, tracker: Tracker
) -> tuple[Fitted, FoldScores]:
    def on_epoch(stats: EpochStats) -> None:
        values = {
            "train_loss": stats.train_loss,
            "val_loss": stats.val_loss,
            "samples_per_s": stats.samples_per_s,
        }
        tracker.log_metrics({f"fold{k}/{key}": value for key, value in values.items()}, step=stats.epoch)

    n_train, n_val, n_test = split.sizes()
    log.info("fold %d: train %d, validation %d, test %d rows", k, n_train, n_val, n_test)
    train_part, val_part, test_part = data[split.train], data[split.val], data[split.test]
    fitted_rows = training_rows(train_part, config.train.zero_moves, config.train.threshold_bps)
    log.info(
        "fold %d: %d training rows under train.zero_moves=%s", k, len(fitted_rows), config.train.zero_moves
    )
    result = model.fit(fitted_rows, val_part, config.train, config.seed, on_epoch)
    log.info("fold %d: best epoch %d of %d", k, result.best_epoch, result.epochs)
    raw_val, raw_test = result.probabilities(val_part.X), result.probabilities(test_part.X)
    calibration, val_p, test_p = _calibrated(raw_val, raw_test, val_part, config)
    if calibration is not None:
        log.info("fold %d: calibrated on validation: %s", k, calibration.describe())
    reliability = {
        "val": reliability_change(raw_val, val_p, val_part),
        "test": reliability_change(raw_test, test_p, test_part),
    }
    quantiles = margin_quantiles(*val_p)
    rule = fitted(config.flat, quantiles)  # flat=coverage: the margin is chosen on validation only
    stick_val, stick_test = (
        _yardstick(fitted_rows, val_part, test_part, config) if config.train.yardstick else (None, None)
    )
    val = score_block(val_p, train_part, val_part, rule, (k, "val"), stick_val)
    if config.flat.coverage is not None:
        log.info("fold %d: flat=coverage decides when |p_up - p_down| >= %.4f", k, rule.min_margin)
        _check_coverage(k, config.flat.coverage, val.scores[MODEL].flat_share)
    test = score_block(test_p, train_part, test_part, rule, (k, "test"), stick_test)
    return result, FoldScores(val, test, quantiles, calibration, reliability)


def _calibrated(
    raw_val: Pair, raw_test: Pair, val_part: Dataset, config: Config
) -> tuple[Calibration | None, Pair, Pair]:
    """train.calibration fitted on the validation rows, and both blocks' probabilities through it."""
    calibration = config.train.calibration.fit(*raw_val, val_part.y[:, 0], val_part.y[:, 1])
    if calibration is None:
        return None, raw_val, raw_test
    return calibration, calibration(*raw_val), calibration(*raw_test)


def _yardstick(
    train_part: Dataset, val_part: Dataset, test_part: Dataset, config: Config
) -> tuple[Judged, Judged]:
    """model=gbm's defaults on the fold's rows, calibrated and given its FLAT rule on validation exactly
    as the model is: its calls on the validation and the test block."""
    trees = GBM().fit(train_part, val_part, config.train, config.seed)
    _, val_p, test_p = _calibrated(
        trees.probabilities(val_part.X), trees.probabilities(test_part.X), val_part, config
    )
    rule = fitted(config.flat, margin_quantiles(*val_p))
    return Judged(*val_p, rule), Judged(*test_p, rule)


def _vs_yardstick(folds: list[FoldScores]) -> dict[str, Paired]:
    """Per block, the model against the yardstick pooled over folds; empty without a yardstick."""
    blocks = {
        "val": [fold.val.vs_yardstick for fold in folds],
        "test": [fold.test.vs_yardstick for fold in folds],
    }
    return {
        block: pooled([t for t in tests if t is not None])
        for block, tests in blocks.items()
        if None not in tests
    }


def _yardstick_json(pooled_tests: dict[str, Paired], folds: list[FoldScores]) -> dict[str, object]:
    tests = [fold.test.vs_yardstick for fold in folds]
    return {
        **{block: t.to_json() for block, t in pooled_tests.items()},
        "folds": [t.to_json() for t in tests if t is not None],
    }


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


@dataclass(frozen=True)
class Train:
    name: str = "train"

    def run(self, config: Config, run_dir: Path) -> RunResult:
        model = config.model
        if not model.trainable:
            why = (
                "it combines live predictors (live.predictors)"
                if isinstance(model, Combining)
                else "every training run reports it as a baseline"
            )
            raise UserError(f"model={model.name} needs no training; {why}")
        config.tracking.check_reachable(config.paths)
        backend.configure_jax(config.paths.jax_cache)

        histories = load_histories(config.source, config.data, config.timeframe.name, config.paths)
        features = config.features
        data = make_datasets(histories, features, config.train.threshold_bps)
        embargo = config.train.embargo_windows * features.window
        timeline = Timeline(data.candle_ts, timeframe_ms(config.timeframe.name))
        chosen = chosen_test_block(config.data)
        splits = walk_forward(
            len(data),
            config.train.folds,
            config.train.val_fraction,
            config.train.test_fraction,
            embargo,
            timeline,
            timeline.block(*chosen) if chosen else None,
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
            scores, val_scores = mean_scores(reports), mean_scores(checks)
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
            sticks = _vs_yardstick(fold_scores)
            for block, stick in sticks.items():
                tracker.log_metrics(named_scalars({YARDSTICK_KEY: stick}, f"{block}."), step=0)
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
                data_range=CandleRange(
                    min(int(h.candles.start_ms[0]) for h in histories),
                    max(int(h.candles.start_ms[-1]) for h in histories),
                ),
                symbol=config.source.symbol,
                best_epoch=result.best_epoch,
                margin_quantiles=fold_scores[-1].margin_quantiles,
                calibration=fold_scores[-1].calibration,
                val=scores_json(val_scores, sort=True),
                test=scores_json(scores, sort=True),
                # the last fold's test block: mode=eval replays it by default and should agree with this
                test_range=CandleRange(int(last_test.candle_ts[0]), int(last_test.candle_ts[-1])),
                last_fold_test=scores_json(reports[-1]),
                code_version=__version__,
            )
            model_dir = result.save(run_dir / MODEL_DIR, card)
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
                "val": scores_json(val_scores, sort=True),
                "test": scores_json(scores, sort=True),
                "folds": [scores_json(report) for report in reports],
                "val_folds": [scores_json(report) for report in checks],
                # the model against persistence on the candles both decide: exact one-sided McNemar
                "paired": {
                    "val": bars["val"].to_json(),
                    "test": bars["test"].to_json(),
                    "folds": [report.test.vs_persistence.to_json() for report in fold_scores],
                },
                # the model against the gbm yardstick (train.yardstick), as against persistence above
                **({"vs_yardstick": _yardstick_json(sticks, fold_scores)} if sticks else {}),
                # ECE and log loss per head before and after calibration (mean over folds)
                "calibration": reliability,
            }
            venues = venue_figures(
                [(f.test.outcomes, data[s.test].label) for f, s in zip(fold_scores, splits, strict=True)]
            )
            if venues:  # several files or venues: the test figures of each, pooled over folds
                metrics["venues"] = {name: figures.to_json() for name, figures in venues.items()}
            if version is not None:  # the sweep leaderboard aliases the version it chooses
                metrics["registered"] = {"name": registered_name(config), "version": version}
            (run_dir / METRICS_FILE).write_text(json.dumps(metrics, indent=2) + "\n")
            tracker.log_artifact(run_dir / METRICS_FILE)
            last = len(splits) - 1
            show(
                f"validation split ({len(splits)} fold(s), per fold on average; choose on these):",
                summary_table(val_scores),
                f"test split ({len(splits)} fold(s), per fold on average):",
                summary_table(scores),
                calibration_summary(fold_scores),
                "test block, per fold and pooled:",
                *paired_lines(fold_scores),
                *(["test block per file, pooled over folds:"] if venues else []),
                *(f"  {name}: {figures.line()}" for name, figures in venues.items()),
                f"weights: {model_dir} (fold {last}'s model: the last fold, trained on the most history)",
                *(
                    [
                        f"registered: models:/{registered_name(config)}/{version}, that same model "
                        f"({tracker.describe()})"
                    ]
                    if version is not None
                    else []
                ),
            )
            status = "FINISHED"
        finally:
            tracker.finish(status)
        return RunResult(metrics=metrics)
