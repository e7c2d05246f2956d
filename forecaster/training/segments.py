"""Datasets of several histories (files or venues): each file, and each gap inside one, is its own segment.

No feature window or target spans two segments: rows are made per file by `make_dataset`, which
drops every row whose window or next candle touches a gap. Files of different venues may cover the
same minutes; they stay apart, their rows labelled by file, and the rows of all files are merged in
time order (a minute present in two files gives two rows), so chronological splits by candle time
(training/splits.py) keep every training row before every validation and test row, whichever file
it comes from.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from forecaster.candles import timeframe_ms, utc_text
from forecaster.training.dataset import Dataset, make_dataset

if TYPE_CHECKING:
    from forecaster.features.base import FeatureSet
    from forecaster.sources.base import LabelledHistory

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Segment:
    """Consecutive candles of one history, `candles` of them from `first_ms`, giving `rows` rows."""

    label: str
    first_ms: int
    last_ms: int
    candles: int
    rows: int

    @property
    def lost(self) -> int:
        """Candles without a row: the warm-up of the first window, the last candle (no next one)."""
        return self.candles - self.rows


def segments(history: LabelledHistory, rows: Dataset) -> list[Segment]:
    """The gap-free runs of one history and how many of `rows` (made from it) each gives."""
    start_ms = history.candles.start_ms
    breaks = np.flatnonzero(np.diff(start_ms) != timeframe_ms(history.candles.timeframe)) + 1
    bounds = zip(np.r_[0, breaks], np.r_[breaks, len(start_ms)], strict=True)
    out = []
    for lo, hi in bounds:
        first, last = int(start_ms[lo]), int(start_ms[hi - 1])
        n_rows = int(np.count_nonzero((rows.candle_ts >= first) & (rows.candle_ts <= last)))
        out.append(Segment(history.label, first, last, int(hi - lo), n_rows))
    return out


def make_datasets(
    histories: Sequence[LabelledHistory], features: FeatureSet, threshold_bps: float
) -> Dataset:
    """Rows of every history, labelled by it, merged in time order (stable: files in the order given)."""
    parts = [make_dataset(h.candles, features, threshold_bps, h.label) for h in histories]
    found = [s for h, part in zip(histories, parts, strict=True) for s in segments(h, part)]
    for s in found:
        log.info(
            "segment %s %s .. %s UTC: %d candles -> %d rows (%d lost to warm-up and the segment's end)",
            s.label,
            utc_text(s.first_ms),
            utc_text(s.last_ms),
            s.candles,
            s.rows,
            s.lost,
        )
    candles, rows = sum(s.candles for s in found), sum(s.rows for s in found)
    log.info(
        "dataset: %d rows from %d candles in %d segment(s) of %d file(s); %d lost to gaps and warm-up",
        rows,
        candles,
        len(found),
        len(histories),
        candles - rows,
    )
    columns = (np.concatenate(cols) for cols in zip(*(_columns(p) for p in parts), strict=True))
    merged = Dataset(*columns, names=tuple(features.names))
    return merged[np.argsort(merged.candle_ts, kind="stable")]


def _columns(rows: Dataset) -> tuple[np.ndarray, ...]:
    return rows.X, rows.y, rows.candle_ts, rows.next_ret, rows.label
