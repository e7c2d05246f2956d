"""Significance after trying many configurations: the stationary bootstrap (Politis & Romano 1994),
White's Reality Check (Econometrica 2000), Hansen's SPA test (JBES 2005) and Holm's step-down
adjustment. Pure numpy: arrays in, p-values out.

The models' performance is a matrix `d` of per-candle differentials against the benchmark (N models
x T candles, larger is better). Resamples of the candles are drawn as blocks of geometric length, so
the short-range dependence of consecutive candles survives; each resample is represented by how
often it takes every candle, so the resampled means of all models are one matrix product, done in
chunks of draws in float32 (the counts and the differentials are small integers, exact in float32).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
from threadpoolctl import threadpool_limits

from forecaster.evaluation.sections import Section

CHUNK_CELLS = 4_000_000  # draws x candles per chunk of resample counts: about 32 MB of int64 at a time
# Blocks drawn per resample: their expected number to cover T candles plus BLOCK_SDS standard
# deviations and BLOCK_SLACK; the rare resample still short of T candles gets more.
BLOCK_SDS = 5.0
BLOCK_SLACK = 16


@dataclass(frozen=True)
class BestOfN(Section):
    """ "Does the best of N models beat the benchmark?", corrected for having tried N.

    `reality_check_p`: White's p, the least favourable null (every model exactly as good as the
    benchmark), so a few very poor models make it conservative. `spa_p`: Hansen's consistent SPA p,
    studentised per model and with clearly poor models left at their own mean; never above the
    Reality Check's by much, and more powerful when poor models are among the N.
    """

    n_models: int
    n_candles: int
    draws: int
    mean_block: float
    best: int  # index of the model with the largest mean differential
    best_mean: float
    reality_check_p: float
    spa_p: float


def stationary_bootstrap_counts(
    rng: np.random.Generator, n: int, draws: int, mean_block: float
) -> np.ndarray:
    """(draws, n) float32: how often each of n candles appears in each stationary-bootstrap resample.

    A resample is a chain of circular blocks of the series, each starting at a uniform candle and of
    geometric length with mean `mean_block` (1: the i.i.d. bootstrap), cut to n candles in all. The
    counts come from a difference array per resample (+1 where a block starts, -1 where it ends),
    summed along the candles.
    """
    if n < 1 or draws < 1 or mean_block < 1:
        raise ValueError(f"need n >= 1, draws >= 1 and mean_block >= 1, got {n}, {draws}, {mean_block}")
    p = 1.0 / mean_block
    k = int(n * p + BLOCK_SDS * math.sqrt(n * p * (1 - p))) + BLOCK_SLACK
    lengths = rng.geometric(p, (draws, k))
    while (short := lengths.sum(axis=1) < n).any():
        extra = rng.geometric(p, (draws, k))
        lengths = np.concatenate([lengths, np.where(short[:, None], extra, 0)], axis=1)
    ends = np.cumsum(lengths, axis=1)
    used = np.clip(np.minimum(lengths, n - (ends - lengths)), 0, None)  # the last block is cut at n
    starts = rng.integers(0, n, lengths.shape)
    stops = starts + used
    wraps = stops > n
    row = (np.arange(draws) * (n + 1))[:, None]
    live = used > 0
    plus = np.concatenate([(row + starts)[live], np.broadcast_to(row, starts.shape)[wraps]])
    minus = np.concatenate([(row + np.minimum(stops, n))[live], (row + stops - n)[wraps]])
    size = draws * (n + 1)
    diff = np.bincount(plus, minlength=size) - np.bincount(minus, minlength=size)
    return np.cumsum(diff.reshape(draws, n + 1), axis=1)[:, :n].astype(np.float32)


def _chunks(draws: int, n: int) -> Iterator[int]:
    per_chunk = max(1, CHUNK_CELLS // max(n, 1))
    for first in range(0, draws, per_chunk):
        yield min(per_chunk, draws - first)


def bootstrap_means(d: np.ndarray, draws: int, mean_block: float, rng: np.random.Generator) -> np.ndarray:
    """(draws, N): each model's mean differential in each stationary-bootstrap resample of the candles.

    All models share each resample (the same candles), as the Reality Check and SPA require.
    """
    d = np.atleast_2d(np.asarray(d, np.float32))
    n = d.shape[1]
    out = np.empty((draws, d.shape[0]), np.float64)
    first = 0
    # a few outputs from a long sum: one BLAS thread does it in a tenth of the time several take
    with threadpool_limits(limits=1, user_api="blas"):
        for size in _chunks(draws, n):
            counts = stationary_bootstrap_counts(rng, n, size, mean_block)
            out[first : first + size] = (counts @ d.T) / n
            first += size
    return out


def _share_reaching(resampled: np.ndarray, observed: float) -> float:
    """(1 + resamples at or above the observed) / (1 + resamples): the observed statistic counts as one
    of the draws, so a p-value is never 0, only below 1 / draws (Davison & Hinkley 1997, 4.2)."""
    return float((1 + np.count_nonzero(resampled >= observed)) / (1 + len(resampled)))


def reality_check_p(means: np.ndarray, resampled: np.ndarray) -> float:
    """White's Reality Check p-value of max_j mean_j > 0, from the models' means (N,) and their
    resampled means (draws, N): the share of resamples whose recentred maximum reaches the observed."""
    observed = float(np.max(means))
    recentred = np.max(resampled - means[None, :], axis=1)
    return _share_reaching(recentred, observed)


def spa_p(means: np.ndarray, resampled: np.ndarray, n_candles: int) -> float:
    """Hansen's consistent SPA p-value (SPA_c), with each model's standard deviation of sqrt(T) times
    its mean estimated from the same resamples. A model whose mean lies below
    -sd * sqrt(2 log log T / T) is taken as poor: its resampled means are not recentred to zero, so it
    cannot make the best look lucky. A model identical to the benchmark (sd 0) adds nothing."""
    root_t = math.sqrt(n_candles)
    omega = root_t * np.std(resampled, axis=0)
    scale = np.divide(root_t, omega, out=np.zeros_like(omega), where=omega > 0)
    observed = max(0.0, float(np.max(means * scale)))
    cutoff = -omega / root_t * math.sqrt(2 * math.log(max(math.log(n_candles), 1.0)))
    kept = np.where(means >= cutoff, means, 0.0)
    statistic = np.maximum(np.max((resampled - kept[None, :]) * scale[None, :], axis=1), 0.0)
    return _share_reaching(statistic, observed)


def best_of_n(d: np.ndarray, draws: int, mean_block: float, rng: np.random.Generator) -> BestOfN:
    """Reality Check and SPA for "the best of the N models (rows of `d`) beats the benchmark"."""
    d = np.atleast_2d(np.asarray(d, np.float32))
    n_models, n_candles = d.shape
    if n_models == 0 or n_candles == 0:
        raise ValueError("the Reality Check needs at least one model and one candle")
    means = d.mean(axis=1, dtype=np.float64)
    resampled = bootstrap_means(d, draws, mean_block, rng)
    best = int(np.argmax(means))
    return BestOfN(
        n_models=n_models,
        n_candles=n_candles,
        draws=draws,
        mean_block=mean_block,
        best=best,
        best_mean=float(means[best]),
        reality_check_p=reality_check_p(means, resampled),
        spa_p=spa_p(means, resampled, n_candles),
    )


def holm(p_values: Sequence[float | None]) -> list[float | None]:
    """Holm's step-down adjustment (family-wise error) of a family of p-values, in their order.

    The i-th smallest of m defined p-values becomes max over k <= i of min(1, (m - k + 1) p_(k));
    an undefined p-value (None) stays undefined and is not counted in m.
    """
    defined = [(p, i) for i, p in enumerate(p_values) if p is not None]
    adjusted: list[float | None] = [None] * len(p_values)
    running, m = 0.0, len(defined)
    for rank, (p, index) in enumerate(sorted(defined)):
        running = max(running, min(1.0, (m - rank) * p))
        adjusted[index] = running
    return adjusted
