"""Chronological splits of dataset rows: train | embargo | val | embargo | test, and walk-forward folds."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from forecaster.candles import utc_text
from forecaster.errors import UserError


class SplitError(UserError, ValueError):
    """A split part would be empty; the message says what to change."""


@dataclass(frozen=True)
class Split:
    """Contiguous, chronological row ranges of one dataset; embargoed rows between them are unused."""

    train: slice
    val: slice
    test: slice

    def sizes(self) -> tuple[int, int, int]:
        return tuple(part.stop - part.start for part in (self.train, self.val, self.test))  # type: ignore[return-value]


def split(n: int, val_fraction: float, test_fraction: float, embargo: int) -> Split:
    """train | embargo | val | embargo | test over n rows in time order.

    val and test hold int(n * fraction) rows each; the embargo (pass embargo_windows *
    features.window) keeps any candle of a later part's feature windows out of an earlier part's
    targets, so neighbouring rows cannot leak across a boundary.
    """
    return walk_forward(n, 1, val_fraction, test_fraction, embargo)[0]


@dataclass(frozen=True)
class Timeline:
    """Row times (candle starts in ms, ascending, a time repeated where files overlap) and the interval.

    With it, splits are cut by time: a boundary never separates rows of the same candle time, and an
    embargo of e rows also leaves e intervals of time between blocks, which rows alone would not when
    several files cover the same minutes.
    """

    times: np.ndarray
    step_ms: int

    def block(self, start_ms: int, end_ms: int | None) -> tuple[int, int]:
        """Rows of candles in [start_ms, end_ms) (None: to the end); an empty block is one line."""
        hi = len(self.times) if end_ms is None else int(np.searchsorted(self.times, end_ms))
        lo = int(np.searchsorted(self.times, start_ms))
        if hi <= lo:
            raise SplitError(
                f"no rows in the test block data.test_start..data.test_end ({utc_text(start_ms)} .. "
                f"{'the end' if end_ms is None else utc_text(end_ms)} UTC); the rows cover "
                f"{utc_text(int(self.times[0]))} .. {utc_text(int(self.times[-1]))} UTC"
            )
        return lo, hi

    def first_of_time(self, row: int) -> int:
        """The first row with the same candle time as `row`."""
        return int(np.searchsorted(self.times, self.times[row])) if row < len(self.times) else row

    def before(self, row: int, embargo: int) -> int:
        """End of the block before `row`: `embargo` rows and `embargo` intervals of time earlier."""
        if row >= len(self.times):
            return row - embargo
        by_time = int(np.searchsorted(self.times, self.times[row] - embargo * self.step_ms))
        return min(row - embargo, by_time)


def walk_forward(
    n: int,
    folds: int,
    val_fraction: float,
    test_fraction: float,
    embargo: int,
    timeline: Timeline | None = None,
    test_block: tuple[int, int] | None = None,
) -> list[Split]:
    """Expanding-window folds, oldest first: fold k trains on everything before its val block.

    Every fold's val and test blocks have the sizes `split` gives; the test blocks are consecutive,
    do not overlap, and the last ends at row n, so together they score the newest folds *
    int(n * test_fraction) rows, each by a model that saw only earlier data. folds=1 is `split`.
    `test_block` (rows [start, end), from data.test_start/test_end) is tiled by the folds' test
    blocks instead; rows after it are not used. `timeline`: cut by time too (see Timeline).
    """
    if folds < 1 or embargo < 0:
        raise ValueError(f"need folds >= 1 and embargo >= 0, got folds={folds}, embargo={embargo}")
    n_val, n_test = int(n * val_fraction), int(n * test_fraction)
    block_start, block_end = test_block if test_block else (n - folds * n_test, n)
    if test_block:
        n_test = (block_end - block_start) // folds
    if n_val < 1 or n_test < 1:
        raise SplitError(
            f"{n} rows give an empty validation or test part; "
            "need more history or larger train.val_fraction/test_fraction"
        )

    def first_of_time(row: int) -> int:
        return timeline.first_of_time(row) if timeline else row

    def before(row: int) -> int:
        return timeline.before(row, embargo) if timeline else row - embargo

    splits = []
    for k in range(folds):
        test_end = first_of_time(block_end - (folds - 1 - k) * n_test)
        test_start = first_of_time(block_end - (folds - k) * n_test)
        val_start = before(test_start) - n_val
        train_end = before(val_start)
        if train_end < 1:
            raise SplitError(
                f"{n} rows leave fold {k + 1} of {folds} no training rows; need more history, "
                "fewer train.folds, smaller val/test fractions or a smaller train.embargo_windows"
                + (", or a later data.test_start" if test_block else "")
            )
        splits.append(
            Split(slice(0, train_end), slice(val_start, val_start + n_val), slice(test_start, test_end))
        )
    return splits
