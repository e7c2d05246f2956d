"""Metrics and baselines on hand-computed cases."""

from __future__ import annotations

import math

import numpy as np
import pytest

from forecaster.baselines import Majority, Persistence
from forecaster.metrics import actual_directions, brier, log_loss, score


def test_score_by_hand() -> None:
    predicted = np.array(["UP", "DOWN", "FLAT", "UP", "DOWN"])
    actual = np.array(["UP", "UP", "DOWN", "FLAT", "DOWN"])
    p_up = np.array([0.8, 0.3, 0.5, 0.6, 0.1])
    p_down = np.array([0.1, 0.6, 0.5, 0.3, 0.9])
    y_up = np.array([1, 1, 0, 0, 0])
    y_down = np.array([0, 0, 1, 0, 1])
    out = score(predicted, actual, p_up, p_down, y_up, y_down)
    assert out["n"] == 5 and out["decided"] == 4 and out["flat_share"] == pytest.approx(0.2)
    assert out["decided_accuracy"] == 0.5  # UP ok, DOWN miss, UP vs zero move miss, DOWN ok
    assert out["accuracy"] == 0.4 and out["zero_moves"] == 1
    assert out["brier_up"] == pytest.approx((0.04 + 0.49 + 0.25 + 0.36 + 0.01) / 5)
    expected = -(math.log(0.9) + math.log(0.4) + math.log(0.5) + math.log(0.7) + math.log(0.9)) / 5
    assert out["log_loss_down"] == pytest.approx(expected)


def test_undefined_metrics_are_left_out_not_nan() -> None:
    assert score(*(np.array([]),) * 6) == {"n": 0.0}
    flat = np.array(["FLAT", "FLAT"])
    out = score(flat, np.array(["UP", "DOWN"]), np.full(2, 0.5), np.full(2, 0.5), np.ones(2), np.zeros(2))
    assert "decided_accuracy" not in out and out["flat_share"] == 1.0
    assert all(not math.isnan(v) for v in out.values())


def test_log_loss_is_finite_for_certain_misses() -> None:
    assert math.isfinite(log_loss(np.array([1.0, 0.0]), np.array([0, 1])))
    assert brier(np.array([1.0, 0.0]), np.array([0, 1])) == 1.0


def test_baselines() -> None:
    rows = np.array([[0.01, 5.0], [-0.02, 1.0], [0.0, 2.0]])
    persistence = Persistence().batch(rows)
    assert persistence.directions.tolist() == ["UP", "DOWN", "FLAT"]
    assert persistence.p_up.tolist() == [1.0, 0.0, 0.5] and persistence.p_down.tolist() == [0.0, 1.0, 0.5]
    assert Persistence()(rows[1]) == (0.0, 1.0, 0.0)
    majority = Majority.fit(np.array([1, 0, 0, 0]), np.array([0, 1, 1, 0]))
    assert majority.direction == "DOWN" and majority.batch(rows).directions.tolist() == ["DOWN"] * 3
    assert actual_directions(np.array([0.1, -0.1, 0.0])).tolist() == ["UP", "DOWN", "FLAT"]
