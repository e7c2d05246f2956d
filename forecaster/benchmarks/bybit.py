"""Bybit connectivity: REST history download from the local emulator (cold and cached), WS message parsing."""

from __future__ import annotations

import asyncio
import json
import tempfile
import time

from forecaster.benchmarks.candles import synthetic_history
from forecaster.candles import MINUTE_MS
from forecaster.emulator.market import Market
from forecaster.emulator.server import Emulator
from forecaster.sources.bybit.messages import parse_message
from forecaster.sources.bybit.protocol import topic_for
from forecaster.sources.bybit.rest import BybitRest
from forecaster.sources.bybit.source import BybitSource

FULL_DAYS = 30  # 43,200 1m candles
QUICK_DAYS = 5
FULL_MESSAGES = 200_000
QUICK_MESSAGES = 20_000
DAY_CANDLES = 1440
SYMBOL = "BTCUSDT"


async def _download(days: int) -> dict[str, object]:
    history = synthetic_history(days * DAY_CANDLES + DAY_CANDLES)  # one extra day: "now" lies inside it
    first = int(history.start_ms[0])
    start, end = first, first + days * DAY_CANDLES * MINUTE_MS
    async with Emulator(history, now_ms=end + DAY_CANDLES // 2 * MINUTE_MS) as emulator:
        source = BybitSource(rest_url=emulator.rest_url, ws_url=emulator.ws_url)
        with tempfile.TemporaryDirectory() as cache:
            async with BybitRest(source, cache, progress=False) as rest:
                started = time.perf_counter()
                candles = await rest.klines(start, end)
                cold_s = time.perf_counter() - started
                requests = emulator.stats.rest_requests
                started = time.perf_counter()
                await rest.klines(start, end)
                cached_s = time.perf_counter() - started
    return {
        "rest_candles": len(candles),
        "rest_requests": requests,
        "rest_concurrency": source.max_concurrency,
        "rest_seconds": round(cold_s, 3),
        "rest_candles_per_s": round(len(candles) / cold_s),
        "rest_cached_seconds": round(cached_s, 4),
        "rest_cached_candles_per_s": round(len(candles) / cached_s),
    }


def _parsing(messages: int) -> dict[str, object]:
    """Confirmed pushes in the emulator's (= Bybit's) shape, parsed and validated into candles."""
    history = synthetic_history(messages)
    market = Market(history, SYMBOL)
    topic = topic_for("1m", SYMBOL)
    texts = []
    for start in history.start_ms.tolist():
        closed = start + MINUTE_MS
        item = market.row("1", start, closed)
        texts.append(json.dumps({"topic": topic, "data": [item], "ts": closed, "type": "snapshot"}))
    started = time.perf_counter()
    for text in texts:
        parse_message(text, topic, "1m")
    seconds = time.perf_counter() - started
    return {"ws_messages": messages, "ws_parse_messages_per_s": round(messages / seconds)}


def run(quick: bool) -> dict[str, object]:
    out = asyncio.run(_download(QUICK_DAYS if quick else FULL_DAYS))
    out.update(_parsing(QUICK_MESSAGES if quick else FULL_MESSAGES))
    return out
