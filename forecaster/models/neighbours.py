"""Exact k-nearest-neighbour search for pattern memory (issue 16): the first building block.

The stored windows are scanned in fixed-size blocks, each one distance matrix product and its own
top-k, then the top-k of those: memory stays O(queries x (block + k x blocks)) rather than one
distance per stored window and query, and the same jitted code runs on CPU and GPU.

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


def _unit(rows: np.ndarray) -> np.ndarray:
    return rows / (np.linalg.norm(rows, axis=1, keepdims=True) + NORM_EPS)


@partial(jax.jit, static_argnames=("k", "metric"))
def _search(
    queries: jax.Array,
    limits: jax.Array,
    keys: jax.Array,
    norms: jax.Array,
    known: jax.Array,
    k: int,
    metric: str,
) -> tuple[jax.Array, jax.Array]:
    """Each block's k nearest (one product against the stored rows as laid out: no transpose of
    the store), then the k nearest of those: a scan whose memory is one block's distances."""
    if metric == "cosine":
        queries = queries / (jnp.linalg.norm(queries, axis=1, keepdims=True) + NORM_EPS)
    squared = jnp.sum(queries**2, axis=1, keepdims=True)

    def block_nearest(_: None, part: tuple[jax.Array, ...]) -> tuple[None, tuple[jax.Array, jax.Array]]:
        rows, row_norms, when = part
        products = jax.lax.dot_general(queries, rows, (((1,), (1,)), ((), ())))
        if metric == "cosine":
            distance = 1.0 - products
        else:  # rounding can dip below 0 for a window equal to the query
            distance = jnp.maximum(squared - 2.0 * products + row_norms, 0.0)
        distance = jnp.where(when[None, :] <= limits[:, None], distance, jnp.inf)
        negated, order = jax.lax.top_k(-distance, k)
        return None, (-negated, order)

    _, (distance, order) = jax.lax.scan(block_nearest, None, (keys, norms, known))
    blocks, n_queries, _ = distance.shape
    first_rows = (jnp.arange(blocks, dtype=jnp.int32) * keys.shape[1])[:, None, None]
    rows = (order + first_rows).transpose(1, 0, 2).reshape(n_queries, blocks * k)
    negated, best = jax.lax.top_k(-distance.transpose(1, 0, 2).reshape(n_queries, blocks * k), k)
    return -negated, jnp.where(jnp.isfinite(negated), jnp.take_along_axis(rows, best, axis=1), -1)


class WindowStore:
    """Stored windows and when each outcome is known, kept on the device in blocks of `block` rows
    (the last padded with rows no query may use): a query moves only itself, and one compiled
    search serves every store size up to the next multiple. Cosine stores unit vectors; euclidean
    keeps each row's squared norm, so that neither is recomputed per query."""

    def __init__(self, keys: np.ndarray, known: np.ndarray, block: int, metric: str = "euclidean") -> None:
        if metric not in METRICS:
            raise ValueError(f"metric must be one of {METRICS}, got {metric!r}")
        rows = np.asarray(keys, np.float32)
        rows = _unit(rows) if metric == "cosine" else rows
        pad = (-len(rows)) % block if len(rows) else block
        padded = np.concatenate([rows, np.zeros((pad, rows.shape[1]), np.float32)])
        self.size, self.metric = len(rows), metric
        self.keys = jnp.asarray(padded.reshape(-1, block, rows.shape[1]))
        self.norms = jnp.asarray(np.sum(padded**2, axis=1).reshape(-1, block))
        when = np.concatenate([np.asarray(known, np.int32), np.full(pad, NEVER, np.int32)])
        self.known = jnp.asarray(when.reshape(-1, block))

    def nearest(self, queries: np.ndarray, limits: np.ndarray, k: int) -> Neighbours:
        """The k stored windows nearest each query among those with known <= the query's limit."""
        distance, row = _search(
            jnp.asarray(queries, jnp.float32),
            jnp.asarray(limits, jnp.int32),
            self.keys,
            self.norms,
            self.known,
            k,
            self.metric,
        )
        return Neighbours(np.asarray(distance), np.asarray(row))
