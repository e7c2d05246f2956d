"""Settling predictions with facts, on a hand-made sequence."""

from __future__ import annotations

import pytest

from forecaster.direction import Direction
from forecaster.recording import FactRecord, PredictionRecord
from forecaster.scoring import Scoreboard, ScoreRule

STEP = 60_000


def _prediction(t: int, direction: str) -> PredictionRecord:
    return PredictionRecord(t * STEP, 0.6, 0.3, Direction(direction), (t + 1) * STEP, "m", "1m", 0.1, True)


def _fact(t: int, direction: str) -> FactRecord:
    move = Direction(direction)
    delta = {Direction.UP: 1.0, Direction.DOWN: -1.0, Direction.FLAT: 0.0}[move]
    return FactRecord((t - 1) * STEP, t * STEP, 100.0, 100.0 + delta, delta, delta * 100, move)


def test_predictions_are_settled_by_the_next_candles_fact() -> None:
    board = Scoreboard(rolling=3)
    assert board.metrics() == {"settled": 0.0, "decided": 0.0, "score": 0.0}
    board.add_prediction(_prediction(0, "UP"))
    assert board.add_fact(_fact(0, "DOWN")) is None, (
        "the fact of candle 0 does not judge the prediction made at 0"
    )
    outcome = board.add_fact(_fact(1, "UP"))
    assert outcome is not None and outcome.correct
    for t, said, happened in [(1, "DOWN", "UP"), (2, "FLAT", "UP"), (3, "UP", "FLAT"), (4, "DOWN", "DOWN")]:
        board.add_prediction(_prediction(t, said))
        board.add_fact(_fact(t + 1, happened))
    # settled: UP/UP ok, DOWN/UP miss, FLAT abstain, UP/zero-move miss, DOWN/DOWN ok
    assert board.settled == 5 and board.decided == 4 and board.correct == 2
    metrics = board.metrics()
    assert metrics["decided_accuracy"] == 0.5
    assert metrics["rolling_flat_share"] == pytest.approx(1 / 3)  # last three: FLAT, miss, ok
    assert metrics["rolling_decided_accuracy"] == 0.5
    assert metrics["score"] == 0.0  # +1 -1 0 -1 +1 with the default rule
    assert metrics["rolling_score"] == 0.0  # last three: 0 -1 +1


def test_predictions_whose_fact_cannot_come_are_dropped() -> None:
    board = Scoreboard(rolling=10)
    board.add_prediction(_prediction(0, "UP"))
    board.add_prediction(_prediction(5, "UP"))
    assert board.add_fact(_fact(6, "UP")).candle_ts == 5 * STEP
    assert board._open == {}


def test_score_follows_the_configured_reward_and_penalty() -> None:
    board = Scoreboard(rolling=2, rule=ScoreRule(reward=2.0, penalty=-3.0, flat=-0.5))
    sequence = [("UP", "UP"), ("UP", "DOWN"), ("FLAT", "UP"), ("DOWN", "DOWN"), ("DOWN", "FLAT")]
    running = []
    for t, (said, happened) in enumerate(sequence):
        board.add_prediction(_prediction(t, said))
        board.add_fact(_fact(t + 1, happened))
        running.append(board.score)
    # hit +2, miss -3, abstain -0.5, hit +2, decided against a zero move is a miss -3
    assert running == [2.0, -1.0, -1.5, 0.5, -2.5]
    metrics = board.metrics()
    assert metrics["score"] == -2.5 and metrics["rolling_score"] == -1.0  # last two: +2 -3
    assert metrics["rolling_decided_accuracy"] == 0.5 and metrics["decided_accuracy"] == 0.5
