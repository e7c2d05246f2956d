"""Exact k-nearest-neighbour search for pattern memory (issue 16): the first building block.

The stored windows are scanned in fixed-size blocks, each one distance matrix product, and a
running top-k is merged block by block, so memory stays O(queries x (k + block)) however many
windows are stored, and the same jitted code runs on CPU and GPU.

Causality is part of the search, not a filter after it: every stored window carries the index of
the first candle at which its outcome is known, every query the last candle whose knowledge it may
use (its own candle minus the embargo), and a stored window known later than that is never a
neighbour. Indices are candle numbers (int32), not epoch milliseconds: JAX runs without 64-bit ints.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

METRICS = ("euclidean", "cosine")
NEVER = np.iinfo(np.int32).max  # the `known` of a padding row: no query may use it
NORM_EPS = 1e-12  # keeps the cosine distance of an all-zero window finite


@dataclass(frozen=True)
class Neighbours:
    """Per query, the k nearest allowed windows, nearest first; row -1 (distance inf) where fewer
    than k windows were allowed."""

    distance: np.ndarray  # (queries, k) float32: squared euclidean, or 1 - cosine similarity
    row: np.ndarray  # (queries, k) int32: rows of the stored windows


def _distances(queries: jax.Array, keys: jax.Array, metric: str) -> jax.Array:
    if metric == "cosine":
        q = queries / (jnp.linalg.norm(queries, axis=1, keepdims=True) + NORM_EPS)
        k = keys / (jnp.linalg.norm(keys, axis=1, keepdims=True) + NORM_EPS)
        return 1.0 - q @ k.T
    squared = jnp.sum(queries**2, axis=1, keepdims=True) - 2.0 * queries @ keys.T + jnp.sum(keys**2, axis=1)
    return jnp.maximum(squared, 0.0)  # rounding can dip below 0 for a window equal to the query


@partial(jax.jit, static_argnames=("k", "block", "metric"))
def _search(
    queries: jax.Array,
    limits: jax.Array,
    keys: jax.Array,
    known: jax.Array,
    k: int,
    block: int,
    metric: str,
) -> tuple[jax.Array, jax.Array]:
    n_queries = queries.shape[0]

    def merge(i: jax.Array, best: tuple[jax.Array, jax.Array]) -> tuple[jax.Array, jax.Array]:
        rows = jax.lax.dynamic_slice_in_dim(keys, i * block, block)
        when = jax.lax.dynamic_slice_in_dim(known, i * block, block)
        distance = _distances(queries, rows, metric)
        distance = jnp.where(when[None, :] <= limits[:, None], distance, jnp.inf)
        index = jnp.broadcast_to(i * block + jnp.arange(block, dtype=jnp.int32), (n_queries, block))
        both_distance = jnp.concatenate([best[0], distance], axis=1)
        both_index = jnp.concatenate([best[1], index], axis=1)
        negated, order = jax.lax.top_k(-both_distance, k)
        return -negated, jnp.take_along_axis(both_index, order, axis=1)

    start = (jnp.full((n_queries, k), jnp.inf, jnp.float32), jnp.full((n_queries, k), -1, jnp.int32))
    distance, index = jax.lax.fori_loop(0, keys.shape[0] // block, merge, start)
    return distance, jnp.where(jnp.isfinite(distance), index, -1)


class WindowStore:
    """Stored windows and when each outcome is known, padded to a multiple of `block` with rows no
    query may use and kept on the device: a query moves only itself, and one compiled search
    serves every store size up to the next multiple."""

    def __init__(self, keys: np.ndarray, known: np.ndarray, block: int) -> None:
        pad = (-len(keys)) % block if len(keys) else block
        self.size = len(keys)
        self.block = block
        self.keys = jnp.asarray(
            np.concatenate([np.asarray(keys, np.float32), np.zeros((pad, keys.shape[1]), np.float32)])
        )
        self.known = jnp.asarray(np.concatenate([np.asarray(known, np.int32), np.full(pad, NEVER, np.int32)]))

    def nearest(
        self, queries: np.ndarray, limits: np.ndarray, k: int, metric: str = "euclidean"
    ) -> Neighbours:
        """The k stored windows nearest each query among those with known <= the query's limit."""
        if metric not in METRICS:
            raise ValueError(f"metric must be one of {METRICS}, got {metric!r}")
        distance, row = _search(
            jnp.asarray(queries, jnp.float32),
            jnp.asarray(limits, jnp.int32),
            self.keys,
            self.known,
            k,
            self.block,
            metric,
        )
        return Neighbours(np.asarray(distance), np.asarray(row))
