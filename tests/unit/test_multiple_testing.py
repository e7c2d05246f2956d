"""The stationary bootstrap, Reality Check, SPA and Holm, each against a known answer: Politis and
Romano's closed-form bootstrap variance, the uniform p-values of a true null, hand computations."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from forecaster.evaluation.multiple_testing import (
    best_of_n,
    bootstrap_means,
    holm,
    reality_check_p,
    spa_p,
    stationary_bootstrap_counts,
)

REPLICATIONS = 300


def _sb_variance(x: np.ndarray, mean_block: float) -> float:
    """Politis & Romano (1994), Lemma 1: the stationary bootstrap's variance of sqrt(n) * mean, from the
    sample autocovariances C(i): C(0) + 2 sum_i [(1 - i/n) q^i + (i/n) q^(n-i)] C(i), q = 1 - 1/mean_block."""
    n, q = len(x), 1 - 1 / mean_block
    centred = x - x.mean()
    c = np.array([np.sum(centred[: n - i] * centred[i:]) / n for i in range(n)])
    i = np.arange(1, n)
    return float(c[0] + 2 * np.sum(((1 - i / n) * q**i + (i / n) * q ** (n - i)) * c[1:]))


def test_every_resample_has_n_candles_and_every_candle_is_equally_likely() -> None:
    counts = stationary_bootstrap_counts(np.random.default_rng(0), 500, 4000, 7.0)
    assert counts.shape == (4000, 500) and (counts.sum(axis=1) == 500).all() and (counts >= 0).all()
    assert np.abs(counts.mean(axis=0) - 1).max() < 0.15


@pytest.mark.parametrize("mean_block", [1.0, 4.0, 25.0])
def test_the_bootstrap_variance_matches_politis_and_romano(mean_block: float) -> None:
    """A slowly varying series: the longer the blocks, the more of its autocorrelation the resamples keep,
    exactly as the closed form says (the i.i.d. bootstrap, mean_block 1, keeps none)."""
    n = 400
    x = np.sin(np.arange(n) / 6.0) + np.random.default_rng(1).normal(0, 0.5, n)
    means = bootstrap_means(x[None, :], 20_000, mean_block, np.random.default_rng(2))[:, 0]
    assert n * means.var() == pytest.approx(_sb_variance(x, mean_block), rel=0.06)


def test_bootstrap_means_are_the_counts_times_the_differentials() -> None:
    d = np.random.default_rng(3).integers(-2, 3, (4, 300)).astype(np.float32)
    counts = stationary_bootstrap_counts(np.random.default_rng(4), 300, 50, 5.0)
    means = bootstrap_means(d, 50, 5.0, np.random.default_rng(4))
    np.testing.assert_allclose(means, counts.astype(np.float64) @ d.T.astype(np.float64) / 300, atol=1e-9)


def _random_guesses(rng: np.random.Generator, n_models: int, n: int) -> np.ndarray:
    """Score differentials vs persistence of models and a persistence that all guess: +1 right, -1 wrong,
    0 FLAT (a tenth of the calls), on coin-flip moves."""
    actual = rng.integers(0, 2, n)

    def score(calls: np.ndarray) -> np.ndarray:
        flat = rng.uniform(size=calls.shape) < 0.1
        return np.where(flat, 0, np.where(calls == actual, 1, -1))

    bar = score(rng.integers(0, 2, n))
    return (score(rng.integers(0, 2, (n_models, n))) - bar).astype(np.float32)


def test_p_values_of_random_guess_models_are_roughly_uniform() -> None:
    rng = np.random.default_rng(5)
    found = [best_of_n(_random_guesses(rng, 5, 400), 200, 3.0, rng) for _ in range(REPLICATIONS)]
    reality_check = np.array([f.reality_check_p for f in found])
    assert stats.kstest(reality_check, "uniform").pvalue > 0.05
    # SPA's p is 1 whenever no model is ahead in the sample (it is conservative there), so it is not
    # uniform; its size is right: a p below alpha about alpha of the time, never much more (the
    # tolerance is two standard errors of a share of REPLICATIONS draws)
    spa = np.array([f.spa_p for f in found])
    for alpha in (0.05, 0.1, 0.2):
        assert np.mean(reality_check <= alpha) == pytest.approx(alpha, abs=0.05)
        assert alpha - 0.05 <= np.mean(spa <= alpha) <= alpha + 0.05


def test_without_correction_the_best_of_n_looks_significant_more_often() -> None:
    """Why the correction exists: the best of 20 guessers' naive p (its own paired bootstrap) is below
    0.05 far more often than 5 %; the Reality Check's is not."""
    rng = np.random.default_rng(6)
    naive, corrected = [], []
    for _ in range(60):
        d = _random_guesses(rng, 20, 400)
        found = best_of_n(d, 200, 1.0, rng)
        best = d[found.best : found.best + 1]
        naive.append(best_of_n(best, 200, 1.0, rng).reality_check_p)
        corrected.append(found.reality_check_p)
    assert np.mean(np.array(naive) <= 0.05) > 0.3 and np.mean(np.array(corrected) <= 0.05) < 0.12


def test_a_truly_better_model_gets_a_small_p() -> None:
    rng = np.random.default_rng(7)
    d = _random_guesses(rng, 6, 3000)
    d[2] += rng.choice([0, 1], 3000, p=[0.85, 0.15]).astype(np.float32)  # a real edge for one model
    found = best_of_n(d, 500, 5.0, rng)
    assert found.best == 2 and found.reality_check_p < 0.01 and found.spa_p < 0.01


def test_reality_check_and_spa_by_hand() -> None:
    means = np.array([0.02, -5.0])
    resampled = np.array([[0.05, -5.0], [0.01, -4.9], [0.02, -5.4], [0.03, -4.6]])
    # recentred maxima: max(0.03, 0), max(-0.01, 0.1), max(0, -0.4), max(0.01, 0.4) -> 0.03, 0.1, 0, 0.4;
    # three of four reach 0.02, and the observed counts as one more draw: (1 + 3) / (1 + 4)
    assert reality_check_p(means, resampled) == pytest.approx(4 / 5)
    # SPA: t = 0.02 / sd of the first model's resamples; the second's mean lies far below its cutoff
    # (-sd * sqrt(2 log log 100) ~ -0.5), so it stays at its own mean, its resampled t-values are all
    # negative and only the first model counts
    n = 100
    sd = resampled.std(axis=0)
    observed = 0.02 / sd[0]
    first = (resampled[:, 0] - 0.02) / sd[0]
    reaching = np.count_nonzero(np.maximum(first, 0) >= observed)
    assert spa_p(means, resampled, n) == pytest.approx((1 + reaching) / (1 + len(first)))


def test_spa_ignores_a_model_identical_to_the_benchmark() -> None:
    means = np.array([0.0, 0.01])
    resampled = np.array([[0.0, 0.02], [0.0, 0.0], [0.0, 0.01]])
    assert spa_p(means, resampled, 100) == spa_p(means[1:], resampled[:, 1:], 100)


def test_holm_by_hand() -> None:
    # sorted 0.005, 0.01, 0.03, 0.04 (m = 4): x4 = 0.02, x3 = 0.03, x2 = 0.06, x1 = 0.04 -> kept monotone 0.06
    assert holm([0.01, 0.04, None, 0.03, 0.005]) == pytest.approx([0.03, 0.06, None, 0.06, 0.02])
    assert holm([0.5, 0.9]) == [1.0, 1.0] and holm([]) == []
