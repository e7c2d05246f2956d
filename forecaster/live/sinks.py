"""Where live events go: the JSONL records, the console, the tracker. Each sink is one small class.

The records sink writes the candle last: a restart resumes after the last recorded candle, so a
crash between the writes makes the restart handle this candle again (the writers skip what is
already there) instead of losing its fact or prediction.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from forecaster.candles import timeframe_ms, utc_text
from forecaster.config import LiveConfig
from forecaster.disk_space import DiskFloor, writing
from forecaster.live.background import BackgroundTracker, Upload
from forecaster.live.loop import CandleEvent
from forecaster.live.session_state import Steps
from forecaster.predictor import CombiningPredictor
from forecaster.recording import RunRecords


class Sink(Protocol):
    def handle(self, event: CandleEvent) -> None: ...
    def close(self) -> None: ...


class RecordsSink:
    """A failed write or a disk below its floor raises UserError: the session stops, records intact."""

    def __init__(self, records: RunRecords, floor: DiskFloor) -> None:
        self.records = records
        self.floor = floor

    def handle(self, event: CandleEvent) -> None:
        self.floor.check()
        if event.fact is not None:
            with writing(self.records.facts):
                self.records.add_fact(event.fact)
        if event.prediction is not None:
            with writing(self.records.predictions):
                self.records.add_prediction(event.prediction)
        if self.records.flow is not None and event.candle.flow is not None:
            with writing(self.records.flow):
                self.records.add_flow(event.candle.flow)
        with writing(self.records.candles):
            self.records.add_candle(event.candle)

    def close(self) -> None:
        self.records.close()


def console_line(event: CandleEvent) -> str:
    when = utc_text(event.candle.start_ms)
    prediction, outcome = event.prediction, event.outcome
    line = f"{event.name} " if event.name else ""
    line += f"{when} {event.candle.timeframe} close={event.candle.close:<10.2f}"
    if prediction is not None:
        line += f" p_up={prediction.p_up:.3f} p_down={prediction.p_down:.3f} -> {prediction.direction:<4}"
        line += "" if prediction.trained else " (untrained)"
    if outcome is not None:
        line += f" | prev {outcome.predicted} vs {outcome.actual}: {outcome.kind}"
    if event.settled:
        line += f" | score {event.score:+g}"
    if "decided_accuracy" in event.metrics:
        line += f" | acc {event.metrics['decided_accuracy']:.1%} of {event.decided} decided"
    return line


class ConsoleSink:
    """One line per new predicted candle; a warm-up (the feature window filling from the stream, as a
    replay does, or again after a gap) is one line when it starts and one when it ends."""

    def __init__(self) -> None:
        self._warming: dict[str, int] = {}  # predictor name -> candles into its current warm-up

    def handle(self, event: CandleEvent) -> None:
        if not event.new:
            return
        who = f"{event.name} " if event.name else ""
        if event.prediction is None:
            if event.name not in self._warming:
                print(f"{who}warming up: no prediction until the feature window is full", flush=True)
            self._warming[event.name] = self._warming.get(event.name, 0) + 1
            return
        warmed = self._warming.pop(event.name, None)
        if warmed is not None:
            print(f"{who}warmed up on {warmed} candles", flush=True)
        print(console_line(event), flush=True)

    def close(self) -> None:
        pass


class TrackerSink:
    """Metrics of every `metrics_every`-th new candle (prefixed `<name>/` for a named predictor), with
    the slowest candle since the last ones; a sync of the records every `upload_every`.

    Both only hand work to the background tracker: nothing here waits on MLflow.
    """

    def __init__(
        self, tracker: BackgroundTracker, uploads: Upload, steps: Steps, name: str, live: LiveConfig
    ) -> None:
        self.tracker = tracker
        self.uploads = uploads
        self.steps = steps
        self.prefix = f"{name}/" if name else ""
        self.metrics_every = live.metrics_every
        self.upload_every = live.upload_every
        self._slowest: dict[str, float] = {}

    def handle(self, event: CandleEvent) -> None:
        if not event.new or event.prediction is None:  # warm-up: nothing to score or time yet
            return
        timings = {"candle_ms": event.handled_ms, "latency_ms": event.prediction.latency_ms}
        for key, value in timings.items():
            self._slowest[key] = max(value, self._slowest.get(key, value))
        if event.count % self.metrics_every == 0:
            slowest = {f"{key}_max": value for key, value in self._slowest.items()}
            metrics = {**event.metrics, **timings, **slowest}
            step = self.steps.of(event.candle.start_ms, timeframe_ms(event.candle.timeframe))
            self.tracker.log_metrics({f"{self.prefix}{k}": v for k, v in metrics.items()}, step)
            self._slowest = {}
        if event.count % self.upload_every == 0:
            self.tracker.upload(self.uploads)

    def close(self) -> None:
        self.tracker.upload(self.uploads)


class MemberFeed:
    """A predictor's predictions handed, as its loop makes them, to the combiners that combine it."""

    def __init__(self, combiners: Sequence[CombiningPredictor]) -> None:
        self.combiners = combiners

    def handle(self, event: CandleEvent) -> None:
        if event.prediction is not None:
            for combiner in self.combiners:
                combiner.receive(event.name, event.prediction)

    def close(self) -> None:
        pass
