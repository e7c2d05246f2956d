"""mode=record: 1m klines and their order flow into the flow store (`paths.flow_store`), no model.

Two streams of one exchange: the kline feed (REST warm-up and gap backfill, as live) and the flow
stream (trades and the order book, forecaster.sources.bybit.flow_stream), cut into per-minute bars
on the exchange's clock (forecaster.flow.minutes). Each confirmed candle is stored with its bar, one
file per UTC day (forecaster.flow.store): a SIGKILL loses at most the minutes not yet written and
never a finished day; a restart resumes after the newest stored minute, and the candles missed
meanwhile come back from REST with their flow marked incomplete (trades cannot be backfilled).
One status line per stored minute; the session's counters go to MLflow.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path

from forecaster.candles import MINUTE_MS, Candle, utc_text
from forecaster.config import Config
from forecaster.disk_space import DiskFloor, writing
from forecaster.errors import UserError
from forecaster.flow.bars import FlowBar, missing_bar
from forecaster.flow.store import FlowStoreWriter, newest_minute
from forecaster.flow.types import Trade
from forecaster.live.flow_join import KEEP_MINUTES
from forecaster.live.runner import counter_metrics, counts_text
from forecaster.modes.base import RunResult
from forecaster.run_labels import flatten, run_tags
from forecaster.run_lock import RunLock
from forecaster.sources.base import FlowSource, WarmUp
from forecaster.sources.bybit.flow_feed import FlowFeed
from forecaster.sources.bybit.flow_stream import FlowCounters
from forecaster.sources.feed import MinuteFeed, next_or_stop, open_feed, stop_on_signals
from forecaster.tracking import Tracker

log = logging.getLogger(__name__)


@dataclass
class Joined:
    """Candles and bars waiting for each other, written in minute order once both are there, or a
    candle alone once the flow has gone past its minute without a bar (its flow is then missing)."""

    writer: FlowStoreWriter
    floor: DiskFloor
    limit: int | None = None  # minutes to store this session (live.max_candles), then no more
    candles: dict[int, Candle] = field(default_factory=dict)
    bars: dict[int, tuple[FlowBar, list[Trade]]] = field(default_factory=dict)
    first_bar: int | None = None  # the first minute the flow stream covered
    written: list[tuple[Candle, FlowBar]] = field(default_factory=list)  # since the last take

    def candle(self, candle: Candle) -> None:
        self.candles[candle.start_ms] = candle
        self._flush()

    def closed(self, bar: FlowBar, trades: list[Trade]) -> None:
        self.bars[bar.start_ms] = (bar, trades)
        self.first_bar = bar.start_ms if self.first_bar is None else self.first_bar
        self._flush()

    def take(self) -> list[tuple[Candle, FlowBar]]:
        out, self.written = self.written, []
        return out

    @property
    def done(self) -> bool:
        return self.limit is not None and self.writer.written >= self.limit

    def _flush(self) -> None:
        for start in sorted(self.candles):
            if self.done:
                break
            if start in self.bars:
                bar, trades = self.bars.pop(start)
            elif self.first_bar is None or start >= self.first_bar:
                break  # its bar may still come
            else:  # before the flow stream began: no trades were seen for it
                bar, trades = missing_bar(start), []
            candle = self.candles.pop(start)
            self.floor.check()
            with writing(self.writer):
                if self.writer.append(candle, bar, trades):
                    self.written.append((candle, bar))
        newest = max([*self.candles, *self.bars], default=0)
        for pending in (self.candles, self.bars):
            for start in [s for s in pending if s < newest - KEEP_MINUTES * MINUTE_MS]:
                del pending[start]


def status_line(candle: Candle, bar: FlowBar, counters: FlowCounters) -> str:
    flow = f"trades {bar.buy_count + bar.sell_count} (buy {bar.buy_volume:.4f} / sell {bar.sell_volume:.4f})"
    book = f"spread {bar.spread_bps:.2f} bps" if bar.spread_bps == bar.spread_bps else "book unknown"
    state = "complete" if bar.complete else "INCOMPLETE"
    stream = counts_text(counters, ("messages", "gaps", "crossed", "resyncs", "reconnects"))
    return f"{utc_text(candle.start_ms)} close={candle.close:<10.2f} {flow} {book} {state} | {stream}"


@dataclass(frozen=True)
class Record:
    """Klines + flow of source.symbol into paths.flow_store until Ctrl-C or live.max_candles minutes."""

    name: str = "record"
    raw_trades: bool = False  # also every trade, one line per minute, beside each day's candles

    def run(self, config: Config, run_dir: Path) -> RunResult:
        if not isinstance(config.source, FlowSource):
            raise UserError(
                "mode=record records Bybit's live streams: use source=bybit (or the emulator's "
                "source.rest_url / source.ws_url); a file has no trades or order book to record"
            )
        store = Path(config.paths.flow_store)
        config.tracking.check_reachable(config.paths)
        with RunLock(store, self.name), FlowStoreWriter(store, self.raw_trades, config.sink.fsync) as writer:
            floor = DiskFloor(store, config.live.min_free_mb, config.live.disk_check_s)
            floor.check()
            tracker = config.tracking.open(config.paths)
            tracker.start(
                f"record-{config.source.symbol}", flatten(asdict(config)), run_tags(config, run_dir)
            )
            status = "FAILED"
            try:
                joined = Joined(writer, floor, config.live.max_candles)
                status = asyncio.run(self._record(config, joined, tracker, newest_minute(store)))
            finally:
                tracker.finish(status)
            log.info(
                "%d minutes stored in %s (%d already there); %s",
                writer.written,
                store,
                writer.skipped,
                tracker.describe(),
            )
        return RunResult()

    async def _record(self, config: Config, joined: Joined, tracker: Tracker, resume: int | None) -> str:
        source = config.source
        assert isinstance(source, FlowSource)
        if resume is not None:
            log.info("resuming after %s UTC, the newest stored minute", utc_text(resume))
        with stop_on_signals() as stop:
            warm = [WarmUp("1m", 1, resume)]
            async with (
                open_feed(MinuteFeed(source, config.paths, warm), stop) as feed,
                source.flow_feed(joined.closed, keep_trades=self.raw_trades) as flow,
            ):
                if feed is None:
                    return "KILLED"
                minutes = aiter(feed)
                while (minute := await next_or_stop(minutes, stop)) is not None:
                    flow.check()
                    joined.candle(minute)
                    taken = joined.take()
                    for count, (candle, bar) in enumerate(taken, joined.writer.written - len(taken) + 1):
                        print(status_line(candle, bar, flow.counters), flush=True)
                        if count % config.live.metrics_every == 0:
                            tracker.log_metrics(_metrics(flow, feed, joined), count)
                    if joined.done:
                        break
                tracker.log_metrics(_metrics(flow, feed, joined), joined.writer.written)
        return "KILLED" if stop.is_set() else "FINISHED"


def _metrics(flow: FlowFeed, feed: MinuteFeed, joined: Joined) -> dict[str, float]:
    return {
        **counter_metrics(flow.counters, "flow_"),
        **counter_metrics(feed.counters, "stream_"),
        "stored_minutes": float(joined.writer.written),
        "store_bytes": float(sum(p.stat().st_size for p in joined.writer.root.iterdir() if p.is_file())),
        "late_trades": float(flow.minutes.late),
    }
