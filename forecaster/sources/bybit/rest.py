"""Kline history from Bybit v5 REST: paged, retried, cached, closed candles only, ascending.

Bybit pages are at most 1000 rows and the order in which a window larger than `limit` is cut is
undocumented (PROTOCOL.md 3.3), so every page is a start+end window that holds at most 1000
candles. REST also returns the candle still in progress; a row counts only once the server clock
(`time` in each answer) has passed its end. Complete UTC days are cached on disk, one CSV per day,
and never change afterwards, so repeated and extended downloads only fetch what is missing.
"""

from __future__ import annotations

import asyncio
import logging
import random
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from forecaster.candles import (
    DAY_MS,
    MINUTE_MS,
    Candle,
    CandleArray,
    CandleError,
    candle_from_rest_row,
    concat_candles,
    timeframe_ms,
)
from forecaster.errors import UserError
from forecaster.progress import Progress
from forecaster.reachability import json_object, not_json, unreachable
from forecaster.sources.bybit.cache import KlineCache
from forecaster.sources.bybit.protocol import KLINE_PATH, PAGE_LIMIT, RET_OK, TIME_PATH, interval_code
from forecaster.sources.bybit.retry import Backoff, TransientFailure, code_failure, status_failure
from forecaster.sources.bybit.source import BybitSource, serving

log = logging.getLogger(__name__)

# A day is cached only this long after it ended, so a candle the exchange publishes late is not
# cached as missing for good.
CACHE_SETTLE_MS = 5 * MINUTE_MS
# off a terminal, a history download logs one progress line per this many pages (1000 candles each)
LOG_EVERY_PAGES = 10
WARMUP_EXTENSIONS = 2  # how often warmup looks further back when history has gaps


class BybitError(UserError):
    """Bybit refused the request for a reason retrying cannot fix (bad symbol, interval, range...)."""


class BybitUnavailable(UserError):
    """Bybit kept failing (rate limit, 5xx, timeouts) through every retry."""


class BybitUnreachable(UserError):
    """A host that never answered since start (DNS, refused, TLS, silence, not JSON): a wrong URL or no
    network, which no retry fixes; an outage of a host that has answered is retried instead."""


@dataclass
class RestStats:
    requests: int = 0  # HTTP requests sent, retries included
    retries: int = 0
    pages: int = 0  # kline pages fetched successfully
    cached_days: int = 0  # days answered from the local cache
    malformed_rows: int = 0


def _server_time(body: dict[str, Any]) -> int:
    """The server clock from an answer's envelope: it decides which candles are closed."""
    try:
        return int(body["time"])
    except (KeyError, TypeError, ValueError) as exc:
        raise BybitError(f"Bybit REST answered without a valid 'time': {str(body)[:200]}") from exc


class BybitRest:
    """Async client for kline history. `async with BybitRest(source, paths.data_cache) as rest: ...`"""

    def __init__(
        self,
        source: BybitSource,
        cache_dir: str | Path | None = None,
        *,
        progress: bool = True,
        rng: random.Random | None = None,
    ) -> None:
        self.source = source
        self.cache_dir = cache_dir
        self.progress = progress
        self.stats = RestStats()
        self._rng = rng or random.Random()
        self._session: aiohttp.ClientSession | None = None
        self._slots = asyncio.Semaphore(source.max_concurrency)
        self._cooldown_until = 0.0  # loop time before which nobody sends (after a rate-limit answer)
        self._answered = False  # the host has answered (JSON, or a retryable status): failures are outages

    async def __aenter__(self) -> BybitRest:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            # TLS is verified against the system's CAs; the connector limit backs up the semaphore.
            connector = aiohttp.TCPConnector(
                limit=self.source.max_concurrency, ssl=ssl.create_default_context()
            )
            timeout = aiohttp.ClientTimeout(total=self.source.request_timeout_s)
            self._session = aiohttp.ClientSession(connector=connector, timeout=timeout)
        return self._session

    # public API ------------------------------------------------------------------------------

    async def server_time_ms(self) -> int:
        return _server_time(await self._get(TIME_PATH, {}))

    async def klines(
        self, start_ms: int, end_ms: int | None = None, timeframe: str = "1m", symbol: str | None = None
    ) -> CandleArray:
        """Closed candles with start in [start_ms, end_ms), ascending; end None: up to the newest closed."""
        return await self._klines(start_ms, end_ms, timeframe, symbol or self.source.symbol, None)

    async def warmup(self, n: int, timeframe: str = "1m", symbol: str | None = None) -> CandleArray:
        """The last n closed candles (fewer only if the exchange has none that far back)."""
        symbol = symbol or self.source.symbol
        step = timeframe_ms(timeframe)
        now = await self.server_time_ms()
        end = now // step * step
        start = end - n * step
        candles = await self._klines(start, end, timeframe, symbol, now)
        for _ in range(WARMUP_EXTENSIONS):
            if len(candles) >= n:
                break
            start -= 2 * (n - len(candles)) * step  # history has holes: look further back
            candles = await self._klines(start, end, timeframe, symbol, now)
        if len(candles) < n:
            where = self.source.rest_url
            log.warning(
                "warmup: only %d of %d %s %s candles exist on %s", len(candles), n, symbol, timeframe, where
            )
        return candles[-n:] if n else candles[:0]

    # history -------------------------------------------------------------------------------

    async def _klines(
        self, start_ms: int, end_ms: int | None, timeframe: str, symbol: str, now: int | None
    ) -> CandleArray:
        step = timeframe_ms(timeframe)
        start = -(-start_ms // step) * step
        if end_ms is None:
            now = now if now is not None else await self.server_time_ms()
            end_ms = now // step * step
        if end_ms <= start:
            return CandleArray.from_candles([], timeframe)
        cache = self._cache(symbol, timeframe)
        days = range(start // DAY_MS * DAY_MS, end_ms, DAY_MS)
        loaded = {day: cache.load(day) if cache else None for day in days}
        parts = [c for c in loaded.values() if c is not None]
        self.stats.cached_days += len(parts)
        missing = [day for day, c in loaded.items() if c is None]
        if missing:
            now = now if now is not None else await self.server_time_ms()
            closed_end = now // step * step
            asked = (start, min(end_ms, closed_end))
            spans = self._spans(missing, asked, closed_end) if cache else [asked]
            fetched = await self._fetch(spans, timeframe, symbol, step)
            parts.append(fetched)
            for day in missing:
                if cache and day + DAY_MS + CACHE_SETTLE_MS <= now:
                    cache.store(day, fetched.between(day, day + DAY_MS))
        return concat_candles(parts, timeframe).between(start, end_ms)

    def _cache(self, symbol: str, timeframe: str) -> KlineCache | None:
        if self.cache_dir is None:
            return None
        return KlineCache(self.cache_dir, self.source.rest_url, self.source.category, symbol, timeframe)

    @staticmethod
    def _spans(missing: list[int], asked: tuple[int, int], closed_end: int) -> list[tuple[int, int]]:
        """Runs of consecutive missing days -> [from, to) ranges to fetch.

        Whole days are fetched so they can be cached; a day still running cannot be cached, so
        only the asked-for part of it is fetched.
        """
        spans: list[tuple[int, int]] = []
        for day in missing:
            complete = day + DAY_MS <= closed_end
            lo, hi = (day, day + DAY_MS) if complete else (max(day, asked[0]), min(day + DAY_MS, asked[1]))
            if lo >= hi:
                continue
            if spans and spans[-1][1] == lo:
                spans[-1] = (spans[-1][0], hi)
            else:
                spans.append((lo, hi))
        return spans

    async def _fetch(
        self, spans: list[tuple[int, int]], timeframe: str, symbol: str, step: int
    ) -> CandleArray:
        windows = [
            (w, min(w + PAGE_LIMIT * step, hi)) for lo, hi in spans for w in range(lo, hi, PAGE_LIMIT * step)
        ]
        show = self.progress and len(windows) > 1
        with Progress(len(windows), f"{symbol} {timeframe}", "page", LOG_EVERY_PAGES, show) as bar:

            async def page(lo: int, hi: int) -> list[Candle]:
                candles = await self._page(lo, hi, timeframe, symbol)
                bar.update()
                return candles

            pages = await asyncio.gather(*(page(lo, hi) for lo, hi in windows))
        candles = [c for p in pages for c in p]
        return concat_candles([CandleArray.from_candles(candles, timeframe)], timeframe)

    async def _page(self, lo: int, hi: int, timeframe: str, symbol: str) -> list[Candle]:
        """Closed candles with start in [lo, hi), hi - lo <= PAGE_LIMIT candles: one request."""
        params = {
            "category": self.source.category,
            "symbol": symbol,
            "interval": interval_code(timeframe),
            "start": str(lo),
            "end": str(hi - 1),
            "limit": str(PAGE_LIMIT),
        }
        body = await self._get(KLINE_PATH, params)
        self.stats.pages += 1
        rows = body.get("result", {}).get("list")
        if not isinstance(rows, list):
            raise BybitError(f"Bybit REST {KLINE_PATH} answered without result.list: {str(body)[:200]}")
        server_now = _server_time(body)
        out = []
        for row in rows:
            try:
                candle = candle_from_rest_row(row, server_now, timeframe)
            except CandleError as exc:
                self.stats.malformed_rows += 1
                log.warning("skipping a malformed kline row from Bybit: %s", exc)
                continue
            if candle.confirmed and lo <= candle.start_ms < hi:
                out.append(candle)
        return out

    # transport -----------------------------------------------------------------------------

    async def _get(self, path: str, params: dict[str, str]) -> dict[str, Any]:
        """One API call, retried on transient failures; a refusal retrying cannot fix raises BybitError."""
        loop = asyncio.get_running_loop()
        backoff = Backoff.from_source(self.source, self._rng)
        attempts = self.source.max_retries + 1
        for attempt in range(1, attempts + 1):
            while (pause := self._cooldown_until - loop.time()) > 0:
                await asyncio.sleep(pause)
            try:
                async with self._slots:
                    self.stats.requests += 1
                    return await self._get_once(path, params)
            except TransientFailure as exc:
                if attempt == attempts:
                    raise BybitUnavailable(
                        f"Bybit REST {path} failed {attempts} times (last: {exc}); check source.rest_url "
                        "and the network (HTTP 403 also means an IP ban or a blocked region), or retry later"
                    ) from exc
                delay = backoff.next_delay()
                self.stats.retries += 1
                if exc.throttled:
                    self._cooldown_until = max(self._cooldown_until, loop.time() + delay)
                log.warning(
                    "Bybit REST %s: %s; retry %d/%d in %.2f s", path, exc, attempt, attempts - 1, delay
                )
                await asyncio.sleep(delay)
        raise AssertionError("unreachable")

    async def _get_once(self, path: str, params: dict[str, str]) -> dict[str, Any]:
        url = self.source.rest_url.rstrip("/") + path
        try:
            async with self._client().get(url, params=params) as response:
                status = response.status
                if failure := status_failure(status):
                    self._answered = True  # the host is there, in trouble: worth waiting for
                    raise failure
                if status != 200:
                    raise BybitError(f"Bybit REST {url} answered HTTP {status}; check source.rest_url")
                raw = await response.read()
                content_type = response.content_type
        except (TimeoutError, aiohttp.ClientError) as exc:
            if not self._answered:
                raise BybitUnreachable(self._unreachable(exc)) from exc
            raise TransientFailure(f"{type(exc).__name__}: {exc}".rstrip(": ")) from exc
        if (body := json_object(raw)) is None:
            if not self._answered:
                raise BybitUnreachable(not_json(url, status, content_type, raw, "source.rest_url"))
            raise TransientFailure(f"answer is not a JSON object: {raw[:100]!r}")
        self._answered = True
        code = body.get("retCode")
        if code == RET_OK:
            return body
        message = f"retCode {code} {body.get('retMsg', '')!r}"
        if failure := code_failure(code, message):
            raise failure
        shown = {k: v for k, v in params.items() if k in ("category", "symbol", "interval", "start", "end")}
        raise BybitError(
            f"Bybit REST {path} refused {shown}: {message}; check source.symbol/category and the range"
        )

    def _unreachable(self, error: BaseException) -> str:
        url = self.source.rest_url
        return unreachable(url, error, "source.rest_url", serving(url), self.source.request_timeout_s)
