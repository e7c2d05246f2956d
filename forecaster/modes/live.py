"""mode=live: stream -> predict -> record, until Ctrl-C / SIGTERM or `live.max_candles`.

Confirmed 1m candles come from Bybit's WebSocket (warm-up and gap backfill from REST) or from a
replayed file; higher timeframes are aggregated from them on UTC boundaries. Every candle is
recorded, predicted, and settles the previous prediction; one console line says so. A signal
finishes the current candle, flushes the records, closes the MLflow run as KILLED and exits 0.

`live.predictors` runs several predictors (model x timeframe x FLAT rule) off one WebSocket
connection and one 1m stream: each has its own aggregator, records (in `<run dir>/<name>/`),
scoreboard and metrics (prefixed `<name>/` in the session's one MLflow run). With the list empty
the run's own model/timeframe/flat is the one predictor, recorded at the top of the run dir.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path

from forecaster import backend
from forecaster.candles import Aggregator, Candle
from forecaster.config import Config
from forecaster.facts import FactTracker
from forecaster.predictor import NS_PER_MS, Predictor, build_predictor, entry_config
from forecaster.recording import PredictionRecord, RunRecords
from forecaster.scoring import Outcome, Scoreboard, ScoreRule
from forecaster.sources.feed import (
    MinuteFeed,
    WarmUp,
    covered_until,
    next_or_stop,
    open_feed,
    stop_on_signals,
)
from forecaster.tracking import RECORDS_ARTIFACT, Tracker, flatten, open_tracker, run_tags

log = logging.getLogger(__name__)


class LiveSession:
    """One predictor over the stream: minute -> its candle -> records, prediction, fact, score, metrics.

    `name` ("" for the run's single implicit predictor) prefixes its console lines and metrics.
    """

    def __init__(
        self, config: Config, predictor: Predictor, records: RunRecords, tracker: Tracker, name: str = ""
    ) -> None:
        self.config = config
        self.predictor = predictor
        self.records = records
        self.tracker = tracker
        self.name = name
        self.aggregator = Aggregator(config.timeframe.name)
        self.facts = FactTracker()
        self.scores = Scoreboard(config.live.rolling_window, ScoreRule.from_config(config.live))
        self.candles = 0
        self.stream_counters: object | None = None
        self.covered_until: int | None = None  # last minute the warm-up already holds

    @property
    def done(self) -> bool:
        limit = self.config.live.max_candles
        return limit is not None and self.candles >= limit

    def warm_up(self, candles: list[Candle]) -> None:
        self.predictor.warm_up(candles)
        self.covered_until = covered_until(candles)
        if candles:
            self.facts.push(candles[-1])  # so the first live candle gets its fact

    def close(self, minute: Candle) -> Candle | None:
        """Feed one confirmed 1m candle to the aggregator; the candle of our timeframe it completes.

        Minutes the warm-up already covers are skipped: the shared stream starts after the warm-up
        that ends first, so predictors of other timeframes see some minutes they already have.
        """
        if self.covered_until is not None and minute.start_ms <= self.covered_until:
            return None
        return self.aggregator.push(minute)

    def on_minute(self, minute: Candle, received_ns: int) -> bool:
        """Handle one confirmed 1m candle; True when it completed a candle of our timeframe."""
        candle = self.close(minute)
        if candle is None:
            return False
        self.settle(candle, self.predictor.on_candle(candle, received_ns), received_ns)
        return True

    def settle(self, candle: Candle, prediction: PredictionRecord | None, received_ns: int) -> None:
        """Record a closed candle and its prediction, settle the previous prediction, report.

        The candle is written last: a restart resumes after the last recorded candle, so a crash
        between the writes makes the restart handle this candle again (the writers skip what is
        already there) instead of losing its fact or prediction. A candle already recorded by an
        earlier session (a replay starts from the top of its file) is not counted or shown again.
        """
        outcome = None
        fact = self.facts.push(candle)
        if fact is not None:
            self.records.add_fact(fact)
            outcome = self.scores.add_fact(fact)
        if prediction is not None:
            self.records.add_prediction(prediction)
            self.scores.add_prediction(prediction)
        if not self.records.add_candle(candle):
            return
        self.candles += 1
        print(self.console_line(candle, prediction, outcome), flush=True)
        self._log_metrics(prediction, (time.perf_counter_ns() - received_ns) / NS_PER_MS)
        if self.candles % self.config.live.upload_every == 0:
            self.upload()

    def console_line(
        self, candle: Candle, prediction: PredictionRecord | None, outcome: Outcome | None
    ) -> str:
        when = datetime.fromtimestamp(candle.start_ms / 1000, UTC).strftime("%Y-%m-%d %H:%M")
        line = f"{self.name} " if self.name else ""
        line += f"{when} {candle.timeframe} close={candle.close:<10.2f}"
        if prediction is None:
            line += " warming up".ljust(40)
        else:
            line += f" p_up={prediction.p_up:.3f} p_down={prediction.p_down:.3f} -> {prediction.direction:<4}"
            line += "" if prediction.trained else " (untrained)"
        if outcome is not None:
            line += f" | prev {outcome.predicted} vs {outcome.actual}: {outcome.kind}"
        metrics = self.scores.metrics()
        if self.scores.settled:
            line += f" | score {self.scores.score:+g}"
        if "decided_accuracy" in metrics:
            line += f" | acc {metrics['decided_accuracy']:.1%} of {self.scores.decided} decided"
        return line

    def _log_metrics(self, prediction: PredictionRecord | None, handled_ms: float) -> None:
        counted = {f"predictor_{key}": float(value) for key, value in asdict(self.predictor.counters).items()}
        metrics = {**self.scores.metrics(), **counted, "candle_ms": handled_ms}
        if prediction is not None:
            metrics["latency_ms"] = prediction.latency_ms
        prefix = f"{self.name}/" if self.name else ""
        metrics = {f"{prefix}{key}": value for key, value in metrics.items()}
        counters = self.stream_counters
        if counters is not None:
            metrics.update({f"stream_{k}": float(v) for k, v in asdict(counters).items()})  # type: ignore[call-overload]
        self.tracker.log_metrics(metrics, step=self.candles)

    def upload(self) -> None:
        folder = f"{RECORDS_ARTIFACT}/{self.name}" if self.name else RECORDS_ARTIFACT
        for writer in self.records.writers():
            if writer.path.exists():
                self.tracker.log_artifact(writer.path, folder)


def predictor_configs(config: Config) -> dict[str, Config]:
    """Name -> the full config of each predictor; {"": config} when live.predictors is empty."""
    if not config.live.predictors:
        return {"": config}
    return {entry.label: entry_config(config, entry) for entry in config.live.predictors}


def _warm_up_request(session: LiveSession) -> WarmUp:
    predictor = session.predictor
    return WarmUp(predictor.timeframe, predictor.window.features.window, session.records.candles.last_key)


async def _run_sessions(config: Config, sessions: list[LiveSession]) -> str:
    """Consume until every predictor did max_candles, the end of a replay, or a signal; the run status."""
    with stop_on_signals() as stop:
        warmups = [_warm_up_request(session) for session in sessions]
        async with open_feed(MinuteFeed(config, warmups=warmups), stop) as feed:
            if feed is None:
                log.info("signal received during the warm-up: stopping")
                return "KILLED"
            for session, warm in zip(sessions, feed.warmed, strict=True):
                session.warm_up(warm)
            sessions[0].stream_counters = feed.counters
            minutes = aiter(feed)
            while (minute := await next_or_stop(minutes, stop)) is not None:
                received = time.perf_counter_ns()
                for session in sessions:
                    if not session.done:
                        session.on_minute(minute, received)
                if all(session.done for session in sessions):
                    log.info("live.max_candles=%s reached", config.live.max_candles)
                    return "FINISHED"
    if stop.is_set():
        log.info("signal received: stopped after %s candles", _counts(sessions))
        return "KILLED"
    log.info("the source has no more candles")
    return "FINISHED"


def _counts(sessions: list[LiveSession]) -> str:
    return ", ".join(f"{s.name or s.predictor.model_name}: {s.candles}" for s in sessions)


def _params(config: Config, configs: dict[str, Config]) -> dict[str, object]:
    params = flatten(asdict(config))
    if "" not in configs:
        for name, each in configs.items():
            resolved = {
                "model": asdict(each.model),
                "flat": asdict(each.flat),
                "timeframe": each.timeframe.name,
            }
            params.update(flatten(resolved, f"predictor.{name}."))
    return params


def run(config: Config, run_dir: Path) -> int:
    backend.configure_jax(config.paths.jax_cache, sync_dispatch=True)
    configs = predictor_configs(config)
    predictors = {name: build_predictor(each) for name, each in configs.items()}
    tracker = open_tracker(config)
    single = f"live-{config.model.name}-{config.timeframe.name}"
    run_name = single if "" in configs else f"live-{len(configs)}-predictors"
    with contextlib.ExitStack() as stack:
        sessions = [
            LiveSession(
                configs[name],
                predictor,
                stack.enter_context(RunRecords(config.sink, run_dir / name)),
                tracker,
                name,
            )
            for name, predictor in predictors.items()
        ]
        tracker.start(run_name, _params(config, configs), run_tags(config, run_dir))
        status = "FAILED"
        try:
            status = asyncio.run(_run_sessions(config, sessions))
        finally:
            for session in sessions:
                session.upload()
            tracker.finish(status)
            log.info(
                "%d candles, %d predictions (%s); records in %s; %s",
                sum(s.candles for s in sessions),
                sum(s.predictor.counters.predictions for s in sessions),
                _counts(sessions),
                run_dir,
                tracker.describe(),
            )
    return 0
