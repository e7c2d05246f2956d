"""The live loop without I/O: minutes in, typed events out; sinks decide what to write and show."""

from __future__ import annotations

from pathlib import Path

from forecaster.candles import read_csv
from forecaster.config import compose_config
from forecaster.data import SAMPLE_CSV
from forecaster.disk_space import DiskFloor
from forecaster.live.loop import PredictorLoop
from forecaster.live.sinks import RecordsSink
from forecaster.predictor import build_predictor
from forecaster.recording import RunRecords, read_jsonl

MINUTES = read_csv(SAMPLE_CSV)[:200].to_candles()


def _loop(*overrides: str, last_recorded: int | None = None) -> PredictorLoop:
    config = compose_config(["tracking=off", *overrides])
    return PredictorLoop("", build_predictor(config, None), config.live, last_recorded)


def test_events_carry_prediction_fact_and_score() -> None:
    loop = _loop("live.max_candles=100")
    events = [e for m in MINUTES if not loop.done and (e := loop.on_minute(m, 0)) is not None]
    window = loop.predictor.history_needed(None)
    assert len(events) == window - 1 + 100 and loop.done, "max_candles counts predictions, not warm-up"
    assert all(e.prediction is None and e.count == 0 for e in events[: window - 1])
    assert all(e.prediction is not None for e in events[window - 1 :])
    assert [e.count for e in events[window - 1 :]] == list(range(1, 101))
    assert events[0].fact is None and all(e.fact is not None for e in events[1:])
    settled = [e for e in events if e.outcome is not None]
    assert settled and settled[-1].settled == len(settled)
    assert "predictor_predictions" in events[-1].metrics


def test_candles_an_earlier_session_recorded_are_not_new() -> None:
    last = MINUTES[99].start_ms
    loop = _loop(last_recorded=last)
    events = [e for m in MINUTES if (e := loop.on_minute(m, 0)) is not None]
    assert [e.new for e in events] == [m.start_ms > last for m in MINUTES]
    assert loop.candles == 100, "only new (predicted) candles count towards live.max_candles"


def test_higher_timeframes_aggregate_the_minutes() -> None:
    loop = _loop("timeframe=5m")
    events = [e for m in MINUTES if (e := loop.on_minute(m, 0)) is not None]
    assert len(events) == 200 // 5 and all(e.candle.timeframe == "5m" for e in events)


def test_the_records_sink_writes_the_candle_last(tmp_path: Path) -> None:
    loop = _loop()
    with RunRecords(compose_config([]).sink, tmp_path) as records:
        sink = RecordsSink(records, DiskFloor(tmp_path, min_free_mb=0, every_s=0))
        for minute in MINUTES[:80]:
            event = loop.on_minute(minute, 0)
            if event is not None:
                sink.handle(event)
    candles = read_jsonl(tmp_path / "candles.jsonl", "ts_start").records
    facts = read_jsonl(tmp_path / "facts.jsonl", "candle_ts").records
    predictions = read_jsonl(tmp_path / "predictions.jsonl", "candle_ts").records
    assert len(candles) == 80 and len(facts) == 79
    assert len(predictions) == 80 - loop.predictor.history_needed(None) + 1
