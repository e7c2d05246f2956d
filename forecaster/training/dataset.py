"""History -> the supervised problem: feature rows X(t) and targets y(t+1).

Features come from the run's feature set (`FeatureSet.batch`), whose live form gives the same rows,
so there is one path from candle to probability whether training, evaluating or predicting live.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from jaxtyping import Float, Int

from forecaster.candles import CandleArray, timeframe_ms
from forecaster.facts import BPS
from forecaster.features.base import FeatureSet


@dataclass(frozen=True)
class Dataset:
    """Rows of a supervised problem, one per candle t that has a full window and a next candle.

    X: float64 feature rows ending at candle t; y: float32 targets [up, down] for t+1;
    candle_ts: int64 start of candle t; next_ret: float64 log return close(t+1)/close(t);
    label: str, the file or venue the row comes from (results can be split by it);
    names: the feature names of X's columns.
    """

    X: Float[np.ndarray, "n features"]
    y: Float[np.ndarray, "n 2"]
    candle_ts: Int[np.ndarray, " n"]
    next_ret: Float[np.ndarray, " n"]
    label: np.ndarray
    names: tuple[str, ...] = ()

    def __len__(self) -> int:
        return len(self.candle_ts)

    def __getitem__(self, index: slice | np.ndarray) -> Dataset:
        return Dataset(
            self.X[index],
            self.y[index],
            self.candle_ts[index],
            self.next_ret[index],
            self.label[index],
            self.names,
        )


def targets(next_ret: np.ndarray, threshold_bps: float) -> np.ndarray:
    """[up, down] float32 per next log return: beyond +-threshold_bps (as a log return), else both 0."""
    thr = threshold_bps / BPS
    return np.stack([next_ret > thr, next_ret < -thr], axis=-1).astype(np.float32)


def make_dataset(
    candles: CandleArray, features: FeatureSet, threshold_bps: float, label: str = ""
) -> Dataset:
    """Feature rows X(t) and targets y(t+1) from an ascending candle history.

    With r = log(close(t+1) / close(t)) and thr = threshold_bps / 1e4 taken as a log-return
    (1 bp ~ 1e-4 in log terms, the same to within 0.005% of itself at these sizes):
    y_up = [r > +thr], y_down = [r < -thr]; a move inside [-thr, +thr] (with thr = 0: no move) has
    both targets 0, the FLAT fact.

    A row exists only where the `features.window` candles ending at t and the candle t+1 are
    consecutive, each exactly one interval after the previous: a gap in the history would put a
    multi-interval return into a feature or the target, which live prediction never sees (live
    backfills gaps), so rows touching one are dropped. X(t) is `features.batch` row t, which reads
    candles <= t only.
    """
    step = timeframe_ms(candles.timeframe)
    n = len(candles)
    rows = features.batch(candles)
    log_close = np.log(candles.close)
    next_ret = np.full(n, np.nan)
    next_ret[:-1] = np.diff(log_close)
    # gap[i]: candle i+1 does not follow candle i; row t needs no gap in pairs t-window+1 .. t.
    gap = np.ones(n, dtype=bool)
    gap[:-1] = np.diff(candles.start_ms) != step
    gaps_before = np.concatenate([[0], np.cumsum(gap)])  # gaps_before[i] = gaps in pairs < i
    first = np.arange(n) - features.window + 1
    contiguous = (first >= 0) & (gaps_before[np.arange(n) + 1] - gaps_before[np.maximum(first, 0)] == 0)
    keep = contiguous & np.isfinite(rows).all(axis=1)
    ret = next_ret[keep]
    y = targets(ret, threshold_bps)
    ts = candles.start_ms[keep].astype(np.int64)
    return Dataset(rows[keep], y, ts, ret, np.full(len(ts), label), tuple(features.names))
