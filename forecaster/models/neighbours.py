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

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any, Protocol

import jax
import jax.numpy as jnp
import numpy as np

from forecaster.errors import ConfigError

METRICS = ("euclidean", "cosine")
NEVER = np.iinfo(np.int32).max  # the `known` of an empty slot: no query may use it
ANY_GROUP = -1  # a query's group that allows every stored group
NORM_EPS = 1e-12  # keeps the cosine distance of an all-zero window finite
FIRST_BLOCKS = 2  # blocks allocated at first
TOP_CHUNK = 16  # scores per chunk in the two-level top-k (_top)
# Scores per span of the search (queries x slots scanned by one product, 128 MB of float32): a
# single query scans up to 32M windows in one product, a day of 1,440 replayed queries 16,384 per
# product. Smaller spans measured slower (per-step overhead outweighs cache reuse).
SPAN_SCORES = 1 << 25


@dataclass(frozen=True)
class Neighbours:
    """Per query, the k nearest allowed windows, nearest first; slot -1 (distance inf) where fewer
    than k windows were allowed."""

    distance: np.ndarray  # (queries, k) float32: squared euclidean, or 1 - cosine similarity
    row: np.ndarray  # (queries, k) int32: the store's slots of the neighbours


def unit_rows(rows: np.ndarray) -> np.ndarray:
    """Rows scaled to length 1: cosine distance is then 1 - a dot product."""
    return rows / (np.linalg.norm(rows, axis=-1, keepdims=True) + NORM_EPS)


def _top(score: jax.Array, k: int) -> tuple[jax.Array, jax.Array]:
    """jax.lax.top_k along the rows, in two levels: the k chunks of TOP_CHUNK scores with the best
    maxima hold every one of the k best scores, so only their k x TOP_CHUNK scores are ranked.
    Exact, and about twice as fast as one top_k over a wide row on CPU (55 against 106 ms for 1,440
    rows of 16,384 scores, measured)."""
    rows, n = score.shape
    if n % TOP_CHUNK or n // TOP_CHUNK < k:
        return jax.lax.top_k(score, k)
    chunked = score.reshape(rows, n // TOP_CHUNK, TOP_CHUNK)
    _, chunks = jax.lax.top_k(chunked.max(axis=2), k)
    candidates = jnp.take_along_axis(chunked, chunks[:, :, None], axis=1).reshape(rows, k * TOP_CHUNK)
    index = (chunks[:, :, None] * TOP_CHUNK + jnp.arange(TOP_CHUNK)[None, None, :]).reshape(rows, -1)
    value, pick = jax.lax.top_k(candidates, k)
    return value, jnp.take_along_axis(index, pick, axis=1)


@partial(jax.jit, static_argnames=("k", "metric", "span", "grouped"))
def _search(
    queries: jax.Array,
    limits: jax.Array,
    groups: jax.Array,
    keys: jax.Array,
    norms: jax.Array,
    known: jax.Array,
    group: jax.Array,
    free: jax.Array,
    used: jax.Array,
    k: int,
    metric: str,
    span: int,
    grouped: bool,
) -> tuple[jax.Array, jax.Array]:
    """Spans of `span` slots one by one, each one product against the rows as laid out (no transpose)
    and its k best merged into the running k best. The first `free` spans hold only windows every
    query may use, so they skip the per-element causality mask; the rest, up to `used`, apply it.
    A score is maximised: 2 q.x - |x|^2 (the squared distance less |q|^2) or the cosine similarity."""
    if metric == "cosine":
        queries = queries / (jnp.linalg.norm(queries, axis=1, keepdims=True) + NORM_EPS)
    slots = keys.shape[0]

    def merge(masked: bool, i: jax.Array, best: tuple[jax.Array, jax.Array]) -> tuple[jax.Array, jax.Array]:
        start = jnp.minimum(i * span, slots - span)  # the last span may reach back into the one before
        rows = jax.lax.dynamic_slice_in_dim(keys, start, span)
        score = jax.lax.dot_general(queries, rows, (((1,), (1,)), ((), ())))
        if metric == "euclidean":
            score = 2.0 * score - jax.lax.dynamic_slice_in_dim(norms, start, span)[None, :]
        if masked:
            when = jax.lax.dynamic_slice_in_dim(known, start, span)
            when = jnp.where(start + jnp.arange(span) < i * span, NEVER, when)  # scanned already
            allowed = when[None, :] <= limits[:, None]
            if grouped:
                where = jax.lax.dynamic_slice_in_dim(group, start, span)
                allowed &= (groups[:, None] == ANY_GROUP) | (where[None, :] == groups[:, None])
            score = jnp.where(allowed, score, -jnp.inf)
        value, order = _top(score, k)
        both = jnp.concatenate([best[0], value], axis=1)
        found = jnp.concatenate([best[1], order + start], axis=1)
        kept, pick = jax.lax.top_k(both, k)
        return kept, jnp.take_along_axis(found, pick, axis=1)

    start = (jnp.full((queries.shape[0], k), -jnp.inf), jnp.full((queries.shape[0], k), -1, jnp.int32))
    if span == slots:  # one product, outside any loop: XLA on CPU runs a matrix-vector product in a
        # loop body 13x slower (430 against 33 ms for one query against 1M windows of 64 dims, measured)
        score, found = merge(True, jnp.int32(0), start)
    else:
        best = jax.lax.fori_loop(0, free, partial(merge, False), start)
        score, found = jax.lax.fori_loop(free, used, partial(merge, True), best)
    if metric == "cosine":
        distance = 1.0 - score
    else:  # rounding can dip below 0 for a window equal to the query
        distance = jnp.maximum(jnp.sum(queries**2, axis=1, keepdims=True) - score, 0.0)
    return jnp.where(jnp.isfinite(score), distance, jnp.inf), jnp.where(jnp.isfinite(score), found, -1)


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
    return (
        jax.lax.dynamic_update_slice(keys, row[None, :], (slot, 0)),
        norms.at[slot].set(jnp.sum(row**2)),
        known.at[slot].set(when),
        group.at[slot].set(where),
    )


class WindowRing:
    """The host copy of stored windows (what a memory saves), when each outcome is known and their
    group, in a ring of slots: slots fill in order and past `capacity` windows the oldest slot is
    overwritten (oldest-first eviction), so a caller keeps whatever goes with a window (its outcome)
    in an array indexed by the same slot. Cosine keeps unit vectors. The stores below search it."""

    strict_order = False  # True: refuse windows known before an older one (else searched unordered)

    def __init__(self, dims: int, metric: str, capacity: int | None) -> None:
        if metric not in METRICS:
            raise ValueError(f"metric must be one of {METRICS}, got {metric!r}")
        self.dims, self.metric, self.capacity = dims, metric, capacity
        self.added = 0  # windows ever added, the overwritten ones included
        self._ordered = True  # `known` non-decreasing in insertion order so far (the searches rely on it)
        self._host_keys = np.zeros((0, dims), np.float32)
        self._host_known = np.zeros(0, np.int32)
        self._host_group = np.zeros(0, np.int32)

    @property
    def size(self) -> int:
        """Windows held now (at most `capacity`)."""
        return self.added if self.capacity is None else min(self.added, self.capacity)

    def stored(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(slots, keys, known, group) of the windows held, oldest first (as stored: unit rows for
        cosine)."""
        slots = self._slots_held()
        return slots, self._host_keys[slots], self._host_known[slots], self._host_group[slots]

    def _write(
        self, keys: np.ndarray, known: np.ndarray, group: np.ndarray | None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Windows (oldest first) into the host ring: (rows as stored, known, group, slots)."""
        rows = np.asarray(keys, np.float32).reshape(-1, self.dims)
        rows = unit_rows(rows) if self.metric == "cosine" else rows
        n = len(rows)
        when = np.asarray(known, np.int32).reshape(n)
        where = np.zeros(n, np.int32) if group is None else np.asarray(group, np.int32).reshape(n)
        newest = self._host_known[self._slots(1, self.added - 1)[0]] if self.added else np.iinfo(np.int32).min
        ordered = bool(np.all(np.diff(when) >= 0)) and (n == 0 or int(when[0]) >= int(newest))
        if not ordered and self.strict_order:
            raise ValueError("windows must be added with non-decreasing `known` (their outcome's candle)")
        self._ordered &= ordered
        slots = self._slots(n)
        self._reserve(int(slots.max()) + 1 if n else 0)
        self._host_keys[slots], self._host_known[slots], self._host_group[slots] = rows, when, where
        self.added += n
        return rows, when, where, slots

    def _reserve(self, needed: int) -> None:
        """At least `needed` host slots, doubled as the ring fills (up to capacity)."""
        if needed > len(self._host_known):
            grown = max(needed, 2 * len(self._host_known))
            self._grow_host(grown if self.capacity is None else min(grown, self.capacity))

    def _grow_host(self, n: int) -> None:
        """The host arrays lengthened to n slots (empty slots: never known)."""
        grow = n - len(self._host_known)
        if grow > 0:
            self._host_keys = np.concatenate([self._host_keys, np.zeros((grow, self.dims), np.float32)])
            self._host_known = np.concatenate([self._host_known, np.full(grow, NEVER, np.int32)])
            self._host_group = np.concatenate([self._host_group, np.zeros(grow, np.int32)])

    def _ends(self, limits: np.ndarray) -> np.ndarray:
        """Per limit, the insertion number one past the newest held window known by it: the windows
        a query may use are those from the oldest held up to there (known is non-decreasing in
        insertion order, so in the ring it is two sorted runs: from the oldest slot, then from 0)."""
        if self.capacity is None or self.added <= self.capacity:
            runs = [self._host_known[: self.size]]
        else:
            first = self.added % self.capacity
            runs = [self._host_known[first : self.capacity], self._host_known[:first]]
        ends = sum(np.searchsorted(run, limits, side="right") for run in runs)
        return self.added - self.size + np.asarray(ends, np.int64)

    def _slots(self, n: int, first: int | None = None) -> np.ndarray:
        """The slots of the n windows added from number `first` on (default: the next ones)."""
        start = self.added if first is None else first
        order = np.arange(start, start + n, dtype=np.int64)
        return (order if self.capacity is None else order % self.capacity).astype(np.int32)

    def _slots_held(self) -> np.ndarray:
        return self._slots(self.size, self.added - self.size)


class WindowStore(WindowRing):
    """Exact search of the ring's windows, kept on the device in slots of blocks of `block` rows.

    The device arrays mirror the host ring, grown by doubling the blocks as they fill. Euclidean
    keeps each row's squared norm, so that it is not recomputed per query. Empty slots are never a
    neighbour.
    """

    def __init__(self, dims: int, block: int, metric: str = "euclidean", capacity: int | None = None) -> None:
        super().__init__(dims, metric, capacity)
        self.block = block
        self._upload(FIRST_BLOCKS)

    @property
    def slots(self) -> int:
        """Slots allocated on the device (a multiple of `block`)."""
        return int(self.keys.shape[0])

    def add(self, keys: np.ndarray, known: np.ndarray, group: np.ndarray | None = None) -> np.ndarray:
        """Append windows (oldest first); returns the slot each went into."""
        rows, when, where, slots = self._write(keys, known, group)
        n = len(rows)
        if n == 1:
            self.keys, self.norms, self.known, self.group = _put(
                self.keys, self.norms, self.known, self.group, rows[0], when[0], where[0], slots[0]
            )
        elif n:
            self._upload(self.slots // self.block)
        return slots

    def nearest(
        self, queries: np.ndarray, limits: np.ndarray, k: int, groups: np.ndarray | None = None
    ) -> Neighbours:
        """The k stored windows nearest each query among those with known <= the query's limit (and,
        given `groups`, of the query's group; ANY_GROUP allows all)."""
        q = np.asarray(queries, np.float32).reshape(-1, self.dims)
        limit = np.asarray(limits, np.int32).reshape(len(q))
        wanted = np.full(len(q), ANY_GROUP, np.int32) if groups is None else np.asarray(groups, np.int32)
        grouped = bool(np.any(wanted != ANY_GROUP))
        if len(q) == 0:
            return Neighbours(np.zeros((0, k), np.float32), np.zeros((0, k), np.int32))
        span = self._span(len(q))
        free, used = self._scan(limit, grouped)
        distance, row = _search(
            jnp.asarray(q),
            jnp.asarray(limit),
            jnp.asarray(wanted),
            self.keys,
            self.norms,
            self.known,
            self.group,
            jnp.int32(free // span),
            jnp.int32(-(-used // span)),
            k,
            self.metric,
            span,
            grouped,
        )
        return Neighbours(np.asarray(distance), np.asarray(row))

    def _span(self, queries: int) -> int:
        """Slots per product: SPAN_SCORES / queries as a power of two, at most the slots allocated."""
        fit = max(SPAN_SCORES // queries, 1)
        return min(1 << (fit.bit_length() - 1), self.slots)

    def _scan(self, limit: np.ndarray, grouped: bool) -> tuple[int, int]:
        """(free, used): the leading slots every query may use unmasked, and those any query may use.

        While the ring has not wrapped, slot order is insertion order and `known` is non-decreasing
        in it, so both are prefixes found by bisection: a replay skips the windows newer than all
        of its queries' limits. Otherwise every held slot is scanned with the mask."""
        held = min(self.size, self.slots)
        if not self._ordered or self.added > held:
            return 0, held
        known = self._host_known[:held]
        used = int(np.searchsorted(known, limit.max(), side="right"))
        free = 0 if grouped else int(np.searchsorted(known, limit.min(), side="right"))
        return free, used

    def _reserve(self, needed: int) -> None:
        """At least `needed` slots, in a block count doubled as the store fills (up to capacity)."""
        blocks = self.slots // self.block
        if needed <= blocks * self.block:
            return
        while blocks * self.block < needed:
            blocks *= 2
        if self.capacity is not None:
            blocks = min(blocks, -(-self.capacity // self.block))
        self._upload(blocks)

    def _upload(self, blocks: int) -> None:
        """The device arrays rebuilt from the host copy (grown to `blocks` blocks if shorter)."""
        self._grow_host(blocks * self.block)
        self.keys = jnp.asarray(self._host_keys)
        self.norms = jnp.asarray(np.sum(self._host_keys**2, axis=1))
        self.known = jnp.asarray(self._host_known)
        self.group = jnp.asarray(self._host_group)


class Store(Protocol):
    """What pattern memory needs of a store, exact or approximate."""

    dims: int
    capacity: int | None
    added: int

    @property
    def size(self) -> int: ...

    def add(self, keys: np.ndarray, known: np.ndarray, group: np.ndarray | None = None) -> np.ndarray: ...

    def nearest(
        self, queries: np.ndarray, limits: np.ndarray, k: int, groups: np.ndarray | None = None
    ) -> Neighbours: ...

    def stored(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]: ...


def _faiss_store(dims: int, block: int, metric: str, capacity: int | None, **options: Any) -> Store:
    try:
        from forecaster.models.faiss_store import FaissStore
    except ImportError:
        raise ConfigError("model.index=faiss needs faiss: pip install .[faiss]") from None
    try:
        return FaissStore(dims, block, metric, capacity, **options)
    except TypeError as error:  # an unknown key of FaissOptions
        raise ConfigError(f"model.faiss: {error}") from None


def _exact_store(dims: int, block: int, metric: str, capacity: int | None, **options: Any) -> Store:
    return WindowStore(dims, block, metric, capacity)


STORES: dict[str, Callable[..., Store]] = {"exact": _exact_store, "faiss": _faiss_store}


def window_store(
    index: str,
    dims: int,
    block: int,
    metric: str,
    capacity: int | None,
    faiss: Mapping[str, Any] | None = None,
) -> Store:
    """The store `model.index` names: exact (JAX, any device) or faiss (approximate, CPU), the
    latter built with the `model.faiss` keys (forecaster.models.faiss_store.FaissOptions)."""
    if index not in STORES:
        raise ConfigError(f"model.index={index!r} is not one of {sorted(STORES)}")
    return STORES[index](dims, block, metric, capacity, **dict(faiss or {}))
