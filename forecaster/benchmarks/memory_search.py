"""Pattern memory's search (forecaster/models/neighbours.py exact, forecaster/models/faiss_store.py
approximate): one live query and the time to add a window against stored windows of several sizes
and dims, faiss's recall@k against exact, bytes per window, and a causal replay. Issue 16's goals
on 2 cores: p99 of one query against 1M windows of 64 dims < 50 ms; adding a window < 1 ms;
14,400 causal queries against 1M windows < 60 s. faiss runs only where it is installed."""

from __future__ import annotations

import gc
import importlib.util
import os
import time

import numpy as np

from forecaster.models.neighbours import Store, window_store

K = 32
BLOCK = 16_384  # the exact store's growth unit; faiss's exactly searched tail
SIZES = (10_000, 100_000, 1_000_000, 5_000_000)
QUICK_SIZES = (10_000,)
DIMS = (16, 64)
LIVE_CALLS = 50
QUICK_LIVE_CALLS = 10
ADDS = 200  # single windows added live, timed one by one
REPLAY_SIZE = 1_000_000  # windows stored before the replay
QUICK_REPLAY_SIZE = 20_000
REPLAY_QUERIES = 14_400  # ten days of 1m candles
QUICK_REPLAY_QUERIES = 1_440
REPLAY_BATCH = 1_440  # queries per search call in a replay (one day)
REPLAY_DIMS = 64
CLUSTERS = 256  # centres of the synthetic windows: real windows cluster; uniform noise is the worst case
PERCENTILES = (50, 99)
MS_PER_S = 1_000


def _windows(n: int, dims: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(CLUSTERS, dims)).astype(np.float32) * 2
    return centres[rng.integers(0, CLUSTERS, n)] + rng.normal(size=(n, dims)).astype(np.float32)


def _filled(index: str, keys: np.ndarray) -> tuple[Store, float]:
    store = window_store(index, keys.shape[1], BLOCK, "euclidean", None)
    started = time.perf_counter()
    store.add(keys, np.arange(1, len(keys) + 1, dtype=np.int32))
    return store, time.perf_counter() - started


def _percentiles(name: str, times: list[float]) -> dict[str, float]:
    return {f"{name}_p{p}": float(np.percentile(times, p)) for p in PERCENTILES}


def _live(store: Store, queries: np.ndarray) -> tuple[dict[str, float], np.ndarray]:
    limit = np.array([store.added], np.int32)
    store.nearest(queries[:1], limit, K)  # compile
    times, rows = [], []
    for query in queries:
        started = time.perf_counter()
        rows.append(store.nearest(query[None, :], limit, K).row[0])
        times.append((time.perf_counter() - started) * MS_PER_S)
    return _percentiles("query_ms", times), np.array(rows)


def _adds(store: Store, keys: np.ndarray) -> dict[str, float]:
    times = []
    for i, row in enumerate(keys):
        started = time.perf_counter()
        store.add(row[None, :], np.array([store.added + 1 + i], np.int32))
        times.append((time.perf_counter() - started) * MS_PER_S)
    return _percentiles("add_ms", times[1:])  # the first compiles


def _bytes(store: Store) -> dict[str, float]:
    """Bytes per window slot: the host ring, and the device arrays (exact) or faiss's index (IVF-flat:
    the vector and its id)."""
    ring = (store._host_keys, store._host_known, store._host_group)  # type: ignore[attr-defined]
    host = sum(a.nbytes for a in ring) / len(ring[1])
    if hasattr(store, "keys"):
        arrays = (store.keys, store.norms, store.known, store.group)  # type: ignore[attr-defined]
        return {
            "host_bytes_per_window": host,
            "index_bytes_per_window": sum(a.nbytes for a in arrays) / len(arrays[2]),
        }
    index = store._index  # type: ignore[attr-defined]
    return {
        "host_bytes_per_window": host,
        "index_bytes_per_window": 0.0 if index is None else index.d * 4 + 8,
    }


def _size(size: int, dims: int, calls: int, indexes: list[str]) -> dict[str, object]:
    keys = _windows(size, dims, 0)
    queries = _windows(calls, dims, 1)
    figures: dict[str, object] = {}
    exact_rows = None
    for index in indexes:
        store, seconds = _filled(index, keys)
        figures[index] = {"build_s": seconds, **_bytes(store)}
        numbers, rows = _live(store, queries)
        figures[index].update(numbers)  # type: ignore[union-attr]
        if exact_rows is None:
            exact_rows = rows
        else:
            hits = [len(np.intersect1d(a, b)) for a, b in zip(exact_rows, rows, strict=True)]
            figures[index]["recall_at_k"] = float(np.sum(hits) / exact_rows.size)  # type: ignore[index]
        figures[index].update(_adds(store, queries[: min(ADDS, calls)]))  # type: ignore[union-attr]
        del store
        gc.collect()
    return figures


def _replay(index: str, size: int, queries: int) -> dict[str, float]:
    """Queries of the newest candles, each limited to what was known before it, a day per call."""
    store, _ = _filled(index, _windows(size, REPLAY_DIMS, 0))
    windows = _windows(queries, REPLAY_DIMS, 2)
    limits = (size - queries + np.arange(queries)).astype(np.int32)
    store.nearest(windows[:REPLAY_BATCH], limits[:REPLAY_BATCH], K)  # compile
    started = time.perf_counter()
    for first in range(0, queries, REPLAY_BATCH):
        part = slice(first, first + REPLAY_BATCH)
        store.nearest(windows[part], limits[part], K)
    seconds = time.perf_counter() - started
    return {"size": size, "queries": queries, "seconds": seconds, "queries_per_s": queries / seconds}


def run(quick: bool) -> dict[str, object]:
    indexes = ["exact"] + (["faiss"] if importlib.util.find_spec("faiss") else [])
    out: dict[str, object] = {"k": K, "block": BLOCK, "indexes": indexes, "load_before": os.getloadavg()[0]}
    for dims in DIMS:
        for size in QUICK_SIZES if quick else SIZES:
            out[f"{size}x{dims}"] = _size(size, dims, QUICK_LIVE_CALLS if quick else LIVE_CALLS, indexes)
    for index in indexes:
        out[f"replay_{index}"] = _replay(
            index,
            QUICK_REPLAY_SIZE if quick else REPLAY_SIZE,
            QUICK_REPLAY_QUERIES if quick else REPLAY_QUERIES,
        )
    out["load_after"] = os.getloadavg()[0]
    return out
