"""Pattern memory's exact search (forecaster/models/neighbours.py): one live query and a causal
replay against stored windows of several sizes. Issue 16's goals on 2 cores: p99 of one query
against 1M windows of 64 dims < 50 ms; 14,400 causal queries against 1M windows < 60 s."""

from __future__ import annotations

import time

import numpy as np

from forecaster.models.neighbours import WindowStore

DIMS = 64
K = 32
BLOCK = 16_384  # stored windows per distance product
SIZES = (10_000, 100_000, 1_000_000)
QUICK_SIZES = (10_000, 100_000)
LIVE_CALLS = 50
QUICK_LIVE_CALLS = 10
REPLAY_QUERIES = 14_400  # ten days of 1m candles
QUICK_REPLAY_QUERIES = 1_440
REPLAY_BATCH = 1_440  # queries per search call in a replay (one day)
PERCENTILES = (50, 99)
MS_PER_S = 1_000


def _live(store: WindowStore, calls: int) -> dict[str, float]:
    rng = np.random.default_rng(1)
    limit = np.array([store.size], np.int32)
    store.nearest(np.zeros((1, DIMS), np.float32), limit, K)  # compile
    times = []
    for _ in range(calls):
        query = rng.normal(size=(1, DIMS)).astype(np.float32)
        started = time.perf_counter()
        store.nearest(query, limit, K)
        times.append((time.perf_counter() - started) * MS_PER_S)
    return {f"query_ms_p{p}": float(np.percentile(times, p)) for p in PERCENTILES}


def _replay(store: WindowStore, queries: int) -> dict[str, float]:
    """Queries of the newest candles, each limited to what was known before it, a day per call."""
    rng = np.random.default_rng(2)
    windows = rng.normal(size=(queries, DIMS)).astype(np.float32)
    limits = (store.size - queries + np.arange(queries)).astype(np.int32)
    store.nearest(windows[:REPLAY_BATCH], limits[:REPLAY_BATCH], K)  # compile
    started = time.perf_counter()
    for first in range(0, queries, REPLAY_BATCH):
        part = slice(first, first + REPLAY_BATCH)
        store.nearest(windows[part], limits[part], K)
    seconds = time.perf_counter() - started
    return {"replay_queries": float(queries), "replay_s": seconds, "replay_queries_per_s": queries / seconds}


def run(quick: bool) -> dict[str, object]:
    rng = np.random.default_rng(0)
    out: dict[str, object] = {"dims": DIMS, "k": K, "block": BLOCK}
    for size in QUICK_SIZES if quick else SIZES:
        keys = rng.normal(size=(size, DIMS)).astype(np.float32)
        known = np.arange(1, size + 1, dtype=np.int32)
        store = WindowStore(DIMS, BLOCK)
        store.add(keys, known)
        figures = _live(store, QUICK_LIVE_CALLS if quick else LIVE_CALLS)
        figures.update(_replay(store, QUICK_REPLAY_QUERIES if quick else REPLAY_QUERIES))
        stored = sum(array.nbytes for array in (store.keys, store.norms, store.known, store.group))
        figures["bytes_per_window"] = stored / store.slots
        out[str(size)] = figures
    return out
