"""Paired tests and the economic size of calls, each against an independent computation."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from forecaster.config import compose_config
from forecaster.errors import ConfigError
from forecaster.evaluation.comparisons import economics, paired_test, pooled
from forecaster.evaluation.evaluate import evaluate
from forecaster.evaluation.report import summary_lines
from forecaster.evaluation.sections import EvaluationSet, JoinReport

UP, DOWN, FLAT = "UP", "DOWN", "FLAT"


def _random_calls(rng: np.random.Generator, n: int, flat_share: float) -> np.ndarray:
    calls = rng.choice([UP, DOWN], n)
    return np.where(rng.uniform(size=n) < flat_share, FLAT, calls)


def test_mcnemar_by_hand() -> None:
    first = np.array([UP, UP, DOWN, FLAT, UP, DOWN])
    other = np.array([UP, DOWN, DOWN, UP, DOWN, UP])
    actual = np.array([UP, UP, UP, UP, FLAT, DOWN])
    test = paired_test(first, other, actual)
    # both decide on rows 0, 1, 2, 4, 5 (row 4 is a zero move: a miss for both); right: first {0, 1, 5},
    # other {0}; only first right on rows 1 and 5, only other on none: p = P(Bin(2, 1/2) >= 2)
    assert (test.n, test.hits, test.other_hits, test.only_first, test.only_other) == (5, 3, 1, 2, 0)
    assert test.p_value == pytest.approx(0.25)


@pytest.mark.parametrize("seed", range(5))
def test_mcnemar_matches_scipy(seed: int) -> None:
    rng = np.random.default_rng(seed)
    actual = rng.choice([UP, DOWN, FLAT], 3000, p=[0.48, 0.48, 0.04])
    first, other = _random_calls(rng, 3000, 0.3), _random_calls(rng, 3000, 0.1)
    first = np.where(rng.uniform(size=3000) < 0.05, actual, first)  # a slightly better first
    test = paired_test(first, other, actual)
    both = (first != FLAT) & (other != FLAT)
    b = int(((first == actual) & (other != actual) & both).sum())
    c = int(((other == actual) & (first != actual) & both).sum())
    assert (test.only_first, test.only_other, test.n) == (b, c, int(both.sum()))
    assert test.p_value == pytest.approx(stats.binomtest(b, b + c, 0.5, alternative="greater").pvalue)


def test_pooled_equals_the_test_on_all_candles() -> None:
    rng = np.random.default_rng(7)
    actual = rng.choice([UP, DOWN], 900)
    first, other = _random_calls(rng, 900, 0.2), _random_calls(rng, 900, 0.2)
    parts = [paired_test(first[i : i + 300], other[i : i + 300], actual[i : i + 300]) for i in (0, 300, 600)]
    assert pooled(parts) == paired_test(first, other, actual)


def test_nothing_shared_is_undefined_not_zero() -> None:
    test = paired_test(np.array([FLAT, UP]), np.array([UP, FLAT]), np.array([UP, UP]))
    assert test.n == 0 and test.p_value is None and "p_value" in test.undefined


def test_economics_against_numpy() -> None:
    rng = np.random.default_rng(3)
    ret = rng.normal(0.5, 8.0, 5000)
    called = _random_calls(rng, 5000, 0.4)
    size = economics(called, ret, cost_bps=20.0)
    signed = np.where(called == UP, ret, -ret)[called != FLAT]
    half = stats.norm.ppf(0.975) * signed.std(ddof=1) / np.sqrt(len(signed))
    assert size.n == len(signed) and size.mean_bps == pytest.approx(signed.mean())
    assert (size.low_bps, size.high_bps) == pytest.approx((signed.mean() - half, signed.mean() + half))
    assert size.after_cost_bps == pytest.approx(signed.mean() - 20.0)
    assert economics(np.array([FLAT]), np.array([1.0]), 20.0).mean_bps is None


def test_too_few_decided_calls_print_no_percentage() -> None:
    predicted = np.array([UP] * 30 + [FLAT] * 70)
    actual = np.array([UP, DOWN] * 50)
    p = np.full(100, 0.5)
    y = (actual == UP).astype(float)
    result = evaluate(predicted, actual, p, p, y, 1 - y)
    bar = paired_test(predicted, actual, actual)
    results = EvaluationSet(JoinReport(), {"model": result}, {"model_vs_persistence": bar})
    lines = summary_lines(results, min_decided=100, cost_bps=20.0)
    assert "too few decided calls to judge" in lines[1] and "%" not in lines[1].split("(")[-1]
    assert lines[-1].startswith("verdict: too few decided calls to judge")


def test_a_search_may_not_optimise_a_test_key() -> None:
    with pytest.raises(
        ConfigError, match=r"optimized_metric=test\.model\.log_loss_up .* val\.model\.log_loss_up"
    ):
        compose_config(["optimized_metric=test.model.log_loss_up"])
    assert compose_config(["optimized_metric=val.model.brier_up"]).optimized_metric == "val.model.brier_up"
