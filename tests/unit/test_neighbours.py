"""Exact nearest-neighbour search of pattern memory against a brute-force numpy reference."""

from __future__ import annotations

import numpy as np
import pytest

from forecaster.models.neighbours import WindowStore

K = 5


def _reference(
    queries: np.ndarray, limits: np.ndarray, keys: np.ndarray, known: np.ndarray, k: int, metric: str
) -> tuple[np.ndarray, np.ndarray]:
    if metric == "cosine":
        q = queries / np.linalg.norm(queries, axis=1, keepdims=True)
        s = keys / np.linalg.norm(keys, axis=1, keepdims=True)
        distance = 1.0 - q @ s.T
    else:
        distance = ((queries[:, None, :] - keys[None, :, :]) ** 2).sum(axis=2)
    distance = np.where(known[None, :] <= limits[:, None], distance, np.inf)
    order = np.argsort(distance, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(distance, order, axis=1), order


@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
@pytest.mark.parametrize("block", [7, 64, 1000])
def test_blocked_search_finds_what_brute_force_finds(metric: str, block: int) -> None:
    rng = np.random.default_rng(0)
    keys = rng.normal(size=(300, 16)).astype(np.float32)
    known = np.arange(300, dtype=np.int32) + 1  # window t's outcome is known one candle later
    queries = rng.normal(size=(40, 16)).astype(np.float32)
    limits = rng.integers(-5, 320, size=40).astype(np.int32)
    found = WindowStore(keys, known, block, metric).nearest(queries, limits, K)
    distance, index = _reference(queries, limits, keys, known, K, metric)
    allowed = np.isfinite(distance)
    assert np.array_equal(found.row[allowed], index[allowed])
    np.testing.assert_allclose(found.distance[allowed], distance[allowed], rtol=1e-4, atol=1e-4)
    assert np.all(found.row[~allowed] == -1) and np.all(np.isinf(found.distance[~allowed]))


def test_no_neighbour_is_known_after_the_query_limit() -> None:
    rng = np.random.default_rng(1)
    keys = rng.normal(size=(200, 8)).astype(np.float32)
    known = np.arange(200, dtype=np.int32) + 1
    limits = np.array([0, 1, 10, 150], np.int32)
    found = WindowStore(keys, known, 32).nearest(keys[[0, 1, 10, 150]], limits, K)
    for limit, rows in zip(limits, found.row, strict=True):
        used = rows[rows >= 0]
        assert np.all(known[used] <= limit) and len(used) == min(K, int(np.sum(known <= limit)))


def test_an_empty_memory_has_no_neighbours() -> None:
    found = WindowStore(np.zeros((0, 4)), np.zeros(0), 16).nearest(np.zeros((2, 4)), np.array([5, 9]), K)
    assert np.all(found.row == -1) and np.all(np.isinf(found.distance))
