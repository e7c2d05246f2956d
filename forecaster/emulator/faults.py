"""What the emulator can break, and the broken answers it gives, as the real service does."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

BAN_PAGE = "<html><body><h1>403 Forbidden</h1>access too frequent</body></html>"
ERROR_PAGE = "<html><body><h1>503 Service Temporarily Unavailable</h1></body></html>"
MALFORMED_FRAME = '{"topic": "kline.1.BTCUSDT", "data": [{"start": '


def _fault(default: float, help_text: str) -> Any:
    return field(default=default, metadata={"help": help_text})


@dataclass
class Faults:
    """What to break; 0 switches a fault off. On the WebSocket "every N" counts candles by start
    time (the same candles on every connection) unless it names what it counts (trade messages,
    book deltas: of one connection), and "after N" counts the kline pushes of one connection; on
    REST "every N" counts requests. Tests flip these fields while the server runs."""

    drop_after: int = _fault(
        0,
        "WS: the server cuts each connection abruptly after N kline pushes; with --stall-after too, "
        "the connections take turns: the 1st, 3rd, ... are cut, the 2nd, 4th, ... stall",
    )
    stall_after: int = _fault(
        0,
        "WS: after N kline pushes the connection stays open, silent, no pong; with --drop-after too, "
        "only the 2nd, 4th, ... connection stalls",
    )
    malformed_every: int = _fault(0, "WS: a broken frame before every Nth kline push of a connection")
    duplicate_every: int = _fault(0, "WS: the confirm push of every Nth candle is sent twice")
    reorder_every: int = _fault(0, "WS: every Nth candle's confirm comes after the next candle's confirm")
    skip_every: int = _fault(0, "WS: every Nth candle gets no push at all (REST still has it)")
    trade_duplicate_every: int = _fault(
        0, "WS: every Nth trade message of a connection is sent twice (the same trade ids again)"
    )
    book_gap_every: int = _fault(0, "WS: every Nth book delta of a connection skips an update id (u + 2)")
    book_cross_every: int = _fault(
        0, "WS: every Nth book delta of a connection adds a bid at the best ask (crossed until the next)"
    )
    book_stale_every: int = _fault(0, "WS: every Nth candle gets no book delta while its trades go on")
    book_restart_every: int = _fault(
        0, "WS: every Nth candle starts with a book snapshot with u = 1, as after a service restart"
    )
    rest_delay_s: float = _fault(0.0, "REST: every answer is this late")
    http_error_every: int = _fault(0, "REST: every Nth request is answered HTTP 503 with an HTML page")
    rate_limit: int = _fault(0, "REST: requests allowed per rate_window_s; beyond: retCode 10006")
    rate_window_s: float = _fault(1.0, "seconds per rate_limit window")
    ban_factor: float = _fault(2.0, "REST: beyond rate_limit * ban_factor: HTTP 403 (IP ban page)")

    def cut_after(self, connection: int) -> tuple[int, int]:
        """(drop_after, stall_after) for the n-th connection (from 1) of the server.

        On one connection the smaller of the two would always fire first and the other never: with
        both set the connections take turns, so that one emulator run shows both failures.
        """
        if not (self.drop_after and self.stall_after):
            return self.drop_after, self.stall_after
        return (self.drop_after, 0) if connection % 2 else (0, self.stall_after)

    @staticmethod
    def hits(every: int, index: int) -> bool:
        return every > 0 and index % every == 0


class RateLimiter:
    """A fixed window counter, like Bybit's per-window IP limit."""

    def __init__(self) -> None:
        self._window_start = 0.0
        self._count = 0

    def count(self, window_s: float) -> int:
        now = time.monotonic()
        if now - self._window_start >= window_s:
            self._window_start, self._count = now, 0
        self._count += 1
        return self._count


def broken_frame(n: int, topic: str, item: dict[str, Any], ts: int) -> str:
    """The n-th broken frame of a connection: broken JSON and an impossible candle, alternately."""
    return MALFORMED_FRAME if n % 2 else _impossible_candle(topic, item, ts)


def _impossible_candle(topic: str, item: dict[str, Any], ts: int) -> str:
    """Valid JSON, invalid candle (high below low): a parser must reject it without dying."""
    bad = {**item, "high": "1", "low": "2"}
    return json.dumps({"topic": topic, "data": [bad], "ts": ts, "type": "snapshot"})
