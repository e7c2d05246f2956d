"""Exact nearest-neighbour search of pattern memory against a brute-force numpy reference."""

from __future__ import annotations

import jax
import numpy as np
import pytest

from forecaster.errors import ConfigError
from forecaster.models import neighbours
from forecaster.models.neighbours import ANY_GROUP, TOP_CHUNK, WindowStore, _top, window_store

K = 5


def _store(keys: np.ndarray, known: np.ndarray, block: int, metric: str = "euclidean", **kw) -> WindowStore:
    store = WindowStore(keys.shape[1], block, metric, **kw)
    store.add(keys, known)
    return store


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
    found = _store(keys, known, block, metric).nearest(queries, limits, K)
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
    found = _store(keys, known, 32).nearest(keys[[0, 1, 10, 150]], limits, K)
    for limit, rows in zip(limits, found.row, strict=True):
        used = rows[rows >= 0]
        assert np.all(known[used] <= limit) and len(used) == min(K, int(np.sum(known <= limit)))


def test_an_empty_memory_has_no_neighbours() -> None:
    found = WindowStore(4, 16).nearest(np.zeros((2, 4)), np.array([5, 9]), K)
    assert np.all(found.row == -1) and np.all(np.isinf(found.distance))


def test_windows_added_one_by_one_are_found_as_if_added_at_once() -> None:
    rng = np.random.default_rng(2)
    keys = rng.normal(size=(90, 6)).astype(np.float32)
    known = np.arange(90, dtype=np.int32)
    grown = WindowStore(6, 8)
    slots = [int(grown.add(row, np.array([when]))[0]) for row, when in zip(keys, known, strict=True)]
    assert slots == list(range(90)) and grown.slots == 128  # 1 block doubled to 16
    queries, limits = rng.normal(size=(10, 6)), np.full(10, 89, np.int32)
    once, found = _store(keys, known, 8).nearest(queries, limits, K), grown.nearest(queries, limits, K)
    assert np.array_equal(once.row, found.row)
    np.testing.assert_allclose(once.distance, found.distance, rtol=1e-6)


def test_past_capacity_the_oldest_windows_are_overwritten() -> None:
    rng = np.random.default_rng(3)
    keys = rng.normal(size=(50, 4)).astype(np.float32)
    store = WindowStore(4, 8, capacity=20)
    for first in range(0, 50, 10):  # bulk adds, wrapping the ring
        store.add(keys[first : first + 10], np.arange(first, first + 10))
    store.add(keys[:1] * 0, np.array([50]))  # and a single add
    slots, held, known, _ = store.stored()
    assert store.size == 20 and store.added == 51 and list(known) == list(range(31, 51))
    np.testing.assert_allclose(held[:-1], keys[31:50])
    found = store.nearest(keys[31:32], np.array([100]), 1)
    assert int(found.row[0, 0]) == slots[0]  # slot of window 31, the query itself


def test_a_query_sees_its_own_group_only() -> None:
    rng = np.random.default_rng(4)
    keys = rng.normal(size=(60, 5)).astype(np.float32)
    group = np.arange(60) % 3
    store = WindowStore(5, 16)
    store.add(keys, np.zeros(60), group)
    found = store.nearest(keys[:6], np.zeros(6), K, np.array([0, 1, 2, ANY_GROUP, 0, 1]))
    for wanted, rows in zip([0, 1, 2], found.row[:3], strict=True):
        assert np.all(group[rows] == wanted)
    assert int(found.row[3, 0]) == 3  # any group: the window itself is nearest


def test_a_search_in_many_spans_finds_what_one_span_finds(monkeypatch: pytest.MonkeyPatch) -> None:
    """Spans smaller than the store: the masked and unmasked loops, the last span reaching back."""
    rng = np.random.default_rng(5)
    keys = rng.normal(size=(1000, 8)).astype(np.float32)
    known = np.arange(1000, dtype=np.int32)
    queries, limits = rng.normal(size=(30, 8)), rng.integers(-5, 1100, size=30).astype(np.int32)
    store = _store(keys, known, 96)  # 1,536 slots: spans of 256 do not divide them
    whole = store.nearest(queries, limits, K)
    monkeypatch.setattr(neighbours, "SPAN_SCORES", 30 * 256)
    spans = store.nearest(queries, limits, K)
    assert np.array_equal(whole.row, spans.row)
    np.testing.assert_allclose(whole.distance, spans.distance, rtol=1e-5)


def test_the_factory_names_its_stores_and_refuses_others() -> None:
    assert isinstance(window_store("exact", 4, 16, "cosine", None), WindowStore)
    with pytest.raises(ConfigError, match=r"model\.index='annoy'"):
        window_store("annoy", 4, 16, "euclidean", None)


def test_the_two_level_top_k_ranks_as_top_k() -> None:
    rng = np.random.default_rng(7)
    score = rng.normal(size=(50, TOP_CHUNK * 40)).astype(np.float32)
    score[:10, 3::5] = -np.inf  # masked windows
    score[10:20, : TOP_CHUNK * 2] = 9.0  # the best ones all in two chunks
    value, index = _top(jax.numpy.asarray(score), K)
    expected_value, expected_index = jax.lax.top_k(score, K)
    assert np.array_equal(np.asarray(value), np.asarray(expected_value))
    unique = np.array([len(set(row)) == K for row in np.asarray(expected_value)])
    assert np.array_equal(np.asarray(index)[unique], np.asarray(expected_index)[unique])
