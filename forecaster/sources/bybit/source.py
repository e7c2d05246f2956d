"""source=bybit: Bybit's public v5 endpoints (no keys); REST for history and warm-up, WebSocket live.

Its fields are the option's keys (conf/source/bybit.yaml). Each warm-up comes from REST at its own
timeframe, then one WebSocket stream of 1m candles starts right after the latest minute that every
warm-up covers (gaps backfilled from REST). A consumer whose warm-up reaches further skips the
minutes it already has (see forecaster.sources.base.covered_until), so nobody misses or
double-counts a candle. aiohttp is imported only when a connection is made.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from forecaster.candles import DAY_MS, Candle, CandleArray, timeframe_ms, utc_text
from forecaster.checks import Check, Status
from forecaster.errors import ConfigError
from forecaster.reachability import json_object, not_json, unreachable
from forecaster.schema import bounded, choice
from forecaster.sources.base import Connection, LabelledHistory, WarmUp, covered_until
from forecaster.sources.bybit.protocol import BOOK_DEPTHS, TIME_PATH

if TYPE_CHECKING:
    from forecaster.config import PathsConfig
    from forecaster.flow.bars import FlowBar
    from forecaster.flow.types import Trade
    from forecaster.sources.bybit.flow_feed import FlowFeed
    from forecaster.sources.bybit.rest import BybitRest

log = logging.getLogger(__name__)
NETWORK_CHECK = "Bybit REST reachable"
LOOPBACK = ("127.0.0.1", "localhost", "::1")  # where the emulator listens


@dataclass(frozen=True)
class BybitSource:
    name: str = "bybit"
    rest_url: str = "https://api.bybit.com"
    ws_url: str = "wss://stream.bybit.com/v5/public/spot"
    category: str = choice("spot", "spot", "linear")
    symbol: str = "BTCUSDT"
    ping_interval_s: float = bounded(20.0, gt=0)
    max_backoff_s: float = bounded(60.0, gt=0)
    request_timeout_s: float = bounded(10.0, gt=0)
    stale_timeout_s: float = bounded(30.0, gt=0)
    healthy_reset_s: float = bounded(60.0, gt=0)
    backoff_base_s: float = bounded(0.5, gt=0)
    max_retries: int = bounded(8, ge=0)
    max_concurrency: int = bounded(4, ge=1)
    max_message_bytes: int = bounded(1_048_576, ge=1024)
    queue_size: int = bounded(1000, ge=1)
    book_depth: int = choice(50, *BOOK_DEPTHS)
    trade_dedupe_window: int = bounded(100_000, ge=1)
    flow_grace_ms: int = bounded(2_000, ge=0)  # exchange time past a minute's end before its flow bar is cut
    stale_book_ms: int = bounded(1_000, ge=0)  # a book this much older than a minute's last trade is stale

    def __post_init__(self) -> None:
        # Pongs come every ping_interval_s: a shorter silence limit would drop healthy connections.
        if self.stale_timeout_s <= self.ping_interval_s:
            raise ConfigError(
                f"source.stale_timeout_s={self.stale_timeout_s} must exceed source.ping_interval_s="
                f"{self.ping_interval_s}, or a healthy but quiet connection looks dead"
            )

    def history(
        self, timeframe: str, start: int | None, end: int | None, days: float, paths: PathsConfig
    ) -> CandleArray:
        """From REST through the local cache, at `timeframe` natively; with start None, the last `days`."""
        if start is None:
            start = (end if end is not None else int(time.time() * 1000)) - int(days * DAY_MS)
        return asyncio.run(self._download(timeframe, start, end, paths))

    def histories(
        self, timeframe: str, start: int | None, end: int | None, days: float, paths: PathsConfig
    ) -> list[LabelledHistory]:
        """One history, labelled with the venue (e.g. bybit-spot); its gaps split it into segments later."""
        return [
            LabelledHistory(f"{self.name}-{self.category}", self.history(timeframe, start, end, days, paths))
        ]

    def origin(self) -> str:
        return f"{self.rest_url} ({self.category} {self.symbol})"

    async def _download(self, timeframe: str, start: int, end: int | None, paths: PathsConfig) -> CandleArray:
        from forecaster.sources.bybit.rest import BybitRest

        async with BybitRest(self, paths.data_cache) as rest:
            return await rest.klines(start, end, timeframe)

    async def connect(
        self, stack: contextlib.AsyncExitStack, warmups: Sequence[WarmUp], paths: PathsConfig
    ) -> Connection:
        from forecaster.sources.bybit.rest import BybitRest
        from forecaster.sources.bybit.ws import BybitKlineStream

        rest = await stack.enter_async_context(BybitRest(self, paths.data_cache))
        warmed = list(await asyncio.gather(*(_warm_up(rest, w) for w in warmups)))
        for request, warm in zip(warmups, warmed, strict=True):
            log.info("warmed up with %d %s candles from %s", len(warm), request.timeframe, self.rest_url)
        ends = [end for end in map(covered_until, warmed) if end is not None]
        stream = await stack.enter_async_context(
            BybitKlineStream(self, rest, after_ms=min(ends, default=None))
        )
        return Connection(warmed, stream, stream.counters)

    def flow_feed(self, on_bar: Callable[[FlowBar, list[Trade]], None], keep_trades: bool) -> FlowFeed:
        from forecaster.sources.bybit.flow_feed import FlowFeed

        return FlowFeed(self, on_bar, keep_trades)

    def checks(self, paths: PathsConfig, network: bool) -> list[Check]:
        if not network:
            return [Check(NETWORK_CHECK, Status.SKIP, "not checked (mode.check_network=true checks it)")]
        url = self.rest_url.rstrip("/") + TIME_PATH
        try:
            with urllib.request.urlopen(url, timeout=self.request_timeout_s) as answer:
                raw, status, content_type = answer.read(), answer.status, answer.headers.get_content_type()
        except urllib.error.HTTPError as exc:
            return [Check(NETWORK_CHECK, Status.WARN, f"{url} answered HTTP {exc.code} {exc.reason}")]
        except (OSError, ValueError) as exc:
            why = unreachable(url, exc, "source.rest_url", serving(url), self.request_timeout_s)
            return [Check(NETWORK_CHECK, Status.WARN, why)]
        if (body := json_object(raw)) is None:
            why = not_json(url, status, content_type, raw, "source.rest_url")
            return [Check(NETWORK_CHECK, Status.WARN, why)]
        answered = Status.OK if body.get("retCode") == 0 else Status.WARN
        detail = f"{url} retCode={body.get('retCode')} {body.get('retMsg', '')}"
        return [Check(NETWORK_CHECK, answered, detail)]


def serving(url: str) -> str:
    """Who should answer at `url`, for messages: on this machine, the emulator."""
    return "the emulator" if urlsplit(url).hostname in LOOPBACK else "the Bybit endpoint"


async def _warm_up(rest: BybitRest, request: WarmUp) -> list[Candle]:
    timeframe, n = request.timeframe, request.candles
    if request.resume_after is None:
        return (await rest.warmup(n, timeframe)).to_candles() if n else []
    step = timeframe_ms(timeframe)
    first = request.resume_after - (n - 1) * step
    log.info("resuming %s after the recorded candle %s UTC", timeframe, utc_text(request.resume_after))
    return (await rest.klines(first, request.resume_after + step, timeframe)).to_candles()
