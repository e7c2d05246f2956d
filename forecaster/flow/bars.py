"""Flow bars: what a candle's trades and the order book at its close say, aligned on the candle's start.

A pure function of (candle start, the minute's trades, the book at the close, book updates, complete):
the live recorder and an offline recomputation from a trade list give the same bar exactly. `complete`
is the caller's word that the streams ran the whole minute; a bar missing part of its minute is kept
and marked, never passed off as complete (Bybit cannot backfill trades, ../shared/bybit/PROTOCOL.md 7).

A bar is also a row of floats (`FLOW_COLUMNS`, `complete` as 1.0/0.0): histories carry flow as a
(T, len(FLOW_COLUMNS)) array beside their candles (forecaster/candles.py), and 1m bars aggregate to
higher timeframes there like candles.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np

from forecaster.flow.types import BookView, Trade

BPS = 1e4
DEPTH_BPS = (5, 10, 25)  # book depth bands around the mid, in bps (the bar's shape, not a tunable)
QUANTILES = (0.25, 0.5, 0.75, 0.9)  # trade-size quantiles, numpy's linear interpolation
_BID_EDGES = 1 - np.array(DEPTH_BPS) / BPS  # times the mid: the bands' edges
_ASK_EDGES = 1 + np.array(DEPTH_BPS) / BPS


class FlowBar(NamedTuple):
    """One candle's flow. Volumes in base units (BTC); NaN where there is nothing to measure (no trade:
    VWAP and size quantiles; an empty book side: its prices, spread and microprice). A named tuple:
    immutable and several times cheaper to make than a frozen dataclass of 27 fields."""

    start_ms: int  # the candle's start
    buy_volume: float  # taker buys
    sell_volume: float  # taker sells
    buy_count: int
    sell_count: int
    vwap: float
    max_size: float  # the largest trade (0: no trade)
    imbalance: float  # (buy - sell) / (buy + sell) volume, 0 without trades
    size_q25: float
    size_q50: float
    size_q75: float
    size_q90: float
    bid: float  # best bid at the close
    ask: float
    spread_bps: float  # (ask - bid) / mid
    microprice: float  # (bid * ask_size + ask * bid_size) / (bid_size + ask_size), top of book
    bid_depth_5: float  # bid size with price >= mid * (1 - 5 bps)
    ask_depth_5: float  # ask size with price <= mid * (1 + 5 bps)
    bid_depth_10: float
    ask_depth_10: float
    bid_depth_25: float
    ask_depth_25: float
    book_imb_5: float  # (bid - ask) / (bid + ask) depth within 5 bps, 0 when both are empty
    book_imb_10: float
    book_imb_25: float
    book_updates: int  # book messages applied during the minute
    complete: bool  # False: a stream was down for part of the minute

    def row(self) -> tuple[float, ...]:
        """The bar as FLOW_COLUMNS floats."""
        return tuple(float(v) for v in self[1:])

    @classmethod
    def from_row(cls, start_ms: int, row: Sequence[float]) -> FlowBar:
        values: list[Any] = [float(v) for v in row]
        for i in _INT_COLUMNS:
            values[i] = int(values[i])
        values[-1] = bool(values[-1])
        return cls._make([start_ms, *values])


FLOW_COLUMNS = FlowBar._fields[1:]
_INT_COLUMNS = tuple(FLOW_COLUMNS.index(n) for n in ("buy_count", "sell_count", "book_updates"))
COLUMN = {name: i for i, name in enumerate(FLOW_COLUMNS)}


def flow_bar(
    start_ms: int, trades: Sequence[Trade], book: BookView | None, book_updates: int, complete: bool
) -> FlowBar:
    """The bar of the candle starting at `start_ms` from its trades (any order) and the book at its close."""
    price = np.fromiter((t.price for t in trades), np.float64, len(trades))
    size = np.fromiter((t.size for t in trades), np.float64, len(trades))
    buy = np.fromiter((t.buy for t in trades), np.bool_, len(trades))
    return flow_bar_arrays(start_ms, price, size, buy, book, book_updates, complete)


def missing_bar(start_ms: int) -> FlowBar:
    """The bar of a minute whose flow nobody saw (the stream down, or before it began): incomplete,
    no trades, no book."""
    return flow_bar(start_ms, [], None, 0, False)


def flow_bar_arrays(
    start_ms: int,
    price: np.ndarray,
    size: np.ndarray,
    buy: np.ndarray,
    book: BookView | None,
    book_updates: int,
    complete: bool,
) -> FlowBar:
    """`flow_bar` from the trades as columns, `buy` the taker side of each."""
    return flow_bar_columns(start_ms, price, size, size[buy], book, book_updates, complete)


def flow_bar_columns(
    start_ms: int,
    price: np.ndarray,
    size: np.ndarray,
    buy_size: np.ndarray,
    book: BookView | None,
    book_updates: int,
    complete: bool,
) -> FlowBar:
    """`flow_bar` from the trades as float64 columns, `buy_size` the taker buys' sizes in their order
    among `size` (as a recorder gathers them: no Python per trade here, and a dozen numpy calls)."""
    n = len(size)
    buy_count = len(buy_size)
    if n:
        buy_volume = float(_add(buy_size))  # what size[buy].sum() gives: the same values, same order
        total = float(_add(size))
        sell_volume = total - buy_volume
        vwap = float(price @ size) / total if total > 0 else math.nan
        ordered = size.copy()  # np.sort's own steps, without its wrapper
        ordered.sort()
        index, (f1, f2, f3, f4) = _QUANTILE_POSITIONS.get(n) or _quantile_positions(n)  # QUANTILES' 4
        lo1, hi1, lo2, hi2, lo3, hi3, lo4, hi4, max_size = ordered.take(index).tolist()
        quantiles = [
            lo1 + (hi1 - lo1) * f1,
            lo2 + (hi2 - lo2) * f2,
            lo3 + (hi3 - lo3) * f3,
            lo4 + (hi4 - lo4) * f4,
        ]
        imbalance = (buy_volume - sell_volume) / total if total > 0 else 0.0
    else:
        buy_volume = sell_volume = 0.0
        vwap = math.nan
        quantiles = [math.nan] * len(QUANTILES)
        max_size = imbalance = 0.0
    return _make_bar(
        FlowBar,
        [
            start_ms,
            buy_volume,
            sell_volume,
            buy_count,
            n - buy_count,
            vwap,
            max_size,
            imbalance,
            *quantiles,
            *_book_fields(book),
            book_updates,
            complete,
        ],
    )


_make_bar = tuple.__new__  # FlowBar from its 27 fields in order (FlowBar._make checks the count again)
_add = np.add.reduce  # ndarray.sum's own reduction, without its Python-level wrapper


def _quantile_positions(n: int) -> tuple[np.ndarray, tuple[float, ...]]:
    """For n sorted values: the indices (low, high per quantile, then the last) and each quantile's
    weight of `high`, as np.quantile's 'linear' method takes them; kept for the next bar of n trades."""
    if len(_QUANTILE_POSITIONS) >= KEPT_POSITIONS:
        _QUANTILE_POSITIONS.clear()
    last = n - 1
    index: list[int] = []
    fractions: list[float] = []
    for q in QUANTILES:
        position = q * last
        lo = int(position)
        index += [lo, min(lo + 1, last)]
        fractions.append(position - lo)
    positions = _QUANTILE_POSITIONS[n] = np.array([*index, last], dtype=np.intp), tuple(fractions)
    return positions


KEPT_POSITIONS = 4096  # trade counts whose quantile positions are kept (a few KB)
_QUANTILE_POSITIONS: dict[int, tuple[np.ndarray, tuple[float, ...]]] = {}


def _book_fields(book: BookView | None) -> list[float]:
    """bid, ask, spread_bps, microprice, the depths (bid, ask per band), the imbalances per band."""
    if book is None or not len(book.bids) or not len(book.asks):
        bid = float(book.bids[0, 0]) if book is not None and len(book.bids) else math.nan
        ask = float(book.asks[0, 0]) if book is not None and len(book.asks) else math.nan
        return [bid, ask, math.nan, math.nan, *[math.nan] * (3 * len(DEPTH_BPS))]
    bids, asks = book.bids, book.asks
    bid, bid_size = bids[0].tolist()
    ask, ask_size = asks[0].tolist()
    mid = (bid + ask) / 2
    top = bid_size + ask_size
    microprice = (bid * ask_size + ask * bid_size) / top if top > 0 else mid
    # levels are sorted best first: the depth within a band is a prefix sum up to the band's edge
    # (ndarray methods: np.searchsorted's wrapper costs more than the search)
    bid_levels = [len(bids) - k for k in bids[::-1, 0].searchsorted(mid * _BID_EDGES).tolist()]
    ask_levels = asks[:, 0].searchsorted(mid * _ASK_EDGES, side="right").tolist()
    # sum(sizes[:k]) for each band's k: one running sum (cumsum's, in order) a side, read at each k
    bid_sums, ask_sums = _accumulate(bids[:, 1]), _accumulate(asks[:, 1])
    depths: list[float] = []
    imbalances: list[float] = []
    for k_bid, k_ask in zip(bid_levels, ask_levels, strict=True):
        b = bid_sums.item(k_bid - 1) if k_bid else 0.0
        a = ask_sums.item(k_ask - 1) if k_ask else 0.0
        depths += [b, a]
        imbalances.append((b - a) / (b + a) if b + a > 0 else 0.0)
    return [bid, ask, (ask - bid) / mid * BPS, microprice, *depths, *imbalances]


_accumulate = np.add.accumulate  # np.cumsum's own, without its Python-level wrapper


def bar_record(bar: FlowBar) -> dict[str, Any]:
    """The bar as a JSON object (flow.jsonl, the flow store): NaN as null, keyed by `ts_start`."""
    record: dict[str, Any] = {"ts_start": bar.start_ms}
    for name in FLOW_COLUMNS:
        value = getattr(bar, name)
        record[name] = None if isinstance(value, float) and math.isnan(value) else value
    return record


def bar_from_record(record: Mapping[str, Any]) -> FlowBar:
    """The inverse of bar_record; KeyError/TypeError/ValueError for a malformed record."""
    row = [math.nan if record[name] is None else float(record[name]) for name in FLOW_COLUMNS]
    return FlowBar.from_row(int(record["ts_start"]), row)


def aggregate_rows(rows: np.ndarray, first: np.ndarray, last: np.ndarray) -> np.ndarray:
    """1m flow rows -> one row per bucket of rows first[i]..last[i] (consecutive, as candles aggregate).

    Volumes, counts and book updates add up; VWAP is volume-weighted; the largest trade is the largest;
    the imbalance is recomputed; the book is the last minute's; complete only if every minute is.
    Size quantiles cannot be had from per-minute quantiles: NaN.
    """
    out = rows[last].copy()
    for name in ("buy_volume", "sell_volume", "buy_count", "sell_count", "book_updates"):
        out[:, COLUMN[name]] = np.add.reduceat(rows[:, COLUMN[name]], first)
    volume = rows[:, COLUMN["buy_volume"]] + rows[:, COLUMN["sell_volume"]]
    total = out[:, COLUMN["buy_volume"]] + out[:, COLUMN["sell_volume"]]
    notional = np.add.reduceat(np.where(volume > 0, rows[:, COLUMN["vwap"]] * volume, 0.0), first)
    traded = total > 0
    safe = np.where(traded, total, 1.0)
    out[:, COLUMN["vwap"]] = np.where(traded, notional / safe, np.nan)
    out[:, COLUMN["max_size"]] = np.maximum.reduceat(rows[:, COLUMN["max_size"]], first)
    buy_minus_sell = out[:, COLUMN["buy_volume"]] - out[:, COLUMN["sell_volume"]]
    out[:, COLUMN["imbalance"]] = np.where(traded, buy_minus_sell / safe, 0.0)
    for name in ("size_q25", "size_q50", "size_q75", "size_q90"):
        out[:, COLUMN[name]] = np.nan
    out[:, COLUMN["complete"]] = np.minimum.reduceat(rows[:, COLUMN["complete"]], first)
    return out
