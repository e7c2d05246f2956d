"""Crash-safe JSONL records: candles, predictions, facts and flow bars, one JSON object per line.

Records, never the source of truth. Writers append one whole line per record in a single write
and flush it; on start they resume an existing file and skip records already there (dedupe by
candle start). A crash mid-write leaves a torn last line: readers report it and leave it out,
and the next record written still starts on a line of its own. Nothing already written is lost.
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from types import TracebackType
from typing import Any, BinaryIO, Self

from forecaster.candles import Candle, CandleError
from forecaster.config import SinkConfig
from forecaster.direction import Direction
from forecaster.errors import UserError
from forecaster.flow.bars import FlowBar, bar_from_record, bar_record
from forecaster.recent_keys import RecentKeys

log = logging.getLogger(__name__)

# The field that identifies a record of each kind (its candle's start time, epoch ms).
CANDLE_KEY = "ts_start"
PREDICTION_KEY = "candle_ts"
FACT_KEY = "candle_ts"
FLOW_KEY = "ts_start"
UNCALIBRATED_KEYS = ("raw_p_up", "raw_p_down")  # in prediction records of calibrated models only
READ_BLOCK = 1 << 16  # bytes read at a time when a writer resumes a file


def candle_record(candle: Candle) -> dict[str, Any]:
    return {
        "ts_start": candle.start_ms,
        "ts_end": candle.end_ms,
        "o": candle.open,
        "h": candle.high,
        "l": candle.low,
        "c": candle.close,
        "volume": candle.volume,
        "confirmed": candle.confirmed,
        "turnover": None if math.isnan(candle.turnover) else candle.turnover,
        "timeframe": candle.timeframe,
    }


def candle_from_record(record: Mapping[str, Any]) -> Candle:
    """The inverse of candle_record; raises CandleError for a record that breaks the candle rules."""
    try:
        candle = Candle(
            start_ms=int(record["ts_start"]),
            end_ms=int(record["ts_end"]),
            open=float(record["o"]),
            high=float(record["h"]),
            low=float(record["l"]),
            close=float(record["c"]),
            volume=float(record["volume"]),
            turnover=math.nan if record.get("turnover") is None else float(record["turnover"]),
            confirmed=record["confirmed"] is True,
            timeframe=str(record.get("timeframe", "1m")),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise CandleError(f"malformed candle record {dict(record)!r}: {exc}") from exc
    return candle.validated()


def recorded_candles(candles: Path, flow: Path) -> list[Candle]:
    """A candles.jsonl's candles, each with its bar from the flow.jsonl beside it where the session
    recorded one (a live session whose features read flow), so a replay sees what live saw."""
    out = [candle_from_record(r) for r in read_jsonl(candles, CANDLE_KEY).records]
    if not flow.is_file():
        return out
    try:
        bars = {bar.start_ms: bar for bar in map(bar_from_record, read_jsonl(flow, FLOW_KEY).records)}
    except (KeyError, TypeError, ValueError) as exc:
        raise CandleError(f"{flow}: malformed flow bar ({exc})") from exc
    return [replace(c, flow=bars.get(c.start_ms)) for c in out]


@dataclass(frozen=True)
class PredictionRecord:
    """Made at the close of candle `candle_ts`, about candle `target_ts` (the next one)."""

    candle_ts: int
    p_up: float
    p_down: float
    direction: Direction
    target_ts: int
    model: str
    timeframe: str
    latency_ms: float
    trained: bool  # False: the model runs on its initial, untrained weights
    # disagreement of ensemble members (0 for a single model), for flat.max_spread; None in records
    # written before the field existed
    spread: float | None = 0.0
    # the model's probabilities before its calibration (p_up/p_down are calibrated); None: uncalibrated
    raw_p_up: float | None = None
    raw_p_down: float | None = None


@dataclass(frozen=True)
class FactRecord:
    """What candle `candle_ts` did: close(candle_ts) against close(prev_ts)."""

    prev_ts: int
    candle_ts: int
    close_prev: float
    close_curr: float
    delta: float
    ret_bps: float
    direction: Direction  # FLAT: a zero move


def prediction_from_record(record: Mapping[str, Any]) -> PredictionRecord:
    """A predictions.jsonl line as a record; keys added after the first version may be missing."""
    try:
        return PredictionRecord(
            candle_ts=int(record["candle_ts"]),
            p_up=float(record["p_up"]),
            p_down=float(record["p_down"]),
            direction=Direction(record["direction"]),
            target_ts=int(record.get("target_ts", record["candle_ts"])),
            model=str(record.get("model", "")),
            timeframe=str(record.get("timeframe", "")),
            latency_ms=float(record.get("latency_ms", math.nan)),
            trained=bool(record.get("trained", False)),
            spread=None if record.get("spread") is None else float(record["spread"]),
            raw_p_up=None if record.get("raw_p_up") is None else float(record["raw_p_up"]),
            raw_p_down=None if record.get("raw_p_down") is None else float(record["raw_p_down"]),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise UserError(f"malformed prediction record {dict(record)!r}: {exc}") from exc


def fact_from_record(record: Mapping[str, Any]) -> FactRecord:
    """A facts.jsonl line as a record."""
    try:
        return FactRecord(
            prev_ts=int(record["prev_ts"]),
            candle_ts=int(record["candle_ts"]),
            close_prev=float(record["close_prev"]),
            close_curr=float(record["close_curr"]),
            delta=float(record["delta"]),
            ret_bps=float(record["ret_bps"]),
            direction=Direction(record["direction"]),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise UserError(f"malformed fact record {dict(record)!r}: {exc}") from exc


@dataclass
class JsonlContents:
    records: list[dict[str, Any]] = field(default_factory=list)
    bad_lines: int = 0
    torn_tail: bool = False


def read_jsonl(path: str | Path, key: str | None = None) -> JsonlContents:
    """All parsable records of a file; bad lines are counted and skipped, a torn last line reported.

    With `key`, a record must also hold that field to count.
    """
    path = Path(path)
    if not path.exists():
        return JsonlContents()
    return parse_jsonl(path.read_bytes(), key, str(path))


def parse_jsonl(data: bytes, key: str | None, name: str) -> JsonlContents:
    """`read_jsonl` of a file's bytes (a decompressed one too); `name` names it in warnings."""
    contents = JsonlContents()
    lines = data.split(b"\n")
    tail = lines.pop()  # b"" when the file ends with a newline
    for raw in lines:
        record = _parse(raw, key)
        if record is not None:
            contents.records.append(record)
        elif raw.strip():
            contents.bad_lines += 1
    if tail.strip():
        record = _parse(tail, key)
        if record is None:
            contents.torn_tail = True
            log.warning("%s: torn last line (crash mid-write?) left out: %r", name, tail[:80])
        else:
            contents.records.append(record)
    if contents.bad_lines:
        log.warning("%s: %d unparsable line(s) skipped", name, contents.bad_lines)
    return contents


def _parse(raw: bytes, key: str | None) -> dict[str, Any] | None:
    try:
        record = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError):
        return None
    if not isinstance(record, dict) or (key is not None and key not in record):
        return None
    return record


class Closing:
    """`with` support for anything with a close(): files are closed even when a session fails."""

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


class JsonlWriter(Closing):
    """Append-only writer that resumes a file and never writes a record whose key is already there.

    Records arrive in (almost) increasing key order, so only the keys of the last `dedupe_window`
    records are kept: a service running for weeks holds a bounded set, and a restart reads the
    file's tail, not all of it. A key at or below the newest key let go of the window cannot be
    checked any more and is taken as already written.
    """

    def __init__(
        self,
        path: str | Path,
        key: str,
        fsync: bool = False,
        dedupe_window: int = SinkConfig.dedupe_window,
    ) -> None:
        self.path = Path(path)
        self.key = key
        self.fsync = fsync
        self.dedupe_window = dedupe_window
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._recent = RecentKeys(dedupe_window)
        self._floor: Any = None  # keys up to this one are taken as written
        self._last_key: Any = None
        self._needs_newline = False
        self.resumed = 0
        self._resume()
        self._file = self.path.open("ab")
        self.written = 0
        self.skipped = 0
        self.beyond_window = 0  # of the skipped: keys too old for the window to tell
        if self.resumed:
            log.info("%s: resuming after %d record(s)", self.path, self.resumed)

    def _resume(self) -> None:
        """Count the file's lines and keep the keys of its last `dedupe_window` records.

        Sizes come from st_size and reads stop there: a path to a device (/dev/full) reads nothing.
        """
        size = self.path.stat().st_size if self.path.exists() else 0
        if size == 0:
            return
        with self.path.open("rb") as handle:
            lines = _count_lines(handle, size)
            keys, tail, complete = _tail_keys(handle, size, self.key, self.dedupe_window)
        self._needs_newline = tail != b""
        if tail.strip() and _parse(tail, self.key) is None:
            log.warning("%s: torn last line (crash mid-write?) left out: %r", self.path, tail[:80])
        elif tail.strip():
            lines += 1
        self.resumed = lines
        for key in keys:
            self._remember(key)
        if not complete and keys:
            self._floor = min(keys)

    @property
    def count(self) -> int:
        """Lines of records in the file: those resumed (a rare bad line counts too) and those written."""
        return self.resumed + self.written

    @property
    def last_key(self) -> Any:
        """The largest key written so far (resumed ones included), or None for an empty file."""
        return self._last_key

    def _remember(self, key: Any) -> None:
        if key in self._recent:
            return
        gone = self._recent.add(key)
        if self._last_key is None or key > self._last_key:
            self._last_key = key
        if gone is not None and (self._floor is None or gone > self._floor):
            self._floor = gone

    def _seen(self, key: Any) -> bool:
        if key in self._recent:
            return True
        if self._floor is None or key > self._floor:
            return False
        self.beyond_window += 1
        if self.beyond_window == 1:
            log.warning(
                "%s: %s=%r is older than the last %d records kept for dedupe: taken as written, skipped "
                "(raise sink.dedupe_window if records come this late)",
                self.path,
                self.key,
                key,
                self.dedupe_window,
            )
        return True

    def append(self, record: Mapping[str, Any]) -> bool:
        """Write one record; False (and nothing written) when its key is already in the file."""
        key = record[self.key]
        if self._seen(key):
            self.skipped += 1
            return False
        line = json.dumps(record, separators=(",", ":"), allow_nan=False) + "\n"
        if self._needs_newline:  # close a torn line so the record starts on a line of its own
            line = "\n" + line
            self._needs_newline = False
        self._file.write(line.encode("utf-8"))
        self._file.flush()
        if self.fsync:
            os.fsync(self._file.fileno())
        self._remember(key)
        self.written += 1
        return True

    def close(self) -> None:
        self._file.close()


def _count_lines(handle: BinaryIO, size: int) -> int:
    """Newline-terminated lines in the first `size` bytes, read in blocks (constant memory)."""
    handle.seek(0)
    lines = 0
    while size > 0:
        block = handle.read(min(READ_BLOCK, size))
        if not block:
            break
        lines += block.count(b"\n")
        size -= len(block)
    return lines


def _tail_keys(handle: BinaryIO, size: int, key: str, wanted: int) -> tuple[list[Any], bytes, bool]:
    """The keys of the last `wanted` parsable records (in file order), read backwards in blocks; the
    bytes after the last newline (b"" when the file ends with one); whether no record was left out."""
    keys: list[Any] = []
    tail: bytes | None = None
    partial = b""  # a line whose start lies in a block not read yet
    position = size
    while position > 0 and len(keys) < wanted:
        start = max(0, position - READ_BLOCK)
        handle.seek(start)
        lines = (handle.read(position - start) + partial).split(b"\n")
        position = start
        partial = lines.pop(0) if position > 0 else b""
        if tail is None and lines:
            tail = lines[-1]
        for raw in reversed(lines):
            record = _parse(raw, key)
            if record is not None:
                if len(keys) == wanted:
                    return keys[::-1], tail or b"", False
                keys.append(record[key])
    return keys[::-1], tail or b"", position == 0


class RunRecords(Closing):
    """The record files of one run directory, as the sink config names them; flow bars only with `flow`
    (a session that records order flow), so other run directories stay as they were."""

    def __init__(self, sink: SinkConfig, run_dir: Path, flow: bool = False) -> None:
        window = sink.dedupe_window
        self.candles = JsonlWriter(run_dir / sink.candles, CANDLE_KEY, sink.fsync, window)
        self.predictions = JsonlWriter(run_dir / sink.predictions, PREDICTION_KEY, sink.fsync, window)
        self.facts = JsonlWriter(run_dir / sink.facts, FACT_KEY, sink.fsync, window)
        self.flow = JsonlWriter(run_dir / sink.flow, FLOW_KEY, sink.fsync, window) if flow else None

    def add_candle(self, candle: Candle) -> bool:
        return self.candles.append(candle_record(candle))

    def add_prediction(self, prediction: PredictionRecord) -> bool:
        """The uncalibrated pair is written only for a calibrated model: other records stay as they were."""
        record = asdict(prediction)
        for key in UNCALIBRATED_KEYS:
            if record[key] is None:
                del record[key]
        return self.predictions.append(record)

    def add_fact(self, fact: FactRecord) -> bool:
        return self.facts.append(asdict(fact))

    def add_flow(self, bar: FlowBar) -> bool:
        """One bar per candle start; a RunRecords made without `flow` has nowhere to put it."""
        if self.flow is None:
            raise ValueError("these run records were opened without flow=True")
        return self.flow.append(bar_record(bar))

    def writers(self) -> Iterable[JsonlWriter]:
        files = (self.candles, self.predictions, self.facts)
        return files if self.flow is None else (*files, self.flow)

    def close(self) -> None:
        for writer in self.writers():
            writer.close()
