"""mode=facts (fact_movement): the last N candle directions, then one new line per closed candle.

Warms up N+1 closed candles from REST, prints them as a table, then prints only the line of each
new candle (never the old ones again). Every fact also goes to facts.jsonl in the run dir.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import asdict, dataclass
from pathlib import Path

from forecaster.candles import Aggregator, utc_text
from forecaster.config import Config
from forecaster.disk_space import DiskFloor, writing
from forecaster.facts import FactTracker
from forecaster.modes.base import RunResult
from forecaster.recording import FACT_KEY, FactRecord, JsonlWriter
from forecaster.run_lock import RunLock
from forecaster.schema import bounded
from forecaster.sources.base import WarmUp
from forecaster.sources.feed import MinuteFeed, next_or_stop, open_feed, stop_on_signals

log = logging.getLogger(__name__)

HEADER = f"{'candle (UTC)':<17} {'close_prev':>12} {'close_curr':>12} {'delta':>10} {'ret_bps':>8}  direction"


def fact_line(fact: FactRecord) -> str:
    when = utc_text(fact.candle_ts)
    return (
        f"{when:<17} {fact.close_prev:>12.2f} {fact.close_curr:>12.2f} {fact.delta:>10.2f} "
        f"{fact.ret_bps:>8.2f}  {fact.direction}"
    )


async def _follow(config: Config, last_n: int, writer: JsonlWriter, floor: DiskFloor) -> int:
    tracker = FactTracker()
    aggregator = Aggregator(config.timeframe.name)
    shown = 0

    def show(fact: FactRecord | None) -> None:
        nonlocal shown
        if fact is not None:
            floor.check()
            with writing(writer):
                writer.append(asdict(fact))
            print(fact_line(fact), flush=True)
            shown += 1

    print(HEADER, flush=True)
    with stop_on_signals() as stop:
        warm_up = [WarmUp(config.timeframe.name, last_n + 1)]
        async with open_feed(MinuteFeed(config.source, config.paths, warm_up), stop) as feed:
            if feed is None:
                return shown
            for candle in feed.warmed[0]:
                show(tracker.push(candle))
            minutes = aiter(feed)
            new = 0
            while (minute := await next_or_stop(minutes, stop)) is not None:
                candle = aggregator.push(minute)
                if candle is None:
                    continue
                fact = tracker.push(candle)
                show(fact)
                new += fact is not None  # max_candles counts new facts (a replay's first candle has none)
                if config.live.max_candles is not None and new >= config.live.max_candles:
                    break
    return shown


@dataclass(frozen=True)
class Facts:
    """fact_movement: the last `last_n` directions from REST, then one line per new closed candle."""

    name: str = "facts"
    last_n: int = bounded(5, ge=1)

    def run(self, config: Config, run_dir: Path) -> RunResult:
        floor = DiskFloor(run_dir, config.live.min_free_mb, config.live.disk_check_s)
        facts = run_dir / config.sink.facts
        with (
            RunLock(run_dir, self.name),
            JsonlWriter(facts, FACT_KEY, config.sink.fsync, config.sink.dedupe_window) as writer,
        ):
            floor.check()
            shown = asyncio.run(_follow(config, self.last_n, writer, floor))
        log.info("%d facts; written to %s", shown, writer.path)
        return RunResult()
