"""Approximate nearest-neighbour search of pattern memory with faiss (the optional extra `faiss`:
`pip install .[faiss]`), behind the exact store's interface, for CPU memories beyond a few million
windows where an exact scan per query is too slow.

Causality stays exact: faiss ids are insertion numbers, `known` is non-decreasing in insertion
order, so the windows a query may use are a range of ids, passed to faiss as an IDSelectorRange
(one search per distinct limit). Windows not yet indexed (the newest, fewer than `block` of them)
are searched exactly and merged. Evicted windows stay in the index but outside every range until
they outnumber the held ones; the index is then rebuilt from the ring. Groups are refused.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import faiss  # pyright: ignore[reportMissingImports]
import numpy as np

from forecaster.errors import ConfigError
from forecaster.models.neighbours import ANY_GROUP, Neighbours, WindowRing, unit_rows

KINDS = ("ivf", "hnsw")
TRAIN_PER_LIST = 39  # faiss's minimum of training windows per IVF list; fewer are searched exactly


@dataclass(frozen=True)
class FaissOptions:
    """The index's keys (config `model.faiss.<key>`)."""

    kind: str = "ivf"  # ivf (IVF-flat: k-means lists, fast to build) or hnsw (graph, slow to build)
    nlist: int = 1024  # ivf: k-means lists; trained once nlist x 39 windows are held
    nprobe: int = 32  # ivf: lists scanned per query (recall against speed)
    m: int = 32  # hnsw: links per node
    ef_construction: int = 40  # hnsw: candidates kept while inserting
    ef_search: int = 128  # hnsw: candidates kept while searching (recall against speed; >= k)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ConfigError(f"model.faiss.kind={self.kind!r} is not one of {KINDS}")


class FaissStore(WindowRing):
    """The ring's windows in a faiss index (squared L2, or inner product of unit rows for cosine);
    the newest `block` windows at most are searched exactly until they are indexed together."""

    strict_order = True  # a window known before an older one would break the id ranges

    def __init__(
        self, dims: int, block: int, metric: str = "euclidean", capacity: int | None = None, **options: Any
    ) -> None:
        super().__init__(dims, metric, capacity)
        self.block, self.options = block, FaissOptions(**options)
        self._index: Any = None
        self._base = 0  # insertion number of the index's id 0
        self._indexed = 0  # insertion number one past the newest indexed window

    def add(self, keys: np.ndarray, known: np.ndarray, group: np.ndarray | None = None) -> np.ndarray:
        """Append windows (oldest first); returns the slot each went into."""
        slots = self._write(keys, known, group)[3]
        if self.added - max(self._indexed, self.added - self.size) >= self.block:
            self._index_tail()
        return slots

    def nearest(
        self, queries: np.ndarray, limits: np.ndarray, k: int, groups: np.ndarray | None = None
    ) -> Neighbours:
        """The k (approximately) nearest windows per query among those with known <= its limit."""
        if groups is not None and np.any(np.asarray(groups) != ANY_GROUP):
            raise ConfigError(
                "model.index=faiss cannot restrict neighbours to a group: use model.index=exact"
            )
        q = np.asarray(queries, np.float32).reshape(-1, self.dims)
        q = np.ascontiguousarray(unit_rows(q) if self.metric == "cosine" else q, np.float32)
        ends = self._ends(np.asarray(limits, np.int32).reshape(len(q)))
        distance, number = self._search_index(q, ends, k)
        tail_d, tail_n = self._search_exact(q, ends, k)
        distance, number = np.concatenate([distance, tail_d], 1), np.concatenate([number, tail_n], 1)
        order = np.argsort(distance, axis=1, kind="stable")[:, :k]
        distance, number = np.take_along_axis(distance, order, 1), np.take_along_axis(number, order, 1)
        slots = number if self.capacity is None else number % self.capacity
        return Neighbours(
            distance.astype(np.float32), np.where(np.isfinite(distance), slots, -1).astype(np.int32)
        )

    def _distance(self, raw: np.ndarray) -> np.ndarray:
        """faiss's score as the exact store's distance (1 - similarity for cosine)."""
        return 1.0 - raw if self.metric == "cosine" else raw

    def _search_index(self, q: np.ndarray, ends: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(distance, insertion number) of each query's k nearest indexed windows in its id range."""
        distance, number = np.full((len(q), k), np.inf, np.float32), np.full((len(q), k), -1, np.int64)
        if self._index is None:
            return distance, number
        low = max(self.added - self.size, self._base) - self._base
        highs = np.minimum(ends, self._indexed) - self._base
        for high in np.unique(highs):
            if high - low <= self.block:  # searched exactly
                continue
            members = highs == high
            selector = faiss.IDSelectorRange(int(low), int(high))
            raw, ids = self._index.search(q[members], k, params=self._parameters(selector))
            found = ids >= 0
            distance[members] = np.where(found, self._distance(raw), np.inf)
            number[members] = np.where(found, ids + self._base, -1)
        return distance, number

    def _search_exact(self, q: np.ndarray, ends: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(distance, insertion number) of each query's k nearest windows, exactly, among those not
        yet indexed and, for a query whose indexed range is at most `block` windows (where an index
        may find fewer than k), those too."""
        oldest = self.added - self.size
        tail = max(self._indexed, oldest)
        first = tail if self._index is not None and int(ends.min()) - oldest > self.block else oldest
        numbers = np.arange(first, self.added, dtype=np.int64)
        if len(numbers) == 0:
            return np.zeros((len(q), 0), np.float32), np.zeros((len(q), 0), np.int64)
        rows = self._host_keys[self._slots(len(numbers), first)]
        products = q @ rows.T
        if self.metric == "cosine":
            distance = 1.0 - products
        else:
            distance = np.maximum((q**2).sum(1)[:, None] - 2.0 * products + (rows**2).sum(1)[None, :], 0.0)
        small = (np.minimum(ends, self._indexed) - oldest <= self.block)[:, None]
        allowed = (numbers[None, :] < ends[:, None]) & ((numbers[None, :] >= tail) | small)
        distance = np.where(allowed, distance, np.inf)
        keep = min(k, len(numbers))
        pick = np.argpartition(distance, keep - 1, axis=1)[:, :keep]
        return np.take_along_axis(distance, pick, 1), numbers[pick]

    def _parameters(self, selector: Any) -> Any:
        # faiss's SWIG types are untyped to pyright
        faiss_: Any = faiss
        if self.options.kind == "hnsw":
            return faiss_.SearchParametersHNSW(sel=selector, efSearch=self.options.ef_search)
        return faiss_.SearchParametersIVF(sel=selector, nprobe=self.options.nprobe)

    def _index_tail(self) -> None:
        """The windows not yet indexed into the index; built (IVF: trained) afresh from the held
        windows when there is none yet or evicted windows outnumber the held ones."""
        oldest = self.added - self.size
        if self._index is not None and oldest - self._base > self.size:
            self._index, self._base, self._indexed = None, oldest, oldest
        if self._index is None:
            if self.options.kind == "ivf" and self.size < self.options.nlist * TRAIN_PER_LIST:
                return
            self._index, self._base, self._indexed = self._empty(), oldest, oldest
        rows = self._host_keys[self._slots(self.added - self._indexed, self._indexed)]
        if not self._index.is_trained:
            self._index.train(rows)
        self._index.add(rows)
        self._indexed = self.added

    def _empty(self) -> Any:
        metric = faiss.METRIC_INNER_PRODUCT if self.metric == "cosine" else faiss.METRIC_L2
        if self.options.kind == "hnsw":
            index = faiss.IndexHNSWFlat(self.dims, self.options.m, metric)
            index.hnsw.efConstruction = self.options.ef_construction
            return index
        quantizer = faiss.IndexFlat(self.dims, metric)
        index = faiss.IndexIVFFlat(quantizer, self.dims, self.options.nlist, metric)
        self._quantizer = quantizer  # faiss's Python wrapper does not keep it alive otherwise
        return index
