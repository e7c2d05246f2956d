"""Drive predictor loops off one feed until every one is done, the source ends, or a signal arrives.

Each minute goes to every loop; each event a loop emits goes to that loop's sinks. The runner logs
the stream's counters (reconnects, backfills, ...) itself, once per minute.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import asdict, dataclass, is_dataclass
from typing import TYPE_CHECKING

from forecaster.candles import MINUTE_MS
from forecaster.evaluation.report import accuracy_interval
from forecaster.evaluation.statistics import wilson_interval
from forecaster.live.background import BackgroundTracker
from forecaster.live.flow_join import FlowJoin
from forecaster.live.loop import PredictorLoop
from forecaster.live.session_state import Steps
from forecaster.live.sinks import Sink
from forecaster.sources.base import FlowSource
from forecaster.sources.feed import MinuteFeed, next_or_stop, open_feed, stop_on_signals

if TYPE_CHECKING:
    from forecaster.config import Config

log = logging.getLogger(__name__)
FINISHED, KILLED, FAILED = "FINISHED", "KILLED", "FAILED"


@dataclass
class Session:
    """One predictor loop and the sinks its events go to, in order (records first)."""

    loop: PredictorLoop
    sinks: Sequence[Sink]


def counts(sessions: Sequence[Session]) -> str:
    return ", ".join(f"{s.loop.name or s.loop.predictor.model_name}: {s.loop.candles}" for s in sessions)


def summary_line(loop: PredictorLoop) -> str:
    """What a predictor did this session, as the end-of-session log states it."""
    scores = loop.scores
    who = loop.name or f"{loop.predictor.model_name}-{loop.predictor.timeframe}"
    line = f"{who}: {loop.candles} predicted candles, {scores.settled} settled, {scores.decided} decided"
    if scores.decided:
        low, high = wilson_interval(scores.correct, scores.decided)
        line += f", accuracy {accuracy_interval(scores.correct / scores.decided, low, high)}"
    return f"{line}, score {scores.score:+g}"


def counter_metrics(counters: object, prefix: str) -> dict[str, float]:
    """A stream's counters as metrics named `<prefix><counter>`; none for a source that counts none."""
    if not is_dataclass(counters) or isinstance(counters, type):
        return {}
    return {f"{prefix}{key}": float(value) for key, value in asdict(counters).items()}


def counts_text(counters: object, keys: tuple[str, ...]) -> str:
    """ "3 reconnects, 0 gaps, ...": the `keys` a stream counts, in that order."""
    found = counter_metrics(counters, "")
    return ", ".join(f"{int(found[key])} {key}" for key in keys if key in found)


def stream_line(counters: object) -> str | None:
    """The stream's faults survived this session; None for a source that counts none (a replay)."""
    if not counter_metrics(counters, ""):
        return None
    keys = ("reconnects", "stale", "gaps", "backfilled", "unfilled", "duplicates", "malformed")
    return "stream: " + counts_text(counters, keys)


async def run_sessions(
    config: Config,
    sessions: Sequence[Session],
    tracker: BackgroundTracker,
    steps: Steps,
    on_signal: Callable[[int], None],
    flow: bool = False,
) -> str:
    """Consume until every loop is done, the end of a replay, or a signal; the run status.

    `flow`: a predictor reads order flow; a source that streams it (FlowSource) then has each minute
    joined to its flow bar (forecaster/live/flow_join.py); other sources' candles carry their own.
    """
    with stop_on_signals(on_signal) as stop:
        warmups = [session.loop.warm_up_request() for session in sessions]
        async with (
            open_feed(MinuteFeed(config.source, config.paths, warmups), stop) as feed,
            _flow_join(config, flow and feed is not None) as join,
        ):
            if feed is None:
                log.info("signal received during the warm-up: stopping")
                return KILLED
            for session, warm in zip(sessions, feed.warmed, strict=True):
                session.loop.warm_up(warm if join is None else join.warm(warm))
            status = await _consume(config, sessions, feed, join, tracker, steps, stop)
            for line in (stream_line(feed.counters), None if join is None else flow_line(join)):
                if line is not None:
                    log.info("%s", line)
            return status


@contextlib.asynccontextmanager
async def _flow_join(config: Config, wanted: bool) -> AsyncIterator[FlowJoin | None]:
    if not wanted or not isinstance(config.source, FlowSource):
        yield None
        return
    async with FlowJoin(config.source, config.live.flow_wait_ms) as join:
        yield join


def flow_line(join: FlowJoin) -> str:
    """The flow stream's faults survived this session, and the candles left without their bar."""
    keys = ("reconnects", "gaps", "crossed", "resyncs", "duplicates", "malformed")
    joined = counts_text(join.counters, ("joined", "waited_out", "no_flow"))
    return f"flow: {counts_text(join.feed.counters, keys)}; candles {joined}"


async def _consume(
    config: Config,
    sessions: Sequence[Session],
    feed: MinuteFeed,
    join: FlowJoin | None,
    tracker: BackgroundTracker,
    steps: Steps,
    stop: asyncio.Event,
) -> str:
    minutes = aiter(feed)
    seen = 0
    while (minute := await next_or_stop(minutes, stop)) is not None:
        received = time.perf_counter_ns()
        if join is not None:
            minute = await join.attach(minute)
        for session in sessions:
            if session.loop.done:
                continue
            event = session.loop.on_minute(minute, received)
            if event is not None:
                for sink in session.sinks:
                    sink.handle(event)
        seen += 1
        if seen % config.live.metrics_every == 0:
            _log_stream(tracker, feed, join, steps.of(minute.start_ms, MINUTE_MS))
        if all(session.loop.done for session in sessions):
            log.info("live.max_candles reached")
            return FINISHED
    if stop.is_set():
        log.info("signal received: stopped after %s candles", counts(sessions))
        return KILLED
    log.info("the source has no more candles")
    return FINISHED


def _log_stream(tracker: BackgroundTracker, feed: MinuteFeed, join: FlowJoin | None, step: int) -> None:
    """The streams' counters (reconnects, backfills, ...; the flow's with `flow_`), where kept."""
    metrics = counter_metrics(feed.counters, "stream_")
    if join is not None:
        metrics |= counter_metrics(join.feed.counters, "flow_") | counter_metrics(join.counters, "flow_")
    if metrics:
        tracker.log_metrics(metrics, step)
