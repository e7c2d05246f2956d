"""The approximate store (forecaster/models/faiss_store.py) against the exact one: recall, exact
causality, eviction past capacity, and the factory's errors."""

from __future__ import annotations

import numpy as np
import pytest

from forecaster.errors import ConfigError
from forecaster.models.neighbours import WindowStore, window_store

pytest.importorskip("faiss")

K = 10
DIMS = 8


def _windows(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Clustered windows (real windows are far from uniform noise), known one candle each."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(20, DIMS)) * 3
    keys = centres[rng.integers(0, 20, n)] + rng.normal(size=(n, DIMS))
    return keys.astype(np.float32), np.arange(n, dtype=np.int32)


@pytest.mark.parametrize(("kind", "metric"), [("ivf", "euclidean"), ("hnsw", "cosine")])
def test_recall_against_exact_and_no_neighbour_after_its_limit(kind: str, metric: str) -> None:
    keys, known = _windows(3_000, 0)
    exact = WindowStore(DIMS, 512, metric)
    approximate = window_store("faiss", DIMS, 512, metric, None, {"kind": kind, "nlist": 32, "nprobe": 8})
    for first in range(0, len(keys), 750):  # bulk adds: indexed, then an exact tail
        exact.add(keys[first : first + 750], known[first : first + 750])
        approximate.add(keys[first : first + 750], known[first : first + 750])
    rng = np.random.default_rng(1)
    queries, limits = keys[rng.integers(0, 3_000, 100)] + 0.1, rng.integers(-3, 3_100, 100).astype(np.int32)
    truth, found = exact.nearest(queries, limits, K), approximate.nearest(queries, limits, K)
    for limit, rows in zip(limits, found.row, strict=True):
        used = rows[rows >= 0]
        assert np.all(known[used] <= limit) and len(used) == min(K, int(np.sum(known <= limit)))
    hits = [len(set(a[a >= 0]) & set(b[b >= 0])) for a, b in zip(truth.row, found.row, strict=True)]
    assert sum(hits) / max(1, int(np.sum(truth.row >= 0))) > 0.9
    assert np.all(np.diff(found.distance, axis=1)[np.isfinite(found.distance[:, 1:])] >= 0)


def test_past_capacity_evicted_windows_are_never_neighbours() -> None:
    keys, known = _windows(3_000, 2)
    store = window_store("faiss", DIMS, 256, "euclidean", 1_000, {"nlist": 8, "nprobe": 4})
    for first in range(0, 3_000, 100):  # indexed 256 at a time, rebuilt as evicted ones pile up
        store.add(keys[first : first + 100], known[first : first + 100])
    slots, _, when, _ = store.stored()
    assert store.size == 1_000 and list(when) == list(range(2_000, 3_000))
    found = store.nearest(keys[:50], np.full(50, 5_000, np.int32), K)
    assert np.all(found.row >= 0) and np.all(np.isin(found.row, slots))
    found = store.nearest(keys[2_500:2_501], np.array([5_000]), 1)
    assert int(found.row[0, 0]) == 2_500 % 1_000  # the window itself


def test_faiss_refuses_groups_unknown_keys_and_windows_out_of_order() -> None:
    store = window_store("faiss", DIMS, 16, "euclidean", None)
    store.add(np.zeros((2, DIMS)), np.array([1, 2]))
    with pytest.raises(ConfigError, match=r"model\.index=exact"):
        store.nearest(np.zeros((1, DIMS)), np.array([5]), 1, np.array([0]))
    with pytest.raises(ValueError, match="non-decreasing"):
        store.add(np.zeros((1, DIMS)), np.array([0]))
    with pytest.raises(ConfigError, match=r"model\.faiss"):
        window_store("faiss", DIMS, 16, "euclidean", None, {"nprobes": 4})
