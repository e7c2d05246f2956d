"""Where live events go: the JSONL records, the console, the tracker. Each sink is one small class.

The records sink writes the candle last: a restart resumes after the last recorded candle, so a
crash between the writes makes the restart handle this candle again (the writers skip what is
already there) instead of losing its fact or prediction.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Protocol

from forecaster.disk_space import DiskFloor, writing
from forecaster.live.loop import CandleEvent
from forecaster.recording import RunRecords
from forecaster.tracking import RECORDS_ARTIFACT, Tracker


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
        with writing(self.records.candles):
            self.records.add_candle(event.candle)

    def close(self) -> None:
        self.records.close()


def console_line(event: CandleEvent) -> str:
    when = datetime.fromtimestamp(event.candle.start_ms / 1000, UTC).strftime("%Y-%m-%d %H:%M")
    prediction, outcome = event.prediction, event.outcome
    line = f"{event.name} " if event.name else ""
    line += f"{when} {event.candle.timeframe} close={event.candle.close:<10.2f}"
    if prediction is None:
        line += " warming up".ljust(40)
    else:
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
    """One line per new candle."""

    def handle(self, event: CandleEvent) -> None:
        if event.new:
            print(console_line(event), flush=True)

    def close(self) -> None:
        pass


class TrackerSink:
    """Per-candle metrics (prefixed `<name>/` for a named predictor), and the records every `upload_every`."""

    def __init__(self, tracker: Tracker, records: RunRecords, name: str, upload_every: int) -> None:
        self.tracker = tracker
        self.records = records
        self.prefix = f"{name}/" if name else ""
        self.folder = f"{RECORDS_ARTIFACT}/{name}" if name else RECORDS_ARTIFACT
        self.upload_every = upload_every

    def handle(self, event: CandleEvent) -> None:
        if not event.new:
            return
        metrics = {**event.metrics, "candle_ms": event.handled_ms}
        if event.prediction is not None:
            metrics["latency_ms"] = event.prediction.latency_ms
        self.tracker.log_metrics(
            {f"{self.prefix}{key}": value for key, value in metrics.items()}, event.count
        )
        if event.count % self.upload_every == 0:
            self.upload()

    def upload(self) -> None:
        for writer in self.records.writers():
            if writer.path.exists():
                self.tracker.log_artifact(writer.path, self.folder)

    def close(self) -> None:
        self.upload()
