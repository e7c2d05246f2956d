"""Block `memory`: what followed the past windows most like the current one (pattern memory as inputs).

A window is the last `n` one-candle log returns over their realised volatility (RMS of the last
`vol_window`), so it is scale-free and needs no training statistics. Its outcome, the return of the
next candle, is known one candle later. The row of candle t recalls the k windows nearest its own
among the memory: the last `capacity` windows whose outcome was known at least `embargo` candles
before t (known index <= t - embargo, so no neighbour overlaps the query's own recent candles).

The memory is bounded on purpose: a row depends on the block's `window` candles only, like every
block, so live warm-up fills exactly the memory training saw, a gap starts it again (no window
across a gap is stored or queried), and every row recalls from a memory of the same size. Rows are
NaN until the memory is full (the block's window), and a dataset drops them like a warming window.

Search: the exact k-NN store (forecaster/models/neighbours.py) with its causal limits, in float32;
the distances of the candidates it returns are recomputed in float64 and the k nearest taken by
(distance, newest first), so the batch and live paths give the same rows.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from forecaster.candles import Candle, CandleArray, timeframe_ms
from forecaster.errors import ConfigError
from forecaster.facts import BPS
from forecaster.schema import bounded, choice

# The store's metrics (forecaster/models/neighbours.py), named here so that checking a config needs no JAX.
METRICS = ("euclidean", "cosine")
# Queries per batched search on history. The store is also QUERY_BATCH windows longer than the memory
# and each search asks for k + QUERY_BATCH candidates: the windows a batch's earlier queries may
# still use are stale for its later ones, and at most QUERY_BATCH of them are dropped per query.
QUERY_BATCH = 64
N_FEATURES = 4


@dataclass(frozen=True)
class Memory:
    """mem_up: share of the k nearest windows whose next candle went up (unweighted); mem_ret_bps: their
    mean next log return in bps; mem_dist: their mean distance; mem_dist_k: the k-th distance.
    Distance: euclidean (sqrt of the squared distance) or cosine (1 - cosine similarity)."""

    n: int = bounded(16, ge=1)  # returns in a window
    vol_window: int = bounded(60, ge=1)  # returns in the RMS a window is divided by
    k: int = bounded(32, ge=1)  # neighbours recalled per row
    embargo: int = bounded(16, ge=0)  # candles between a neighbour's known outcome and the query
    capacity: int = bounded(1440, ge=1)  # windows in the memory (the newest usable ones)
    block: int = bounded(1024, ge=1)  # store rows per search block (speed only)
    metric: str = choice("euclidean", *METRICS)

    def __post_init__(self) -> None:
        if self.capacity < self.k:
            raise ConfigError(
                f"features: memory.capacity={self.capacity} holds fewer windows than memory.k={self.k};"
                " raise capacity or lower k"
            )
        if self.block < self.k + QUERY_BATCH:
            raise ConfigError(
                f"features: memory.block={self.block} must be >= memory.k + {QUERY_BATCH}"
                f" = {self.k + QUERY_BATCH} (the candidates per search)"
            )

    @property
    def span(self) -> int:
        """Returns one window is made of (its newest n, and the volatility over vol_window)."""
        return max(self.n, self.vol_window)

    @property
    def window(self) -> int:
        """The oldest window of a full memory: capacity + embargo candles back, and its own span."""
        return self.span + 1 + self.embargo + self.capacity

    @property
    def names(self) -> list[str]:
        return ["mem_up", "mem_ret_bps", "mem_dist", "mem_dist_k"]

    def columns(self, candles: CandleArray) -> list[np.ndarray]:
        """Each run of consecutive candles on its own (a gap starts the memory again, as live)."""
        out = np.full((N_FEATURES, len(candles)), np.nan)
        step = timeframe_ms(candles.timeframe)
        numbers = candles.start_ms // step
        cuts = np.flatnonzero(np.diff(numbers) != 1) + 1
        for lo, hi in zip([0, *cuts], [*cuts, len(candles)], strict=True):
            out[:, lo:hi] = self._run(candles.close[lo:hi], numbers[lo:hi])
        return list(out)

    def _run(self, close: np.ndarray, numbers: np.ndarray) -> np.ndarray:
        """The rows of one run of consecutive candles: each batch of queries after the windows it may use."""
        out = np.full((N_FEATURES, len(close)), np.nan)
        first = self.window - 1
        if len(close) <= first:
            return out
        returns = np.diff(np.log(close))  # returns[i]: candle i+1's; window j ends with returns[j - 1]
        keys = embed(
            sliding_window_view(returns, self.span), self.n, self.vol_window
        )  # keys[m]: window span+m
        recall = _Recall(self)
        added = 0
        for start in range(first, len(close), QUERY_BATCH):
            stop = min(start + QUERY_BATCH, len(close))
            # windows j whose outcome (known at j + 1) the batch's last candle may use
            usable = stop - 1 - self.embargo - self.span
            window = np.arange(added, usable) + self.span
            recall.add(keys[added:usable], numbers[window] + 1, returns[window])
            added = usable
            queries = keys[start - self.span : stop - self.span]
            padded = np.concatenate([queries, np.repeat(queries[-1:], QUERY_BATCH - len(queries), axis=0)])
            limits = np.concatenate(
                [numbers[start:stop], np.repeat(numbers[stop - 1], QUERY_BATCH - len(queries))]
            )
            out[:, start:stop] = recall.recall(padded, limits)[: len(queries)].T
        return out

    def live(self) -> _MemoryLive:
        return _MemoryLive(self)


def embed(returns: np.ndarray, n: int, vol_window: int) -> np.ndarray:
    """Rows of returns (oldest first) -> their newest n, newest first, over the RMS of the newest
    vol_window (float64); a window without any move is all zeros."""
    rows = np.ascontiguousarray(returns)
    rms = np.sqrt(np.mean(np.square(rows[:, -vol_window:]), axis=1, keepdims=True))
    newest = np.ascontiguousarray(rows[:, ::-1][:, :n])
    moved = rms > 0
    return np.where(moved, newest / np.where(moved, rms, 1.0), 0.0)


class _Recall:
    """The store, and per slot what it does not keep: the float64 key, the known index, the outcome."""

    def __init__(self, block: Memory) -> None:
        from forecaster.models.neighbours import WindowStore, unit_rows  # JAX: only when computing

        self._block = block
        self._unit = unit_rows
        slots = block.capacity + QUERY_BATCH
        self.store = WindowStore(block.n, block.block, block.metric, slots)
        self.keys = np.zeros((slots, block.n))
        self.known = np.zeros(slots, np.int64)
        self.outcome = np.zeros(slots)

    def add(self, keys: np.ndarray, known: np.ndarray, outcome: np.ndarray) -> None:
        """Windows, oldest first, with the candle number at which each outcome is known."""
        if len(keys):
            slots = self.store.add(keys, known)
            self.keys[slots], self.known[slots], self.outcome[slots] = keys, known, outcome

    def recall(self, queries: np.ndarray, numbers: np.ndarray) -> np.ndarray:
        """(queries, 4) rows: the features of each query's k nearest windows of a full memory."""
        block = self._block
        limits = np.asarray(numbers, np.int64) - block.embargo
        found = self.store.nearest(queries, limits, block.k + QUERY_BATCH)
        slots = np.maximum(found.row, 0)
        known = self.known[slots]
        allowed = (found.row >= 0) & (known > limits[:, None] - block.capacity)
        distance = np.where(allowed, self._distance(queries, self.keys[slots]), np.inf)
        order = np.lexsort((-known, distance), axis=-1)[:, : block.k]
        nearest = np.take_along_axis(distance, order, axis=1)
        outcome = np.take_along_axis(self.outcome[slots], order, axis=1)
        return np.stack(
            [
                np.mean(outcome > 0, axis=1),
                np.mean(outcome, axis=1) * BPS,
                np.mean(nearest, axis=1),
                nearest[:, -1],
            ],
            axis=1,
        )

    def _distance(self, queries: np.ndarray, keys: np.ndarray) -> np.ndarray:
        """(queries, candidates) float64 distances of each query to its candidates' keys."""
        if self._block.metric == "cosine":
            return 1.0 - np.sum(self._unit(keys) * self._unit(queries)[:, None, :], axis=-1)
        return np.sqrt(np.sum(np.square(keys - queries[:, None, :]), axis=-1))


class _MemoryLive:
    """Windows enter the store once usable (outcome known `embargo` candles ago), in the batch's order."""

    def __init__(self, block: Memory) -> None:
        self._block = block
        self._recall = _Recall(block)
        self._returns: deque[float] = deque(maxlen=block.span)
        self._pending: deque[tuple[np.ndarray, int, float]] = deque()  # outcome known, not yet usable
        self._key: np.ndarray | None = None  # the previous candle's window
        self._log_close = math.nan
        self._step: int | None = None
        self._count = 0

    def push(self, candle: Candle) -> list[float]:
        self._step = self._step or timeframe_ms(candle.timeframe)
        number = candle.start_ms // self._step
        log_close = math.log(candle.close)
        self._count += 1
        if not math.isnan(self._log_close):
            move = log_close - self._log_close
            if self._key is not None:
                self._pending.append((self._key, number, move))
            self._returns.append(move)
        self._log_close = log_close
        while self._pending and self._pending[0][1] <= number - self._block.embargo:
            key, known, outcome = self._pending.popleft()
            self._recall.add(key[None, :], np.array([known]), np.array([outcome]))
        self._key = self._embed() if len(self._returns) == self._block.span else None
        if self._key is None or self._count < self._block.window:
            return [math.nan] * N_FEATURES
        return self._recall.recall(self._key[None, :], np.array([number]))[0].tolist()

    def _embed(self) -> np.ndarray:
        return embed(np.array(self._returns)[None, :], self._block.n, self._block.vol_window)[0]
