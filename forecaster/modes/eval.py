"""mode=eval: predictions against facts -> metrics.json, report.md, plots, and an MLflow run.

Two sources of predictions. `eval.records=<run dir or MLflow run id>` judges a live session's
records. Otherwise the model of `model.path` / `model.uri` is judged on history: the candles of
`data.start`..`data.end` (default: the model's own test split) are replayed through the same
Predictor as live, written as the same records in this run dir, and then judged the same way.
`eval.sweep=<multirun dir or MLflow sweep tag>` judges a training sweep instead: the leaderboard
of forecaster/sweeps.py.

A combiner's folder (model=combiner, with its `combiner.json`) is also replayed from its members'
recorded predictions and its facts: the console says whether that gives exactly the recorded
predictions, and its member weights over time are plotted."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from forecaster import backend
from forecaster.candles import timeframe_ms, utc_text
from forecaster.combined import SETTINGS_FILE, first_difference, replay
from forecaster.config import Config, FlatConfig, PredictorEntry, entry_config
from forecaster.errors import UserError
from forecaster.evaluation.comparisons import economics, paired_test
from forecaster.evaluation.evaluate import decisions, evaluate_joined, evaluate_predictions
from forecaster.evaluation.join import Joined, join
from forecaster.evaluation.report import render_report, summary_lines, verdict
from forecaster.evaluation.sections import MODEL, Evaluation, EvaluationSet, Paired
from forecaster.facts import FactTracker
from forecaster.flat import fitted
from forecaster.history import load_history, period
from forecaster.models.card import read_card
from forecaster.models.describe import span
from forecaster.modes.base import METRICS_FILE, RunResult
from forecaster.predictor import build_predictor
from forecaster.recording import (
    FACT_KEY,
    PREDICTION_KEY,
    FactRecord,
    PredictionRecord,
    RunRecords,
    fact_from_record,
    prediction_from_record,
    read_jsonl,
    recorded_candles,
)
from forecaster.registry import download_model, weights_path
from forecaster.run_labels import flatten, run_tags
from forecaster.show import show
from forecaster.tracking import download_records

log = logging.getLogger(__name__)
REPORT_FILE = "report.md"
PLOTS_DIR = "plots"
WEIGHTS_PLOT = "member_weights.png"  # a combiner's member weights over time
COMPARED = "compared"  # results key prefix of eval.compare's model


def replay_history(config: Config, run_dir: Path, weights: Path | None) -> Path:
    """Predict every candle of the period with the live code path; the records land in run_dir."""
    backend.configure_jax(config.paths.jax_cache)
    predictor = build_predictor(config, weights)
    step = timeframe_ms(config.timeframe.name)
    tested = predictor.card.test_range if predictor.card else None
    start, end = period(config.data)
    if start is not None:
        first = start
    elif tested is not None:
        first, end = tested.first_candle_ts, tested.last_candle_ts + step
        log.info("period: the model's test split, %s .. %s UTC", utc_text(first), utc_text(end))
    else:
        raise UserError(
            "say which period to judge: data.start (and data.end), or give a trained model.path/uri"
        )
    warm = predictor.window.features.window - 1
    widened = replace(
        config.data, start=str(max(first - warm * step, 0)), end=None if end is None else str(end + step)
    )
    trained = span(predictor.card.data_range) if predictor.card and predictor.card.data_range else None
    candles = load_history(config.source, widened, config.timeframe.name, config.paths, trained).to_candles()
    facts = FactTracker()
    with RunRecords(config.sink, run_dir) as records:
        for candle in candles:
            if end is None or candle.start_ms < end:
                prediction = predictor.on_candle(candle)
                if prediction is not None:
                    records.add_prediction(prediction)
            records.add_candle(candle)
            fact = facts.push(candle)
            if fact is not None:
                records.add_fact(fact)
    log.info("replayed %d candles, %d predictions", len(candles), predictor.counters.predictions)
    return run_dir


def judge_other_model(
    config: Config, source: Path, joined: Joined, facts: list[FactRecord]
) -> tuple[str, Evaluation, Paired]:
    """`eval.compare`: the recorded candles replayed through another trained model (e.g. a logreg
    baseline), judged on the candles that both it and the evaluated model predicted, and the model
    paired against it there."""
    where = str(config.eval.compare)
    remote = where.startswith("models:/")
    weights = download_model(config.tracking.store_uri(config.paths), where) if remote else Path(where)
    # the model option its card names (a logreg is compared as model=logreg, whatever this run's model)
    entry = PredictorEntry(
        model=read_card(weights).spec.name, timeframe=config.timeframe.name, path=str(weights)
    )
    predictor = build_predictor(entry_config(config, entry, f"eval.compare={where}: "), weights)
    candles = recorded_candles(source / config.sink.candles, source / config.sink.flow)
    predictions = [p for p in map(predictor.on_candle, candles) if p]
    other = join(predictions, facts)
    both = other.restricted_to(joined.candle_ts)
    name = predictor.card.spec.name if predictor.card else "compared"
    if len(both.candle_ts) == 0:
        raise UserError(
            f"eval.compare={where}: {name} predicted none of the judged candles (its window needs "
            f"{predictor.window.features.window} candles first); evaluate a longer session"
        )
    log.info("eval.compare: %s on %d of the %d candles", name, len(both.candle_ts), len(joined.candle_ts))
    ours = decisions(joined.restricted_to(both.candle_ts), config.flat, config.eval.redecide)
    evaluation = evaluate_predictions(both, config.eval.threshold_bps, predictor.rule)
    evaluation = replace(evaluation, economics=economics(both.predicted, both.ret_bps, config.eval.cost_bps))
    return name, evaluation, paired_test(ours, both.predicted, both.actual)


def track(
    config: Config,
    run_dir: Path,
    results: EvaluationSet,
    recorded: PredictionRecord | None,
    plots: list[Path],
) -> None:
    """One MLflow run with the metrics and the files; named after what made the records, if recorded."""
    tags = run_tags(config, run_dir)
    if recorded is not None:
        tags.update(model=recorded.model, timeframe=recorded.timeframe)
    tracker = config.tracking.open(config.paths)
    tracker.start(f"eval-{tags['model']}-{tags['timeframe']}", flatten(asdict(config)), tags)
    tracker.log_metrics(results.scalars(), step=0)
    for path in [run_dir / METRICS_FILE, run_dir / REPORT_FILE, *plots]:
        tracker.log_artifact(path, PLOTS_DIR if path.suffix == ".png" else None)
    tracker.finish()


def judged_rule(config: Config, weights: Path | None) -> FlatConfig:
    """The FLAT rule as eval applies it: flat=coverage takes its margin from the model's card (fitted
    on that model's validation rows), so re-deciding recorded probabilities needs the model."""
    rule = config.flat
    if rule.coverage is None:
        return rule
    if weights is None:
        if config.eval.records and config.eval.redecide:
            raise UserError(
                "flat=coverage with eval.redecide=true needs the model whose validation fitted the margin: "
                "give model.path or model.uri"
            )
        return rule
    return fitted(rule, read_card(weights).margin_quantiles)


def records_dir(config: Config, run_dir: Path) -> Path:
    source = Path(str(config.eval.records))
    if source.is_dir():
        return source
    store = config.tracking.store_uri(config.paths)
    return download_records(store, str(config.eval.records), run_dir / "downloaded")


@dataclass(frozen=True)
class Eval:
    name: str = "eval"

    def run(self, config: Config, run_dir: Path) -> RunResult:
        config.tracking.check_reachable(config.paths)
        if config.eval.sweep:
            from forecaster.sweeps import judge_sweep

            return RunResult(metrics=judge_sweep(config, config.eval.sweep, run_dir).to_json())
        # the model's weights, resolved (downloaded) once: to replay history, or for flat=coverage's margin
        needs_model = not config.eval.records or config.flat.coverage is not None
        weights = weights_path(config.model, config.tracking, config.paths) if needs_model else None
        config = replace(config, flat=judged_rule(config, weights))
        if not config.eval.records:
            return RunResult(metrics=judge(config, replay_history(config, run_dir, weights), run_dir))
        source = records_dir(config, run_dir)
        folders = predictor_folders(source, config.sink.predictions)
        if not folders:
            return RunResult(metrics=judge(config, source, run_dir))
        log.info("%s holds the records of %d predictors: judging each", source, len(folders))
        metrics = {}
        for name, folder in folders.items():
            replayed, plots = {}, []
            if (folder / SETTINGS_FILE).is_file():
                replayed, plots = replay_combiner(config, folder, source, run_dir / name)
            metrics[name] = {**judge(config, folder, run_dir / name, name, plots), **replayed}
        return RunResult(metrics=metrics)


def predictor_folders(source: Path, predictions: str) -> dict[str, Path]:
    """A session of several predictors (live.predictors) records each in its own folder."""
    if (source / predictions).exists():
        return {}
    return {d.name: d for d in sorted(source.iterdir()) if (d / predictions).is_file()}


def replay_combiner(
    config: Config, folder: Path, source: Path, run_dir: Path
) -> tuple[dict[str, object], list[Path]]:
    """A combiner's predictions recomputed from its members' records (`source/<member>/`) and compared
    with those it recorded in `folder`; its member weights over time as a plot."""
    replayed = replay(folder, source, config.sink)
    recorded = [
        prediction_from_record(r)
        for r in read_jsonl(folder / config.sink.predictions, PREDICTION_KEY).records
    ]
    differs = first_difference(recorded, replayed.predictions)
    members = ", ".join(replayed.predictor.settings.members)
    if differs is None:
        said = f"identical to the {len(recorded)} recorded predictions"
    else:
        said = f"DIFFERS from the recorded predictions from candle {utc_text(differs)} UTC on"
    show(f"{folder.name}: replayed from the records of {members}: {said}")
    summary = {"replayed": len(replayed.predictions), "replay_identical": differs is None}
    if not config.eval.plots:
        return {"replay": summary}, []
    from forecaster.evaluation.plots import member_weights

    plot = member_weights(replayed.weights_ts, replayed.weights, run_dir / PLOTS_DIR / WEIGHTS_PLOT)
    return {"replay": summary}, [plot]


def judge(
    config: Config, source: Path, run_dir: Path, label: str = "", extra_plots: Sequence[Path] = ()
) -> dict:
    """The records in `source` judged, written to run_dir (metrics, report, plots, an MLflow run);
    `label` names the predictor of a session of several; `extra_plots` go with its own."""
    if label:
        run_dir.mkdir(parents=True, exist_ok=True)
    predictions = [
        prediction_from_record(r)
        for r in read_jsonl(source / config.sink.predictions, PREDICTION_KEY).records
    ]
    facts = [fact_from_record(r) for r in read_jsonl(source / config.sink.facts, FACT_KEY).records]
    joined = join(predictions, facts)
    if joined.report.matched == 0:
        raise UserError(
            f"no prediction in {source} has its fact yet ({len(predictions)} predictions, "
            f"{len(facts)} facts); evaluate a longer session"
        )
    results = evaluate_joined(
        joined, config.eval.threshold_bps, config.flat, config.eval.redecide, config.eval.cost_bps
    )
    if config.eval.compare:
        name, compared, paired = judge_other_model(config, source, joined, facts)
        who = f"{COMPARED}_{name}"
        results = results.with_judged(who, compared).with_paired(f"{MODEL}_vs_{who}", paired)
    said = verdict(results, config.eval.min_decided, config.eval.cost_bps)
    judged = {**results.to_json(), "verdict": said}
    (run_dir / METRICS_FILE).write_text(json.dumps(judged, indent=2, allow_nan=False) + "\n")
    plots = list(extra_plots)
    if config.eval.plots:
        from forecaster.evaluation.plots import plot_all

        plots += plot_all(joined, results, run_dir / PLOTS_DIR, config.flat if config.eval.redecide else None)
    (run_dir / REPORT_FILE).write_text(render_report(results, source, plots, run_dir))
    track(config, run_dir, results, predictions[0] if config.eval.records else None, plots)
    show(
        *([f"== {label} =="] if label else []),
        *summary_lines(results, config.eval.min_decided, config.eval.cost_bps),
        f"metrics: {run_dir / METRICS_FILE}",
        f"report: {run_dir / REPORT_FILE}",
    )
    return results.to_json()
