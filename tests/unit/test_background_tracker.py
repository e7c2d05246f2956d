"""The live session's tracker thread against a real MLflow store (SQLite in tmp_path).

A store failure is a real one: the tracker writes to a run id the store does not have, so MLflow
refuses every batch until the right id is back, as it refuses them while a server is down.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from forecaster.candles import DAY_MS, MINUTE_MS
from forecaster.live.background import BackgroundTracker
from forecaster.live.session_state import SessionState, Steps
from forecaster.sources.feed import next_or_stop
from forecaster.tracking import Buffering, MlflowTracker, default_uri

MISSING_RUN = "0" * 32
QUICK = Buffering(flush_s=0.05, buffer_points=50, shutdown_timeout_s=5.0, retry_max_s=0.1)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> str:
    """One store for the module (creating its tables takes seconds); each test has its own run."""
    home = tmp_path_factory.mktemp("mlruns")
    MlflowTracker(default_uri(str(home)), "tests", home / "artifacts", metrics_batch=1)
    return default_uri(str(home))


@pytest.fixture
def tracker(store: str) -> MlflowTracker:
    tracker = MlflowTracker(store, "tests", None, metrics_batch=1)
    tracker.start("live-test", {"model.name": "twohead"}, {})
    return tracker


def _wait_for(condition: object, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_every_point_arrives_and_close_finishes_the_run(tracker: MlflowTracker) -> None:
    run_id = tracker.run_id
    background = BackgroundTracker(tracker, QUICK, tracker.uri)
    for step in range(40):
        background.log_metrics({"latency_ms": float(step)}, step)
    assert background.close("FINISHED")
    history = tracker.client.get_metric_history(run_id, "latency_ms")
    assert sorted(m.step for m in history) == list(range(40))
    assert tracker.client.get_run(run_id).info.status == "FINISHED"


def test_an_outage_warns_once_keeps_the_newest_points_and_catches_up(
    tracker: MlflowTracker, caplog: pytest.LogCaptureFixture
) -> None:
    run_id = tracker.run_id
    assert run_id is not None
    tracker.run_id = MISSING_RUN
    background = BackgroundTracker(tracker, QUICK, tracker.uri)
    with caplog.at_level(logging.WARNING, "forecaster.live.background"):
        for step in range(120):
            background.log_metrics({"latency_ms": float(step)}, step)
            time.sleep(0.002)
        time.sleep(0.5)  # several failed retries
        tracker.run_id = run_id  # the store answers again
        _wait_for(lambda: background.sent == 50)
        assert background.close("FINISHED")
    failed = [r for r in caplog.records if "the session goes on" in r.getMessage()]
    back = [r for r in caplog.records if "caught up" in r.getMessage()]
    assert len(failed) == 1 and len(back) == 1, "one warning per outage, not one per try"
    assert background.dropped == 70
    steps = sorted(m.step for m in tracker.client.get_metric_history(run_id, "latency_ms"))
    assert steps == list(range(70, 120)), "the newest buffer_points points, none twice"


def test_close_is_bounded_while_the_store_fails(tracker: MlflowTracker) -> None:
    run_id = tracker.run_id
    tracker.run_id = MISSING_RUN
    background = BackgroundTracker(tracker, Buffering(0.05, 50, 0.5, 0.1), tracker.uri)
    background.log_metrics({"latency_ms": 1.0}, 0)
    started = time.monotonic()
    assert not background.close("KILLED")
    assert time.monotonic() - started < 3
    assert tracker.client.get_run(run_id).info.status == "RUNNING", "left for the next start to resume"


def test_a_restart_resumes_the_run_and_a_changed_session_does_not(tracker: MlflowTracker) -> None:
    run_id = tracker.run_id
    assert run_id is not None
    again = MlflowTracker(tracker.uri, "tests", None, metrics_batch=1)
    assert again.resume(run_id, {"model.name": "twohead", "live.max_candles": 5}, ("model.",)) is None
    run = again.client.get_run(run_id)
    assert again.run_id == run_id and run.data.tags["forecaster.sessions"] == "2"
    assert run.data.params["live.max_candles"] == "5", "new params are added"
    other = MlflowTracker(tracker.uri, "tests", None, metrics_batch=1)
    why = other.resume(run_id, {"model.name": "logreg"}, ("model.",))
    assert why is not None and "model.name: twohead -> logreg" in why and other.run_id is None
    run = other.client.get_run(run_id)
    assert run.info.status == "FAILED" and "not resumable" in run.data.tags["forecaster.end_reason"]
    assert other.resume(MISSING_RUN, {}, ()) is not None


def test_steps_count_intervals_from_the_first_day_and_survive_a_restart(tmp_path: Path) -> None:
    day = 20_000 * DAY_MS
    first = Steps(SessionState(), tmp_path)
    assert first.of(day + 90 * MINUTE_MS, MINUTE_MS) == 90
    assert first.of(day + 95 * MINUTE_MS, 5 * MINUTE_MS) == 19
    restarted = Steps(SessionState.load(tmp_path), tmp_path)
    assert restarted.of(day + 91 * MINUTE_MS, MINUTE_MS) == 91


def test_a_stopped_session_takes_no_queued_candle() -> None:
    """SIGTERM with a backlog: what is already queued is left to the restart's backfill."""

    async def backlog() -> AsyncIterator[int]:
        for minute in range(1000):
            yield minute

    async def drain() -> list[int]:
        stop, taken = asyncio.Event(), []
        candles = aiter(backlog())
        while (candle := await next_or_stop(candles, stop)) is not None:  # type: ignore[arg-type]
            taken.append(candle)
            if len(taken) == 3:
                stop.set()
        return taken

    assert asyncio.run(drain()) == [0, 1, 2]


def test_unchanged_values_are_held_back_until_close(tracker: MlflowTracker) -> None:
    run_id = tracker.run_id
    background = BackgroundTracker(tracker, QUICK, tracker.uri)
    for step in range(10):
        background.log_metrics({"gaps": float(step >= 5), "emitted": float(step)}, step)
    assert background.close("FINISHED")
    gaps = [(m.step, m.value) for m in tracker.client.get_metric_history(run_id, "gaps")]
    assert sorted(gaps) == [(0, 0.0), (5, 1.0), (9, 1.0)], "changes, and the last value at the end"
    assert len(tracker.client.get_metric_history(run_id, "emitted")) == 10
