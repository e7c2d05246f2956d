"""Candles: the one type every source produces, its parsers and checks, and timeframe aggregation.

A candle is identified by its start time in epoch milliseconds (UTC). `Candle` is one candle as it
arrives from a stream; `CandleArray` holds a history column-wise for vectorised work. Aggregation
of confirmed 1m candles into higher timeframes has one implementation (`aggregate`); the
incremental `Aggregator` calls it on each finished bucket, so batch and live agree exactly.
"""

from __future__ import annotations

import gzip
import logging
import math
import re
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from forecaster.errors import UserError
from forecaster.flow.bars import FLOW_COLUMNS, FlowBar, aggregate_rows

log = logging.getLogger(__name__)

MINUTE_MS = 60_000
DAY_MS = 86_400_000
CSV_COLUMNS = ("start_ms", "open", "high", "low", "close", "volume", "turnover")
_TIMEFRAME = re.compile(r"^([1-9][0-9]*)m$")


class CandleError(UserError, ValueError):
    """A candle (or a file of them) that breaks the rules; the message names the candle."""


def timeframe_ms(timeframe: str) -> int:
    """'5m' -> 300000."""
    match = _TIMEFRAME.match(timeframe)
    if not match:
        raise ValueError(f"timeframe {timeframe!r} is not of the form '<minutes>m', e.g. '5m'")
    return int(match.group(1)) * MINUTE_MS


def utc_text(ms: int) -> str:
    """Epoch milliseconds as messages and console lines show a time: '2024-12-01 00:00' (UTC)."""
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M")


def parse_utc_ms(text: str) -> int:
    """Epoch milliseconds, or an ISO 8601 date/time (UTC when it names no zone)."""
    if text.isdigit():
        return int(text)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as exc:
        raise ValueError(
            f"{text!r} is neither epoch milliseconds nor an ISO date such as 2025-06-01T12:00"
        ) from exc
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


@dataclass(frozen=True, slots=True)
class Candle:
    start_ms: int
    end_ms: int
    open: float
    high: float
    low: float
    close: float
    volume: float
    turnover: float  # NaN where the source has none
    confirmed: bool
    timeframe: str = "1m"
    flow: FlowBar | None = None  # the candle's order flow, where the source recorded it

    def validated(self) -> Candle:
        problem = _problem(
            self.start_ms, self.open, self.high, self.low, self.close, self.volume, self.timeframe
        )
        if problem:
            raise CandleError(f"candle {utc_text(self.start_ms)} UTC ({self.timeframe}): {problem}")
        if self.end_ms != self.start_ms + timeframe_ms(self.timeframe) - 1:
            raise CandleError(
                f"candle {utc_text(self.start_ms)} UTC ({self.timeframe}): end {self.end_ms} "
                "does not fit its start"
            )
        return self


def _problem(
    start: int, o: float, h: float, lo: float, c: float, volume: float, timeframe: str
) -> str | None:
    if not all(math.isfinite(x) and x > 0 for x in (o, h, lo, c)):
        return f"prices must be positive numbers (open {o}, high {h}, low {lo}, close {c})"
    if h < max(o, c):
        return f"high {h} < max(open, close) {max(o, c)}"
    if lo > min(o, c):
        return f"low {lo} > min(open, close) {min(o, c)}"
    if not (math.isfinite(volume) and volume >= 0):
        return f"volume {volume} must be >= 0"
    if start % timeframe_ms(timeframe):
        return f"start {start} is not aligned to {timeframe}"
    return None


def candle_from_ws(item: Mapping[str, object], timeframe: str = "1m") -> Candle:
    """One element of a Bybit v5 kline push's `data` list (numbers for times, strings for values).

    `end` is computed from `start`: older Bybit docs let it run with the clock.
    """
    try:
        start = int(item["start"])  # type: ignore[call-overload]
        confirm = item["confirm"]
        if not isinstance(confirm, bool):
            raise TypeError(f"confirm must be true or false, got {confirm!r}")
        candle = Candle(
            start_ms=start,
            end_ms=start + timeframe_ms(timeframe) - 1,
            open=float(item["open"]),  # type: ignore[arg-type]
            high=float(item["high"]),  # type: ignore[arg-type]
            low=float(item["low"]),  # type: ignore[arg-type]
            close=float(item["close"]),  # type: ignore[arg-type]
            volume=float(item["volume"]),  # type: ignore[arg-type]
            turnover=float(item.get("turnover", "nan")),  # type: ignore[arg-type]
            confirmed=confirm,
            timeframe=timeframe,
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise CandleError(f"malformed kline push item {dict(item)!r}: {exc}") from exc
    return candle.validated()


def candle_from_rest_row(row: Sequence[str], server_time_ms: int, timeframe: str = "1m") -> Candle:
    """One row `[start, open, high, low, close, volume, turnover]` of REST /v5/market/kline (all strings).

    REST has no confirm flag and includes the candle still in progress: a row counts as closed
    only when its end has passed on the server's clock.
    """
    try:
        start, o, h, lo, c, volume, turnover = row
        start_ms = int(start)
        step = timeframe_ms(timeframe)
        candle = Candle(
            start_ms=start_ms,
            end_ms=start_ms + step - 1,
            open=float(o),
            high=float(h),
            low=float(lo),
            close=float(c),
            volume=float(volume),
            turnover=float(turnover),
            confirmed=start_ms + step <= server_time_ms,
            timeframe=timeframe,
        )
    except (TypeError, ValueError) as exc:
        raise CandleError(f"malformed kline row {list(row)!r}: {exc}") from exc
    return candle.validated()


@dataclass(frozen=True)
class CandleArray:
    """A history of closed candles, one numpy column per field, ascending by start."""

    start_ms: np.ndarray  # int64
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray
    turnover: np.ndarray
    timeframe: str = "1m"
    # (T, len(FLOW_COLUMNS)) float64 flow bars aligned on the candles (forecaster/flow/bars.py), where
    # the source recorded them (source=flow_store); None: candles only
    flow: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.start_ms)

    def __getitem__(self, index: slice | np.ndarray) -> CandleArray:
        flow = None if self.flow is None else self.flow[index]
        return CandleArray(
            *(column[index] for column in self._columns()), timeframe=self.timeframe, flow=flow
        )

    def _columns(self) -> tuple[np.ndarray, ...]:
        return (self.start_ms, self.open, self.high, self.low, self.close, self.volume, self.turnover)

    def with_timeframe(self, timeframe: str) -> CandleArray:
        return CandleArray(*self._columns(), timeframe=timeframe, flow=self.flow)

    def candle(self, i: int) -> Candle:
        start = int(self.start_ms[i])
        return Candle(
            start_ms=start,
            end_ms=start + timeframe_ms(self.timeframe) - 1,
            open=float(self.open[i]),
            high=float(self.high[i]),
            low=float(self.low[i]),
            close=float(self.close[i]),
            volume=float(self.volume[i]),
            turnover=float(self.turnover[i]),
            confirmed=True,
            timeframe=self.timeframe,
            flow=None if self.flow is None else FlowBar.from_row(start, self.flow[i]),
        )

    def to_candles(self) -> list[Candle]:
        return [self.candle(i) for i in range(len(self))]

    def between(self, start_ms: int, end_ms: int) -> CandleArray:
        """Candles with start in [start_ms, end_ms)."""
        lo, hi = np.searchsorted(self.start_ms, [start_ms, end_ms])
        return self[int(lo) : int(hi)]

    @classmethod
    def from_candles(cls, candles: Sequence[Candle], timeframe: str = "1m") -> CandleArray:
        if any(not c.confirmed or c.timeframe != timeframe for c in candles):
            raise ValueError(f"a CandleArray holds confirmed {timeframe} candles only")
        return cls(
            np.array([c.start_ms for c in candles], dtype=np.int64),
            *(np.array([getattr(c, name) for c in candles], dtype=np.float64) for name in CSV_COLUMNS[1:]),
            timeframe=timeframe,
            flow=flow_rows(candles),
        )

    def validate(self) -> CandleArray:
        """Vectorised form of Candle.validated, plus strictly ascending starts; names the first bad candle."""
        prices = np.stack([self.open, self.high, self.low, self.close])
        bad = (
            ~np.all(np.isfinite(prices) & (prices > 0), axis=0)
            | (self.high < np.maximum(self.open, self.close))
            | (self.low > np.minimum(self.open, self.close))
            | ~(self.volume >= 0)
            | (self.start_ms % timeframe_ms(self.timeframe) != 0)
        )
        if bad.any():
            self.candle(int(np.argmax(bad))).validated()
        order = np.diff(self.start_ms) <= 0
        if order.any():
            i = int(np.argmax(order)) + 1
            raise CandleError(
                f"candle {utc_text(int(self.start_ms[i]))} UTC is not after "
                f"{utc_text(int(self.start_ms[i - 1]))}: not ascending"
            )
        return self


def flow_rows(candles: Sequence[Candle]) -> np.ndarray | None:
    """The candles' flow bars as rows; a candle without one gets an incomplete row of NaN; None: no flow."""
    if all(c.flow is None for c in candles):
        return None
    missing = np.full(len(FLOW_COLUMNS), np.nan)
    missing[-1] = 0.0  # complete: no
    return np.array([missing if c.flow is None else c.flow.row() for c in candles], np.float64)


def concat_candles(parts: Sequence[CandleArray], timeframe: str) -> CandleArray:
    """Join histories into one ascending history, one candle per start (the last one seen wins).

    Flow is kept only where every part has it."""
    parts = [p for p in parts if len(p)]
    if not parts:
        return CandleArray.from_candles([], timeframe)
    columns = [np.concatenate(cols) for cols in zip(*(p._columns() for p in parts), strict=True)]
    with_flow = all(p.flow is not None for p in parts)
    flow = np.concatenate([p.flow for p in parts if p.flow is not None]) if with_flow else None
    reversed_starts = columns[0][::-1]
    _, first_in_reversed = np.unique(reversed_starts, return_index=True)
    keep = len(reversed_starts) - 1 - first_in_reversed  # ascending starts, last occurrence of each
    return CandleArray(
        *(c[keep] for c in columns), timeframe=timeframe, flow=None if flow is None else flow[keep]
    )


def read_csv(path: str | Path, timeframe: str = "1m") -> CandleArray:
    """A candle CSV as in ../shared/data (`start_ms,open,high,low,close,volume,turnover`; .gz or plain)."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rt", encoding="utf-8") as handle:
            header = handle.readline().strip()
            if tuple(header.split(",")) != CSV_COLUMNS:
                raise CandleError(f"{path}: header {header!r} is not {','.join(CSV_COLUMNS)}")
            table = np.genfromtxt(handle, delimiter=",", dtype=np.float64, filling_values=np.nan, ndmin=2)
    except (EOFError, zlib.error, gzip.BadGzipFile, UnicodeDecodeError) as exc:
        raise CandleError(f"{path} is truncated or corrupt ({exc}); download or copy it again") from exc
    except OSError as exc:
        raise CandleError(f"cannot read candles from {path}: {exc.strerror or exc}") from exc
    except ValueError as exc:
        raise CandleError(f"{path}: unparsable row ({exc})") from exc
    if table.size == 0:
        raise CandleError(f"{path}: no candles")
    if table.shape[1] != len(CSV_COLUMNS):
        raise CandleError(f"{path}: rows have {table.shape[1]} columns, expected {len(CSV_COLUMNS)}")
    candles = CandleArray(table[:, 0].astype(np.int64), *table[:, 1:].T.copy(), timeframe=timeframe)
    try:
        return candles.validate()
    except CandleError as exc:
        raise CandleError(f"{path}: {exc}") from exc


@dataclass(frozen=True)
class Aggregation:
    candles: CandleArray
    incomplete: np.ndarray  # starts of buckets with missing minutes: reported, never emitted
    pending: int | None  # start of the last bucket if it may still fill up


def aggregate(one_minute: CandleArray, timeframe: str) -> Aggregation:
    """Confirmed, ascending 1m candles -> candles of `timeframe` aligned to UTC boundaries.

    o = first open, h = max, l = min, c = last close, volume and turnover summed; flow bars as
    forecaster/flow/bars.py aggregate_rows says. A bucket is emitted only when all its minutes are present.
    """
    if one_minute.timeframe != "1m":
        raise ValueError(f"aggregate takes 1m candles, got {one_minute.timeframe}")
    step = timeframe_ms(timeframe)
    per_bucket = step // MINUTE_MS
    n = len(one_minute)
    if per_bucket == 1:  # each minute is its own bucket, its flow bar (size quantiles too) kept whole
        return Aggregation(one_minute, np.empty(0, np.int64), None)
    if n == 0:
        return Aggregation(one_minute[:0].with_timeframe(timeframe), np.empty(0, np.int64), None)
    bucket = one_minute.start_ms - one_minute.start_ms % step
    first = np.flatnonzero(np.r_[True, bucket[1:] != bucket[:-1]])
    last = np.r_[first[1:], n] - 1
    counts = last - first + 1
    complete = counts == per_bucket
    reached_end = one_minute.start_ms[last] == bucket[first] + step - MINUTE_MS
    pending = None
    if not complete[-1] and not reached_end[-1]:
        pending = int(bucket[first[-1]])
    incomplete = ~complete
    incomplete[-1] &= pending is None
    keep = first[complete]
    out = CandleArray(
        start_ms=bucket[keep],
        open=one_minute.open[keep],
        high=np.maximum.reduceat(one_minute.high, first)[complete],
        low=np.minimum.reduceat(one_minute.low, first)[complete],
        close=one_minute.close[last[complete]],
        volume=np.add.reduceat(one_minute.volume, first)[complete],
        turnover=np.add.reduceat(one_minute.turnover, first)[complete],
        timeframe=timeframe,
        flow=None if one_minute.flow is None else aggregate_rows(one_minute.flow, first, last)[complete],
    )
    return Aggregation(out, bucket[first[incomplete]], pending)


class Aggregator:
    """The live form of `aggregate`: push confirmed 1m candles one at a time, get finished buckets.

    A bucket is emitted the moment its last minute arrives (not when the next bucket starts), so
    higher timeframes add no latency. Duplicates and candles not newer than the last are ignored.
    """

    def __init__(self, timeframe: str) -> None:
        self.timeframe = timeframe
        self.step = timeframe_ms(timeframe)
        self.incomplete: list[int] = []
        self._parts: list[Candle] = []
        self._last_start: int | None = None

    def push(self, candle: Candle) -> Candle | None:
        if not candle.confirmed or candle.timeframe != "1m":
            raise ValueError("the aggregator takes confirmed 1m candles only")
        if self._last_start is not None and candle.start_ms <= self._last_start:
            return None
        self._last_start = candle.start_ms
        bucket = candle.start_ms - candle.start_ms % self.step
        if self._parts and self._parts[0].start_ms < bucket:
            self._report(self._parts[0].start_ms - self._parts[0].start_ms % self.step)
            self._parts = []
        self._parts.append(candle)
        if candle.start_ms != bucket + self.step - MINUTE_MS:
            return None
        done = aggregate(CandleArray.from_candles(self._parts), self.timeframe)
        self._parts = []
        if len(done.candles) == 0:
            self._report(bucket)
            return None
        return done.candles.candle(0)

    def _report(self, bucket: int) -> None:
        self.incomplete.append(bucket)
        log.warning(
            "incomplete %s candle at %s UTC: minutes missing, not emitted", self.timeframe, utc_text(bucket)
        )
