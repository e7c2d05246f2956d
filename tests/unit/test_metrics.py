"""Metrics and baselines on hand-computed cases."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from forecaster.baselines import Majority, reversal
from forecaster.config import FlatConfig
from forecaster.direction import actual_directions
from forecaster.evaluation import statistics
from forecaster.evaluation.coverage import ThresholdGrid, coverage_curve
from forecaster.evaluation.evaluate import (
    CALIBRATION_BINS,
    calibration_errors,
    evaluate,
    reliability_table,
    score,
    utc_hours,
)
from forecaster.evaluation.sections import Evaluation
from forecaster.evaluation.statistics import (
    LABELS,
    binomial_p_value,
    binomial_tail_logspace,
    brier,
    confusion_matrix,
    log_loss,
    running_accuracy,
    wilson_interval,
)
from forecaster.flat import directions
from forecaster.models.persistence import Persistence


def test_score_by_hand() -> None:
    predicted = np.array(["UP", "DOWN", "FLAT", "UP", "DOWN"])
    actual = np.array(["UP", "UP", "DOWN", "FLAT", "DOWN"])
    p_up = np.array([0.8, 0.3, 0.5, 0.6, 0.1])
    p_down = np.array([0.1, 0.6, 0.5, 0.3, 0.9])
    y_up = np.array([1, 1, 0, 0, 0])
    y_down = np.array([0, 0, 1, 0, 1])
    out = score(predicted, actual, p_up, p_down, y_up, y_down).to_json()
    assert out["n"] == 5 and out["decided"] == 4 and out["flat_share"] == pytest.approx(0.2)
    assert out["decided_accuracy"] == 0.5  # UP ok, DOWN miss, UP vs zero move miss, DOWN ok
    assert out["accuracy"] == 0.4 and out["zero_moves"] == 1
    assert out["brier_up"] == pytest.approx((0.04 + 0.49 + 0.25 + 0.36 + 0.01) / 5)
    expected = -(math.log(0.9) + math.log(0.4) + math.log(0.5) + math.log(0.7) + math.log(0.9)) / 5
    assert out["log_loss_down"] == pytest.approx(expected)


def test_undefined_metrics_are_left_out_not_nan() -> None:
    assert score(*(np.array([]),) * 6).to_json() == {"n": 0.0}
    flat = np.array(["FLAT", "FLAT"])
    out = score(
        flat, np.array(["UP", "DOWN"]), np.full(2, 0.5), np.full(2, 0.5), np.ones(2), np.zeros(2)
    ).to_json()
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
    mirror = reversal(persistence)
    assert mirror.directions.tolist() == ["DOWN", "UP", "FLAT"]
    assert mirror.p_up.tolist() == [0.0, 1.0, 0.5] and mirror.p_down.tolist() == [1.0, 0.0, 0.5]
    majority = Majority.fit(np.array([1, 0, 0, 0]), np.array([0, 1, 1, 0]))
    assert majority.direction == "DOWN" and majority.batch(rows).directions.tolist() == ["DOWN"] * 3
    assert actual_directions(np.array([0.1, -0.1, 0.0])).tolist() == ["UP", "DOWN", "FLAT"]


# --- evaluate() and its parts --------------------------------------------------------------------

HAND = {
    "predicted": np.array(["UP", "DOWN", "FLAT", "UP", "DOWN"]),
    "actual": np.array(["UP", "UP", "DOWN", "FLAT", "DOWN"]),
    "p_up": np.array([0.8, 0.3, 0.5, 0.6, 0.1]),
    "p_down": np.array([0.1, 0.6, 0.5, 0.3, 0.9]),
    "y_up": np.array([1, 1, 0, 0, 0]),
    "y_down": np.array([0, 0, 1, 0, 1]),
}


def _strict_json(result: Evaluation) -> dict:
    out = result.to_json()
    json.dumps(out, allow_nan=False)  # raises on NaN / inf
    return out


def _random_case(n: int, seed: int = 0) -> dict[str, np.ndarray]:
    """Probabilities on a 0.01 grid (so ties and values equal to thresholds occur) and ~10% zero moves."""
    rng = np.random.default_rng(seed)
    p_up = np.round(rng.uniform(0, 1, n), 2)
    p_down = np.round(np.clip(1 - p_up + rng.normal(0, 0.1, n), 0, 1), 2)
    ret = rng.normal(0, 1, n) * (rng.uniform(size=n) > 0.1)
    return {
        "predicted": directions(p_up, p_down, FlatConfig()),
        "actual": actual_directions(ret),
        "p_up": p_up,
        "p_down": p_down,
        "y_up": (ret > 0).astype(float),
        "y_down": (ret < 0).astype(float),
    }


def test_evaluate_by_hand() -> None:
    result = evaluate(**HAND, hours=np.array([0, 0, 1, 1, 23]))
    out = _strict_json(result)
    assert out["n"] == 5 and result.summary == score(*HAND.values())
    assert out["confusion"]["pred_UP"] == {"fact_UP": 1, "fact_DOWN": 0, "fact_FLAT": 1}
    assert out["confusion"]["pred_DOWN"] == {"fact_UP": 1, "fact_DOWN": 1, "fact_FLAT": 0}
    assert out["confusion"]["pred_FLAT"] == {"fact_UP": 0, "fact_DOWN": 1, "fact_FLAT": 0}
    overall = out["overall"]
    assert overall["hits"] == 2 and overall["accuracy"] == 0.4 and overall["flat_share"] == 0.2
    assert overall["facts"] == {"UP": 2, "DOWN": 2, "FLAT": 1} and overall["zero_moves"] == 1
    decided = out["decided"]
    assert decided["n"] == 4 and decided["hits"] == 2 and decided["accuracy"] == 0.5
    assert decided["zero_moves"] == 1  # the UP against a zero move: a miss
    # Decided rows' facts: UP, UP, FLAT, DOWN -> a constant UP hits 2 of 4.
    assert decided["majority_direction"] == "UP" and decided["majority_rate"] == 0.5
    assert decided["p_value_vs_chance"] == pytest.approx(11 / 16)  # P(X >= 2), X ~ B(4, 1/2)
    assert decided["p_value_vs_majority"] == pytest.approx(11 / 16)
    assert decided["wilson_low"] == pytest.approx(0.15003, abs=1e-5)
    assert decided["wilson_high"] == pytest.approx(0.84997, abs=1e-5)
    up = out["heads"]["up"]
    assert up["brier"] == out["summary"]["brier_up"] and up["log_loss"] == out["summary"]["log_loss_up"]
    assert up["base_rate"] == 0.4
    # p_up bins: 0.1 -> bin 1 (y 0), 0.3 -> 3 (y 1), 0.5 -> 5 (y 0), 0.6 -> 6 (y 0), 0.8 -> 8 (y 1)
    assert up["ece"] == pytest.approx((0.1 + 0.7 + 0.5 + 0.6 + 0.2) / 5)
    assert up["mce"] == pytest.approx(0.7)
    by_hour = {row["hour"]: row for row in out["by_hour"]}
    assert by_hour[0] == {"hour": 0, "n": 2, "decided": 2, "hits": 1, "accuracy": 0.5}
    assert by_hour[1] == {"hour": 1, "n": 2, "decided": 1, "hits": 0, "accuracy": 0.0}
    assert by_hour[23]["accuracy"] == 1.0 and by_hour[5] == {
        "hour": 5,
        "n": 0,
        "decided": 0,
        "hits": 0,
        "accuracy": None,
    }


def test_confusion_and_accuracy_match_a_plain_loop() -> None:
    case = _random_case(2000, seed=1)
    out = evaluate(**case).to_json()
    counts = {(p, a): 0 for p in LABELS for a in LABELS}
    hits = decided = 0
    for p, a in zip(case["predicted"].tolist(), case["actual"].tolist(), strict=True):
        counts[p, a] += 1
        decided += p != "FLAT"
        hits += p != "FLAT" and p == a
    assert all(out["confusion"][f"pred_{p}"][f"fact_{a}"] == c for (p, a), c in counts.items())
    assert confusion_matrix(case["predicted"], case["actual"]).tolist() == [
        [counts[p, a] for a in LABELS] for p in LABELS
    ]
    assert out["decided"]["hits"] == hits and out["decided"]["n"] == decided
    assert out["overall"]["accuracy"] == hits / 2000 and out["decided"]["accuracy"] == hits / decided


def test_empty_input_is_defined() -> None:
    empty = {k: v[:0] for k, v in HAND.items()}
    result = evaluate(**empty, hours=np.array([], np.int64))
    out = _strict_json(result)
    assert out["n"] == 0 and out["summary"] == {"n": 0.0}
    assert "accuracy" not in out["overall"] and out["overall"]["undefined"]["accuracy"]
    assert out["decided"]["n"] == 0 and set(out["decided"]["undefined"]) >= {"accuracy", "wilson_low"}
    assert "ece" not in out["heads"]["up"] and out["heads"]["up"]["undefined"]["ece"]
    assert all(row["count"] == 0 and row["observed"] is None for row in out["heads"]["down"]["reliability"])
    point = out["coverage"]["by_min_prob"][0]
    assert point["decided"] == 0 and point["coverage"] is None and point["accuracy"] is None
    assert all(row["accuracy"] is None for row in out["by_hour"])
    undefined = {
        f"{name}.{metric}"
        for name, section in [
            ("overall", result.overall),
            ("decided", result.decided),
            ("heads.up", result.heads.up),
            ("heads.down", result.heads.down),
        ]
        for metric in section.undefined
    }
    not_finite = {name for name, value in result.scalars().items() if not math.isfinite(value)}
    assert not_finite == undefined, "only the metrics named undefined are NaN, under their usual names"


def test_all_flat_leaves_decided_metrics_out() -> None:
    case = _random_case(50)
    case["predicted"] = np.full(50, "FLAT")
    out = _strict_json(evaluate(**case))
    assert out["overall"]["flat_share"] == 1.0 and out["overall"]["accuracy"] == 0.0
    assert out["decided"]["n"] == 0 and "p_value_vs_chance" in out["decided"]["undefined"]
    assert "accuracy" not in out["decided"]
    assert math.isfinite(out["heads"]["up"]["ece"])  # probabilities are still judged
    assert out["coverage"]["by_min_prob"][0]["decided"] > 0  # re-decided from the probabilities


def test_single_class_and_zero_move_facts() -> None:
    n = 6
    p_up, p_down = np.linspace(0.2, 0.9, n), np.linspace(0.7, 0.05, n)
    predicted = directions(p_up, p_down, FlatConfig(min_prob=0, min_margin=0))
    all_up = _strict_json(evaluate(predicted, np.full(n, "UP"), p_up, p_down, np.ones(n), np.zeros(n)))
    hits = int((predicted == "UP").sum())
    assert all_up["decided"]["majority_rate"] == 1.0 and all_up["decided"]["hits"] == hits
    # A yardstick that is always right: any hit count is unsurprising against it (P(X >= k | p0 = 1) = 1).
    assert all_up["decided"]["p_value_vs_majority"] == 1.0 and hits < n
    assert all_up["heads"]["down"]["base_rate"] == 0.0 and math.isfinite(all_up["heads"]["down"]["ece"])

    zero = _strict_json(evaluate(predicted, np.full(n, "FLAT"), p_up, p_down, np.zeros(n), np.zeros(n)))
    assert zero["decided"]["hits"] == 0 and zero["decided"]["accuracy"] == 0.0  # decided vs zero move: miss
    assert zero["decided"]["zero_moves"] == n and zero["overall"]["zero_moves"] == n
    assert zero["decided"]["majority_rate"] == 0.0 and zero["decided"]["p_value_vs_majority"] == 1.0
    assert zero["confusion"]["pred_FLAT"]["fact_FLAT"] == int((predicted == "FLAT").sum())


def test_wilson_interval_known_values() -> None:
    low, high = wilson_interval(8, 10)
    assert (round(low, 3), round(high, 3)) == (0.490, 0.943)
    assert wilson_interval(0, 10)[0] == 0.0 and wilson_interval(10, 10)[1] == 1.0
    with pytest.raises(ValueError):
        wilson_interval(0, 0)


def test_binomial_p_value_known_values_and_fallback() -> None:
    assert binomial_p_value(8, 10, 0.5) == pytest.approx(56 / 1024)  # (45 + 10 + 1) / 2**10
    assert binomial_tail_logspace(8, 10, 0.5) == pytest.approx(56 / 1024, rel=1e-12)
    assert binomial_p_value(0, 10, 0.5) == 1.0 and binomial_p_value(11, 10, 0.5) == 0.0
    assert binomial_tail_logspace(3, 10, 0.0) == 0.0 and binomial_tail_logspace(3, 10, 1.0) == 1.0
    scipy_stats = pytest.importorskip("scipy.stats")
    for hits, n, p0 in [(500_500, 1_000_000, 0.5), (501_500, 1_000_000, 0.5), (30, 100, 0.52), (1, 1, 0.3)]:
        expected = scipy_stats.binom.sf(hits - 1, n, p0)
        assert binomial_tail_logspace(hits, n, p0) == pytest.approx(expected, rel=1e-8, abs=1e-300)


def test_calibration_exact_cases() -> None:
    # 20 rows per bin at the bin centre, with exactly centre * 20 positives: perfectly calibrated.
    centres = (np.arange(CALIBRATION_BINS) + 0.5) / CALIBRATION_BINS
    p = np.repeat(centres, 20)
    y = np.concatenate([np.arange(20) < round(c * 20) for c in centres]).astype(float)
    table = reliability_table(p, y)
    assert calibration_errors(table)[0] == pytest.approx(0.0, abs=1e-12)
    # Miscalibrated by hand: bin 9 says 0.9 and sees 1/2; bin 1 says 0.1 and sees 0.
    table = reliability_table(np.array([0.9, 0.9, 0.1, 0.1]), np.array([0, 1, 0, 0]))
    assert calibration_errors(table) == pytest.approx((0.4 * 2 / 4 + 0.1 * 2 / 4, 0.4))
    assert table[9].count == 2 and table[9].observed == 0.5 and table[0].mean_predicted is None
    edges = reliability_table(np.array([0.0, 1.0, 0.1]), np.array([0, 1, 1]))
    assert edges[0].count == 1 and edges[-1].count == 1 and edges[1].count == 1


def test_calibration_of_a_calibrated_random_set_is_small() -> None:
    rng = np.random.default_rng(2)
    p = rng.uniform(0, 1, 200_000)
    y = (rng.uniform(size=p.size) < p).astype(float)
    assert calibration_errors(reliability_table(p, y))[0] < 0.01
    assert calibration_errors(reliability_table(p, 1 - y))[0] > 0.4


def test_coverage_curve_matches_brute_force() -> None:
    case = _random_case(3000, seed=3)
    grid = ThresholdGrid(min_probs=(0.0, 0.5, 0.55, 0.6, 0.7, 0.99), min_margins=(0.0, 0.02, 0.1, 0.3))
    rules = [FlatConfig("strict", 0.6, 0.1), FlatConfig("odd", 0.57, 0.13)]
    out = evaluate(**case, grid=grid, rules=rules).to_json()["coverage"]
    checked = 0
    for point in out["by_min_prob"] + out["by_min_margin"] + out["rules"]:
        rule = FlatConfig(min_prob=point["min_prob"], min_margin=point["min_margin"])
        predicted = directions(case["p_up"], case["p_down"], rule)
        decided = predicted != "FLAT"
        hits = int((decided & (predicted == case["actual"])).sum())
        assert point["decided"] == int(decided.sum()) and point["hits"] == hits
        assert point["coverage"] == decided.mean()
        assert point["accuracy"] == (hits / decided.sum() if decided.any() else None)
        checked += 1
    assert checked == len(grid.min_probs) + len(grid.min_margins) + len(rules)
    assert out["rules"][0]["name"] == "strict"
    direct = coverage_curve(case["p_up"], case["p_down"], case["actual"], [(0.6, 0.1)])
    assert direct[0].to_json() == {k: v for k, v in out["rules"][0].items() if k != "name"}


def test_utc_hours_and_running_accuracy() -> None:
    day = 86_400_000
    assert utc_hours(
        np.array([0, 3_600_000 - 1, 3_600_000, 23 * 3_600_000, day + 5 * 3_600_000])
    ).tolist() == [
        0,
        0,
        1,
        23,
        5,
    ]
    where, hits, decided = running_accuracy(HAND["predicted"], HAND["actual"])
    assert (
        where.tolist() == [0, 1, 3, 4] and hits.tolist() == [1, 1, 1, 2] and decided.tolist() == [1, 2, 3, 4]
    )
    with pytest.raises(ValueError, match=r"0\.\.23"):
        evaluate(**HAND, hours=np.array([0, 1, 2, 3, 24]))


def test_scalars_are_numbers_with_dotted_names() -> None:
    flat = evaluate(**HAND).scalars()
    assert flat["decided.accuracy"] == 0.5 and flat["confusion.pred_UP.fact_FLAT"] == 1.0
    assert flat["heads.down.brier"] == HAND_SCORE_BRIER_DOWN
    assert all(isinstance(v, float) and math.isfinite(v) for v in flat.values())
    assert not any("reliability" in k or "by_min_prob" in k for k in flat)


HAND_SCORE_BRIER_DOWN = score(*HAND.values()).brier_down


def test_invalid_input_is_an_error() -> None:
    with pytest.raises(ValueError, match="directions"):
        evaluate(**{**HAND, "predicted": np.array(["UP", "down", "FLAT", "UP", "DOWN"])})
    with pytest.raises(ValueError, match="probabilities"):
        evaluate(**{**HAND, "p_up": np.array([0.8, np.nan, 0.5, 0.6, 0.1])})
    with pytest.raises(ValueError, match="one value per prediction"):
        evaluate(**{**HAND, "y_up": np.array([1, 0])})


def test_binomial_p_value_without_scipy(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(statistics, "_scipy_binom_sf", lambda: None)
    assert binomial_p_value(8, 10, 0.5) == pytest.approx(56 / 1024, rel=1e-12)
    assert evaluate(**HAND).decided.p_value_vs_chance == pytest.approx(11 / 16, rel=1e-12)
