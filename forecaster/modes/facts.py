"""mode=facts (fact_movement): the last N candle directions, then one new line per closed candle.

Warms up N+1 closed candles from REST, prints them as a table, then prints only the line of each
new candle (never the old ones again). Every fact also goes to facts.jsonl in the run dir.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path

from forecaster.candles import Aggregator
from forecaster.config import Config
from forecaster.facts import FactTracker
from forecaster.recording import FACT_KEY, FactRecord, JsonlWriter
from forecaster.sources.feed import MinuteFeed, next_or_stop, open_feed, stop_on_signals

log = logging.getLogger(__name__)

HEADER = f"{'candle (UTC)':<17} {'close_prev':>12} {'close_curr':>12} {'delta':>10} {'ret_bps':>8}  direction"


def fact_line(fact: FactRecord) -> str:
    when = datetime.fromtimestamp(fact.candle_ts / 1000, UTC).strftime("%Y-%m-%d %H:%M")
    return (
        f"{when:<17} {fact.close_prev:>12.2f} {fact.close_curr:>12.2f} {fact.delta:>10.2f} "
        f"{fact.ret_bps:>8.2f}  {fact.direction}"
    )


async def _follow(config: Config, writer: JsonlWriter) -> int:
    tracker = FactTracker()
    aggregator = Aggregator(config.timeframe.name)
    shown = 0

    def show(fact: FactRecord | None) -> None:
        nonlocal shown
        if fact is not None:
            writer.append(asdict(fact))
            print(fact_line(fact), flush=True)
            shown += 1

    print(HEADER, flush=True)
    with stop_on_signals() as stop:
        async with open_feed(MinuteFeed(config, config.mode.last_n + 1), stop) as feed:
            if feed is None:
                return shown
            for candle in feed.warm:
                show(tracker.push(candle))
            minutes = aiter(feed)
            new = 0
            while (minute := await next_or_stop(minutes, stop)) is not None:
                candle = aggregator.push(minute)
                if candle is None:
                    continue
                show(tracker.push(candle))
                new += 1
                if config.live.max_candles is not None and new >= config.live.max_candles:
                    break
    return shown


def run(config: Config, run_dir: Path) -> int:
    with JsonlWriter(run_dir / config.sink.facts, FACT_KEY, config.sink.fsync) as writer:
        shown = asyncio.run(_follow(config, writer))
    log.info("%d facts; written to %s", shown, writer.path)
    return 0
