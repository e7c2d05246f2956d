"""The flow store (`paths.flow_store`): recorded candles with their flow bars, one file per UTC day.

The day being recorded is plain JSONL, `YYYY-MM-DD.jsonl`, one line per minute (the candle record with
its bar under "flow"), appended whole and flushed by the run records' writer (forecaster/recording.py):
a restart resumes it and skips minutes already there, and a torn last line is left out. When a minute
of a later day arrives, every earlier plain day is finished: compressed to a temporary file, fsynced,
renamed to `YYYY-MM-DD.jsonl.gz` and only then the plain file removed. A SIGKILL at any moment leaves
the plain day (resumed or finished at the next start) or the whole .gz (a plain left-over beside it is
dropped), never a partial .gz under a final name. Raw trades, when recorded, sit beside as
`YYYY-MM-DD.trades.jsonl(.gz)`, one line per minute, finished the same way.
"""

from __future__ import annotations

import gzip
import logging
import os
import shutil
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from forecaster.candles import DAY_MS, Candle, CandleArray, CandleError, concat_candles
from forecaster.config import SinkConfig
from forecaster.flow.bars import FlowBar, bar_from_record, bar_record
from forecaster.flow.types import Trade
from forecaster.recording import (
    CANDLE_KEY,
    Closing,
    JsonlWriter,
    candle_from_record,
    candle_record,
    parse_jsonl,
)

log = logging.getLogger(__name__)

CANDLES = ".jsonl"  # suffixes of a day's files
TRADES = ".trades.jsonl"
FINISHED = ".gz"
PARTIAL = ".tmp"  # a .gz being written
DAY_FORMAT = "%Y-%m-%d"


def day_of(ms: int) -> str:
    """The UTC day a time falls in, as the store names its files: '2026-11-26'."""
    return datetime.fromtimestamp(ms // 1000, UTC).strftime(DAY_FORMAT)


def day_start(day: str) -> int:
    return int(datetime.strptime(day, DAY_FORMAT).replace(tzinfo=UTC).timestamp() * 1000)


def trade_record(trade: Trade) -> list[Any]:
    return [trade.ts_ms, trade.price, trade.size, trade.buy, trade.trade_id, trade.seq]


def trade_from_record(row: Sequence[Any]) -> Trade:
    ts_ms, price, size, buy, trade_id, seq = row
    return Trade(int(ts_ms), float(price), float(size), bool(buy), str(trade_id), int(seq))


class FlowStoreWriter(Closing):
    """What mode=record calls: `append(candle, bar)` once per confirmed 1m candle, `close()` at the end.

    A minute of a day already finished (compressed) is skipped and counted in `late`, never rewritten.
    """

    def __init__(
        self,
        root: str | Path,
        raw_trades: bool = False,
        fsync: bool = False,
        dedupe_window: int = SinkConfig.dedupe_window,
    ) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.raw_trades = raw_trades
        self.fsync = fsync
        self.dedupe_window = dedupe_window
        self.day: str | None = None
        self._writers: list[JsonlWriter] = []
        self.written = 0
        self.skipped = 0  # minutes already in the day's file (a resumed session)
        self.late = 0  # minutes of a finished day
        self._late_day: str | None = None  # warned about once

    @property
    def path(self) -> Path:
        """The file being written (the store's folder before the first minute)."""
        return self.root / f"{self.day}{CANDLES}" if self.day else self.root

    def append(self, candle: Candle, bar: FlowBar, trades: Sequence[Trade] = ()) -> bool:
        """Write one minute (its trades too with `raw_trades`); False when it was already there."""
        if candle.timeframe != "1m" or not candle.confirmed or bar.start_ms != candle.start_ms:
            raise ValueError(f"the flow store takes confirmed 1m candles with their own bar, got {candle}")
        day = day_of(candle.start_ms)
        if day != self.day:
            if (self.root / f"{day}{CANDLES}{FINISHED}").exists():
                self.late += 1
                if day != self._late_day:
                    log.warning("%s: day %s is already finished: its minutes are skipped", self.root, day)
                    self._late_day = day
                return False
            self._open(day)
        if self.raw_trades:  # first: the candle's line is what marks a minute as written
            self._writers[1].append(
                {CANDLE_KEY: candle.start_ms, "trades": [trade_record(t) for t in trades]}
            )
        if not self._writers[0].append({**candle_record(candle), "flow": bar_record(bar)}):
            self.skipped += 1
            return False
        self.written += 1
        return True

    def _open(self, day: str) -> None:
        """Close the current day, finish every earlier plain day, open (or resume) `day`."""
        self._close_writers()
        for suffix in (CANDLES, TRADES):
            for plain in sorted(self.root.glob(f"????-??-??{suffix}")):
                if plain.name[: len(day)] < day:
                    finish(plain)
        self.day = day
        suffixes = (CANDLES, TRADES) if self.raw_trades else (CANDLES,)
        self._writers = [
            JsonlWriter(self.root / f"{day}{s}", CANDLE_KEY, self.fsync, self.dedupe_window) for s in suffixes
        ]

    def _close_writers(self) -> None:
        for writer in self._writers:
            writer.close()
        self._writers = []

    def close(self) -> None:
        """The current day stays plain: the next session resumes it."""
        self._close_writers()


def finish(plain: Path) -> Path:
    """Compress a past day's plain file to `<name>.gz` atomically, then remove the plain file."""
    final = plain.with_name(plain.name + FINISHED)
    if not final.exists():
        partial = final.with_name(final.name + PARTIAL)
        with plain.open("rb") as source, partial.open("wb") as raw:
            with gzip.GzipFile(final.name, "wb", fileobj=raw) as target:
                shutil.copyfileobj(source, target)
            raw.flush()
            os.fsync(raw.fileno())
        os.replace(partial, final)
        _sync_dir(plain.parent)
        log.info("%s: day finished", final)
    plain.unlink()
    return final


def _sync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@dataclass(frozen=True)
class StoredDay:
    day: str
    path: Path  # the .gz of a finished day, else the plain file


def stored_days(root: str | Path, suffix: str = CANDLES) -> list[StoredDay]:
    """The store's days in order, each by its finished file where there is one."""
    found: dict[str, Path] = {}
    for path in sorted(Path(root).glob(f"????-??-??{suffix}*")):
        day = path.name[:10]
        if path.name == f"{day}{suffix}{FINISHED}" or (path.name == f"{day}{suffix}" and day not in found):
            found[day] = path
    return [StoredDay(day, path) for day, path in sorted(found.items())]


def _day_bytes(path: Path) -> bytes:
    try:
        return gzip.decompress(path.read_bytes()) if path.suffix == FINISHED else path.read_bytes()
    except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
        raise CandleError(f"{path} is corrupt ({exc}); restore it or remove it from the store") from exc


def _days_in(root: Path, start: int | None, end: int | None, suffix: str) -> list[StoredDay]:
    if not root.is_dir():
        raise CandleError(f"flow store {root} not found; record days into it with mode=record")
    return [
        d
        for d in stored_days(root, suffix)
        if (end is None or day_start(d.day) < end) and (start is None or day_start(d.day) + DAY_MS > start)
    ]


def read_store(root: str | Path, start: int | None = None, end: int | None = None) -> CandleArray:
    """Confirmed 1m candles with their flow bars, start in [start, end) (None: open), ascending."""
    parts = []
    for stored in _days_in(Path(root), start, end, CANDLES):
        candles = []
        for record in parse_jsonl(_day_bytes(stored.path), CANDLE_KEY, str(stored.path)).records:
            try:
                candle = candle_from_record(record)
                bar = bar_from_record(record["flow"])
            except (KeyError, TypeError, ValueError) as exc:
                raise CandleError(f"{stored.path}: malformed minute {record.get(CANDLE_KEY)}: {exc}") from exc
            if (start is None or candle.start_ms >= start) and (end is None or candle.start_ms < end):
                candles.append(replace(candle, flow=bar))
        parts.append(CandleArray.from_candles(sorted(candles, key=lambda c: c.start_ms)))
    return concat_candles(parts, "1m").validate()


def read_trades(root: str | Path, start: int | None = None, end: int | None = None) -> dict[int, list[Trade]]:
    """The raw trades recorded (`raw_trades`) per candle start in [start, end), to recompute bars offline."""
    out: dict[int, list[Trade]] = {}
    for stored in _days_in(Path(root), start, end, TRADES):
        for record in parse_jsonl(_day_bytes(stored.path), CANDLE_KEY, str(stored.path)).records:
            minute = int(record[CANDLE_KEY])
            if (start is None or minute >= start) and (end is None or minute < end):
                out[minute] = [trade_from_record(row) for row in record["trades"]]
    return out


def newest_minute(root: str | Path) -> int | None:
    """Start of the newest minute stored (None: an empty or missing store): mode=record resumes after it."""
    days = stored_days(root) if Path(root).is_dir() else []
    if not days:
        return None
    records = parse_jsonl(_day_bytes(days[-1].path), CANDLE_KEY, str(days[-1].path)).records
    return max((int(r[CANDLE_KEY]) for r in records), default=None)
