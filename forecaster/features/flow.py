"""Block `flow`: order flow and the book (the short-horizon signal candles lack, ../shared/RESEARCH.md).

Read from each candle's flow bar (forecaster/flow/bars.py), which only source=flow_store's candles
carry: a history without flow is refused in one line, never filled with zeros a model would learn from.
A row is NaN (dropped from datasets, like a warming window) while any bar of its window is incomplete
(a stream was down) or lacks a value (no book): a rolling statistic over a hole would be a guess.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from forecaster.candles import Candle, CandleArray
from forecaster.errors import UserError
from forecaster.features.rolling import (
    check_windows,
    ratio,
    ratio_of,
    rolling_mean,
    rolling_sum,
)
from forecaster.features.running import Window
from forecaster.flow.bars import BPS, COLUMN, DEPTH_BPS, FLOW_COLUMNS, FlowBar

# A minute as busy (or a spread as wide) as a window of zeros is as usual; a window without volume
# is balanced.
USUAL_ACTIVITY = 1.0
BALANCED = 0.0
# per candle: what the block reads of a bar (also what must be finite for the bar to count)
MEAN_BAND = DEPTH_BPS.index(10)  # the book band whose imbalance gets rolling means (book_imb_10_mean_w)
SERIES = ("signed", "volume", "count_imb", "spread_bps", "micro_bps", *(f"book_imb_{b}" for b in DEPTH_BPS))


@dataclass(frozen=True)
class Flow:
    """Per candle: flow_imb = (taker buy - sell) / (buy + sell) volume, flow_count_imb the same for trade
    counts, spread_bps, micro_bps = (microprice - mid) / mid, book_imb_b = (bid - ask) / (bid + ask) depth
    within b bps of the mid. Over each w: flow_imb_w (the window's signed volume over its volume),
    flow_volume_ratio_w (taker volume over its mean), book_imb_10_mean_w, spread_ratio_w (the spread over
    its mean: a z-score from window sums would be rounding, the spread being nearly constant)."""

    windows: list[int] = field(default_factory=lambda: [5, 15])

    def __post_init__(self) -> None:
        check_windows("flow", "windows", self.windows, 2)

    @property
    def window(self) -> int:
        return max(self.windows)

    @property
    def reads_flow(self) -> bool:
        return True

    @property
    def names(self) -> list[str]:
        now = ["flow_imb", "flow_count_imb", "spread_bps", "micro_bps", *(f"book_imb_{b}" for b in DEPTH_BPS)]
        rolling = ("flow_imb", "flow_volume_ratio", "book_imb_10_mean", "spread_ratio")
        return now + [f"{kind}_{w}" for kind in rolling for w in self.windows]

    def columns(self, candles: CandleArray) -> list[np.ndarray]:
        if candles.flow is None:
            raise no_flow()
        series, bad = _series(candles.flow)
        signed, volume, count_imb, spread, micro, *book = series
        imbalance = ratio(signed, volume, BALANCED)
        out = [imbalance, count_imb, spread, micro, *book]
        mean_volume = {w: rolling_mean(volume, w) for w in self.windows}
        out += [ratio(rolling_mean(signed, w), mean_volume[w], BALANCED) for w in self.windows]
        out += [ratio(volume, mean_volume[w], USUAL_ACTIVITY) for w in self.windows]
        out += [rolling_mean(book[MEAN_BAND], w) for w in self.windows]
        out += [ratio(spread, rolling_mean(spread, w), USUAL_ACTIVITY) for w in self.windows]
        holes = rolling_sum(bad, self.window) != 0  # NaN (the first rows) compares unequal: NaN below too
        return [np.where(holes, np.nan, values) for values in out]

    def live(self) -> _FlowLive:
        return _FlowLive(self)


def no_flow() -> UserError:
    return UserError(
        "features: the flow block needs candles with order-flow bars, and this source has none; "
        "use source=flow_store (days recorded by mode=record) or drop flow from features"
    )


def _series(flow: np.ndarray) -> tuple[list[np.ndarray], np.ndarray]:
    """SERIES per candle (0 where unusable) and 1.0 where a bar is incomplete or lacks a value the block
    reads (VWAP and size quantiles, NaN in a minute without trades or in aggregated bars, are not read)."""
    column = {name: flow[:, COLUMN[name]] for name in FLOW_COLUMNS}
    mid = (column["bid"] + column["ask"]) / 2
    series = [
        column["buy_volume"] - column["sell_volume"],
        column["buy_volume"] + column["sell_volume"],
        ratio(
            column["buy_count"] - column["sell_count"], column["buy_count"] + column["sell_count"], BALANCED
        ),
        column["spread_bps"],
        (column["microprice"] - mid) / mid * BPS,
        *(column[f"book_imb_{b}"] for b in DEPTH_BPS),
    ]
    usable = (column["complete"] > 0) & np.isfinite(np.stack(series)).all(axis=0)
    return [np.where(usable, s, 0.0) for s in series], (~usable).astype(np.float64)


def _bar_series(bar: FlowBar) -> list[float] | None:
    """One bar's SERIES as `_series` computes them, or None where the bar is unusable."""
    if not bar.complete:
        return None
    mid = (bar.bid + bar.ask) / 2
    counts = bar.buy_count + bar.sell_count
    values = [
        bar.buy_volume - bar.sell_volume,
        bar.buy_volume + bar.sell_volume,
        ratio_of(bar.buy_count - bar.sell_count, counts, BALANCED),
        bar.spread_bps,
        (bar.microprice - mid) / mid * BPS,
        bar.book_imb_5,
        bar.book_imb_10,
        bar.book_imb_25,
    ]
    return values if all(math.isfinite(v) for v in values) else None


class _FlowLive:
    def __init__(self, block: Flow) -> None:
        self._block = block
        self._holes = Window(block.window)
        self._signed = [Window(w) for w in block.windows]
        self._volume = [Window(w) for w in block.windows]
        self._book = [Window(w) for w in block.windows]
        self._spread = [Window(w) for w in block.windows]

    def push(self, candle: Candle) -> list[float]:
        if candle.flow is None:
            raise no_flow()
        values = _bar_series(candle.flow)
        self._holes.push(0.0 if values is not None else 1.0)
        signed, volume, count_imb, spread, micro, *book = values or [0.0] * len(SERIES)
        for windows, value in (
            (self._signed, signed),
            (self._volume, volume),
            (self._book, book[MEAN_BAND]),
            (self._spread, spread),
        ):
            for window in windows:
                window.push(value)
        n = len(self._block.names)
        if not self._holes.full or self._holes.mean != 0:
            return [math.nan] * n
        row = [ratio_of(signed, volume, BALANCED), count_imb, spread, micro, *book]
        row += [ratio_of(s.mean, v.mean, BALANCED) for s, v in zip(self._signed, self._volume, strict=True)]
        row += [ratio_of(volume, v.mean, USUAL_ACTIVITY) for v in self._volume]
        row += [b.mean for b in self._book]
        row += [ratio_of(spread, s.mean, USUAL_ACTIVITY) for s in self._spread]
        return row
