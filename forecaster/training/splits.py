"""Chronological splits of dataset rows: train | embargo | val | embargo | test, and walk-forward folds."""

from __future__ import annotations

from dataclasses import dataclass

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


def walk_forward(n: int, folds: int, val_fraction: float, test_fraction: float, embargo: int) -> list[Split]:
    """Expanding-window folds, oldest first: fold k trains on everything before its val block.

    Every fold's val and test blocks have the sizes `split` gives; the test blocks are consecutive,
    do not overlap, and the last ends at row n, so together they score the newest folds *
    int(n * test_fraction) rows, each by a model that saw only earlier data. folds=1 is `split`.
    """
    if folds < 1 or embargo < 0:
        raise ValueError(f"need folds >= 1 and embargo >= 0, got folds={folds}, embargo={embargo}")
    n_val, n_test = int(n * val_fraction), int(n * test_fraction)
    if n_val < 1 or n_test < 1:
        raise SplitError(
            f"{n} rows give an empty validation or test part; "
            "need more history or larger train.val_fraction/test_fraction"
        )
    splits = []
    for k in range(folds):
        test_end = n - (folds - 1 - k) * n_test
        test_start = test_end - n_test
        val_start = test_start - embargo - n_val
        train_end = val_start - embargo
        if train_end < 1:
            raise SplitError(
                f"{n} rows leave fold {k + 1} of {folds} no training rows; need more history, "
                "fewer train.folds, smaller val/test fractions or a smaller train.embargo_windows"
            )
        splits.append(
            Split(slice(0, train_end), slice(val_start, val_start + n_val), slice(test_start, test_end))
        )
    return splits
