"""mode=live: stream -> predict -> record, until Ctrl-C / SIGTERM or `live.max_candles`.

Confirmed 1m candles come from Bybit's WebSocket (warm-up and gap backfill from REST) or from a
replayed file; higher timeframes are aggregated from them on UTC boundaries. Every candle is
recorded, predicted, and settles the previous prediction; one console line says so. A signal
finishes the current candle, flushes the records, closes the MLflow run as KILLED and exits 0.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path

from forecaster import backend
from forecaster.candles import Aggregator, Candle
from forecaster.config import Config
from forecaster.facts import FactTracker
from forecaster.predictor import Predictor, build_predictor
from forecaster.recording import PredictionRecord, RunRecords
from forecaster.scoring import Outcome, Scoreboard
from forecaster.sources.feed import MinuteFeed, next_or_stop, stop_on_signals
from forecaster.tracking import Tracker, flatten, open_tracker, run_tags

log = logging.getLogger(__name__)
NS_PER_MS = 1e6


class LiveSession:
    """One pass over the stream: candle -> records, prediction, fact, score, metrics."""

    def __init__(self, config: Config, predictor: Predictor, records: RunRecords, tracker: Tracker) -> None:
        self.config = config
        self.predictor = predictor
        self.records = records
        self.tracker = tracker
        self.aggregator = Aggregator(config.timeframe.name)
        self.facts = FactTracker()
        self.scores = Scoreboard(config.live.rolling_window)
        self.candles = 0
        self.stream_counters: object | None = None

    def warm_up(self, candles: list[Candle]) -> None:
        self.predictor.warm_up(candles)
        if candles:
            self.facts.push(candles[-1])  # so the first live candle gets its fact

    def on_minute(self, minute: Candle, received_ns: int) -> bool:
        """Handle one confirmed 1m candle; True when it completed a candle of our timeframe."""
        candle = self.aggregator.push(minute)
        if candle is None:
            return False
        prediction = self.predictor.on_candle(candle, received_ns)
        self.records.add_candle(candle)
        outcome = None
        fact = self.facts.push(candle)
        if fact is not None:
            self.records.add_fact(fact)
            outcome = self.scores.add_fact(fact)
        if prediction is not None:
            self.records.add_prediction(prediction)
            self.scores.add_prediction(prediction)
        self.candles += 1
        print(self.console_line(candle, prediction, outcome), flush=True)
        self._log_metrics(prediction, (time.perf_counter_ns() - received_ns) / NS_PER_MS)
        if self.candles % self.config.live.upload_every == 0:
            self.upload()
        return True

    def console_line(
        self, candle: Candle, prediction: PredictionRecord | None, outcome: Outcome | None
    ) -> str:
        when = datetime.fromtimestamp(candle.start_ms / 1000, UTC).strftime("%Y-%m-%d %H:%M")
        line = f"{when} {candle.timeframe} close={candle.close:<10.2f}"
        if prediction is None:
            line += " warming up".ljust(40)
        else:
            line += f" p_up={prediction.p_up:.3f} p_down={prediction.p_down:.3f} -> {prediction.direction:<4}"
            line += "" if prediction.trained else " (untrained)"
        if outcome is not None:
            verdict = "abstained" if not outcome.decided else "hit" if outcome.correct else "miss"
            line += f" | prev {outcome.predicted} vs {outcome.actual}: {verdict}"
        metrics = self.scores.metrics()
        if "decided_accuracy" in metrics:
            line += f" | acc {metrics['decided_accuracy']:.1%} of {self.scores.decided} decided"
        return line

    def _log_metrics(self, prediction: PredictionRecord | None, handled_ms: float) -> None:
        metrics = {**self.scores.metrics(), "candle_ms": handled_ms}
        if prediction is not None:
            metrics["latency_ms"] = prediction.latency_ms
        counters = self.stream_counters
        if counters is not None:
            metrics.update({f"stream_{k}": float(v) for k, v in asdict(counters).items()})  # type: ignore[call-overload]
        self.tracker.log_metrics(metrics, step=self.candles)

    def upload(self) -> None:
        for writer in self.records.writers():
            if writer.path.exists():
                self.tracker.log_artifact(writer.path, "records")


async def _run_session(config: Config, session: LiveSession) -> str:
    """Consume until max_candles, the end of a replay, or a signal; return the MLflow run status."""
    with stop_on_signals() as stop:
        resume = session.records.candles.last_key
        async with MinuteFeed(config, session.predictor.window.features.window, resume) as feed:
            session.warm_up(feed.warm)
            session.stream_counters = feed.counters
            minutes = aiter(feed)
            while (minute := await next_or_stop(minutes, stop)) is not None:
                session.on_minute(minute, time.perf_counter_ns())
                if config.live.max_candles is not None and session.candles >= config.live.max_candles:
                    log.info("live.max_candles=%d reached", config.live.max_candles)
                    return "FINISHED"
    if stop.is_set():
        log.info("signal received: stopped after %d candles", session.candles)
        return "KILLED"
    log.info("the source has no more candles")
    return "FINISHED"


def run(config: Config, run_dir: Path) -> int:
    backend.configure_jax(config.paths.jax_cache, sync_dispatch=True)
    predictor = build_predictor(config)
    tracker = open_tracker(config)
    name = f"live-{config.model.name}-{config.timeframe.name}"
    tracker.start(name, flatten(asdict(config)), run_tags(config, run_dir))
    status = "FAILED"
    with RunRecords(config.sink, run_dir) as records:
        session = LiveSession(config, predictor, records, tracker)
        try:
            status = asyncio.run(_run_session(config, session))
        finally:
            session.upload()
            tracker.finish(status)
            log.info(
                "%d candles, %d predictions; records in %s; %s",
                session.candles,
                predictor.counters.predictions,
                run_dir,
                tracker.describe(),
            )
    return 0
