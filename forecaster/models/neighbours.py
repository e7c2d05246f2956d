"""Exact k-nearest-neighbour search for pattern memory: a store that grows one window at a time.

The stored windows are scanned in fixed-size blocks, each one distance matrix product and its own
top-k, merged into a running top-k: memory stays O(queries x (block + k)) rather than one distance
per stored window and query, only the blocks in use are scanned, and the same jitted code runs on
CPU and GPU.

Causality is part of the search, not a filter after it: every stored window carries the index of
the first candle at which its outcome is known, every query the last candle whose knowledge it may
use (its own candle minus the embargo), and a stored window known later than that is never a
neighbour. Indices are candle numbers (int32), not epoch milliseconds: JAX runs without 64-bit ints.
An optional group per window (e.g. a volatility regime) restricts a query to its own group.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

METRICS = ("euclidean", "cosine")
NEVER = np.iinfo(np.int32).max  # the `known` of an empty slot: no query may use it
ANY_GROUP = -1  # a query's group that allows every stored group
NORM_EPS = 1e-12  # keeps the cosine distance of an all-zero window finite
# Blocks allocated at first: XLA on CPU compiles a one-block store's search 3-4x slower (7 against
# 2 ms for one query against 10k windows of 64 dims, measured).
FIRST_BLOCKS = 2


@dataclass(frozen=True)
class Neighbours:
    """Per query, the k nearest allowed windows, nearest first; slot -1 (distance inf) where fewer
    than k windows were allowed."""

    distance: np.ndarray  # (queries, k) float32: squared euclidean, or 1 - cosine similarity
    row: np.ndarray  # (queries, k) int32: the store's slots of the neighbours


def unit_rows(rows: np.ndarray) -> np.ndarray:
    """Rows scaled to length 1: cosine distance is then 1 - a dot product."""
    return rows / (np.linalg.norm(rows, axis=-1, keepdims=True) + NORM_EPS)


@partial(jax.jit, static_argnames=("k", "metric"))
def _search(
    queries: jax.Array,
    limits: jax.Array,
    groups: jax.Array,
    keys: jax.Array,
    norms: jax.Array,
    known: jax.Array,
    group: jax.Array,
    used: jax.Array,
    k: int,
    metric: str,
) -> tuple[jax.Array, jax.Array]:
    """The blocks in use one by one (a product against the rows as laid out: no transpose of the
    store), each block's k nearest merged into the running k nearest."""
    if metric == "cosine":
        queries = queries / (jnp.linalg.norm(queries, axis=1, keepdims=True) + NORM_EPS)
    squared = jnp.sum(queries**2, axis=1, keepdims=True)
    block = keys.shape[1]

    def merge(b: jax.Array, best: tuple[jax.Array, jax.Array]) -> tuple[jax.Array, jax.Array]:
        rows, row_norms, when, where = keys[b], norms[b], known[b], group[b]
        products = jax.lax.dot_general(queries, rows, (((1,), (1,)), ((), ())))
        if metric == "cosine":
            distance = 1.0 - products
        else:  # rounding can dip below 0 for a window equal to the query
            distance = jnp.maximum(squared - 2.0 * products + row_norms, 0.0)
        allowed = (when[None, :] <= limits[:, None]) & (
            (groups[:, None] == ANY_GROUP) | (where[None, :] == groups[:, None])
        )
        negated, order = jax.lax.top_k(jnp.where(allowed, -distance, -jnp.inf), k)
        both = jnp.concatenate([best[0], negated], axis=1)
        slots = jnp.concatenate([best[1], order + b * block], axis=1)
        kept, pick = jax.lax.top_k(both, k)
        return kept, jnp.take_along_axis(slots, pick, axis=1)

    start = (jnp.full((queries.shape[0], k), -jnp.inf), jnp.full((queries.shape[0], k), -1, jnp.int32))
    negated, slots = jax.lax.fori_loop(0, used, merge, start)
    return -negated, jnp.where(jnp.isfinite(negated), slots, -1)


@partial(jax.jit, donate_argnums=(0, 1, 2, 3))
def _put(
    keys: jax.Array,
    norms: jax.Array,
    known: jax.Array,
    group: jax.Array,
    row: jax.Array,
    when: jax.Array,
    where: jax.Array,
    slot: jax.Array,
) -> tuple[jax.Array, jax.Array, jax.Array, jax.Array]:
    """One window written into its slot in place (the old arrays are donated): O(dims), not O(store)."""
    b, i = slot // keys.shape[1], slot % keys.shape[1]
    return (
        jax.lax.dynamic_update_slice(keys, row[None, None, :], (b, i, 0)),
        norms.at[b, i].set(jnp.sum(row**2)),
        known.at[b, i].set(when),
        group.at[b, i].set(where),
    )


class WindowStore:
    """Stored windows, when each outcome is known and their group, in slots of blocks of `block` rows.

    Slots fill in order; past `capacity` windows the oldest slot is overwritten (oldest-first
    eviction), so a caller keeps whatever goes with a window (its outcome) in an array indexed by
    the same slot. The device arrays hold the blocks in use, doubled as they fill, and a host copy
    (what a memory saves) mirrors them. Cosine stores unit vectors; euclidean each row's squared
    norm, so that neither is recomputed per query. Empty slots are never a neighbour.
    """

    def __init__(self, dims: int, block: int, metric: str = "euclidean", capacity: int | None = None) -> None:
        if metric not in METRICS:
            raise ValueError(f"metric must be one of {METRICS}, got {metric!r}")
        self.dims, self.block, self.metric = dims, block, metric
        self.capacity = capacity
        self.added = 0  # windows ever added, the overwritten ones included
        self._host_keys = np.zeros((0, dims), np.float32)
        self._host_known = np.zeros(0, np.int32)
        self._host_group = np.zeros(0, np.int32)
        self._upload(FIRST_BLOCKS)

    @property
    def size(self) -> int:
        """Windows held now (at most `capacity`)."""
        return self.added if self.capacity is None else min(self.added, self.capacity)

    @property
    def slots(self) -> int:
        """Slots allocated on the device (a multiple of `block`)."""
        return int(self.keys.shape[0]) * self.block

    def add(self, keys: np.ndarray, known: np.ndarray, group: np.ndarray | None = None) -> np.ndarray:
        """Append windows (oldest first); returns the slot each went into."""
        rows = np.asarray(keys, np.float32).reshape(-1, self.dims)
        rows = unit_rows(rows) if self.metric == "cosine" else rows
        n = len(rows)
        when = np.asarray(known, np.int32).reshape(n)
        where = np.zeros(n, np.int32) if group is None else np.asarray(group, np.int32).reshape(n)
        slots = self._slots(n)
        self._reserve(int(slots.max()) + 1 if n else 0)
        self._host_keys[slots], self._host_known[slots], self._host_group[slots] = rows, when, where
        self.added += n
        if n == 1:
            self.keys, self.norms, self.known, self.group = _put(
                self.keys, self.norms, self.known, self.group, rows[0], when[0], where[0], slots[0]
            )
        elif n:
            self._upload(self.keys.shape[0])
        return slots

    def stored(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(slots, keys, known, group) of the windows held, oldest first (as stored: unit rows for
        cosine)."""
        slots = self._slots_held()
        return slots, self._host_keys[slots], self._host_known[slots], self._host_group[slots]

    def nearest(
        self, queries: np.ndarray, limits: np.ndarray, k: int, groups: np.ndarray | None = None
    ) -> Neighbours:
        """The k stored windows nearest each query among those with known <= the query's limit (and,
        given `groups`, of the query's group; ANY_GROUP allows all)."""
        q = np.asarray(queries, np.float32).reshape(-1, self.dims)
        wanted = np.full(len(q), ANY_GROUP, np.int32) if groups is None else np.asarray(groups, np.int32)
        used = -(-min(self.size, self.slots) // self.block)
        distance, row = _search(
            jnp.asarray(q),
            jnp.asarray(limits, jnp.int32),
            jnp.asarray(wanted),
            self.keys,
            self.norms,
            self.known,
            self.group,
            jnp.int32(used),
            k,
            self.metric,
        )
        return Neighbours(np.asarray(distance), np.asarray(row))

    def _slots(self, n: int, first: int | None = None) -> np.ndarray:
        """The slots of the n windows added from number `first` on (default: the next ones)."""
        start = self.added if first is None else first
        order = np.arange(start, start + n, dtype=np.int64)
        return (order if self.capacity is None else order % self.capacity).astype(np.int32)

    def _slots_held(self) -> np.ndarray:
        return self._slots(self.size, self.added - self.size)

    def _reserve(self, needed: int) -> None:
        """At least `needed` slots, in a block count doubled as the store fills (up to capacity)."""
        blocks = int(self.keys.shape[0])
        if needed <= blocks * self.block:
            return
        while blocks * self.block < needed:
            blocks *= 2
        if self.capacity is not None:
            blocks = min(blocks, -(-self.capacity // self.block))
        self._upload(blocks)

    def _upload(self, blocks: int) -> None:
        """The device arrays rebuilt from the host copy (grown to `blocks` blocks if shorter)."""
        n = blocks * self.block
        grow = n - len(self._host_known)
        if grow > 0:
            self._host_keys = np.concatenate([self._host_keys, np.zeros((grow, self.dims), np.float32)])
            self._host_known = np.concatenate([self._host_known, np.full(grow, NEVER, np.int32)])
            self._host_group = np.concatenate([self._host_group, np.zeros(grow, np.int32)])
        keys = self._host_keys
        self.keys = jnp.asarray(keys.reshape(blocks, self.block, self.dims))
        self.norms = jnp.asarray(np.sum(keys**2, axis=1).reshape(blocks, self.block))
        self.known = jnp.asarray(self._host_known.reshape(blocks, self.block))
        self.group = jnp.asarray(self._host_group.reshape(blocks, self.block))
