"""Bybit v5 public market data as the client, the emulator and dryrun speak it (../shared/bybit/PROTOCOL.md).

Each fact of the protocol is written once here, so the emulator cannot drift from what the
client expects.
"""

from __future__ import annotations

from forecaster.candles import MINUTE_MS, timeframe_ms

KLINE_PATH = "/v5/market/kline"
TIME_PATH = "/v5/market/time"
SPOT = "spot"  # the category the emulator serves
WS_PATH = "/v5/public/spot"  # the public stream of SPOT
PAGE_LIMIT = 1000  # most rows Bybit returns per kline request
DEFAULT_LIMIT = 200  # rows per kline request when `limit` is not given
# A REST kline row is [startTime, *REST_ROW_FIELDS], every value a string; high comes before low.
REST_ROW_FIELDS = ("open", "high", "low", "close", "volume", "turnover")
MAX_ARGS_PER_SUBSCRIBE = 10  # spot only
# Bybit's interval codes that are whole minutes; D, W and M are not used.
INTERVALS = ("1", "3", "5", "15", "30", "60", "120", "240", "360", "720")
KLINE_TOPIC = "kline"  # topics are kline.<interval>.<symbol>
ALREADY_SUBSCRIBED = "already subscribed"  # in a refusal that is harmless: the topic is live

RET_OK = 0
RET_PARAM_ERROR = 10001
RET_RATE_LIMIT = 10006  # "Too many visits!"
# server timeout, too many visits, server error/restarting: worth another try
RETRYABLE_CODES = frozenset({10000, RET_RATE_LIMIT, 10016})
THROTTLE_CODES = frozenset({RET_RATE_LIMIT})
THROTTLE_STATUS = frozenset({403, 429})  # 403 is also a region block: retries end in a clear error


def interval_code(timeframe: str) -> str:
    """'5m' -> '5', Bybit's interval code."""
    return str(timeframe_ms(timeframe) // MINUTE_MS)


def topic_for(timeframe: str, symbol: str) -> str:
    return f"{KLINE_TOPIC}.{interval_code(timeframe)}.{symbol}"


# Order flow (PROTOCOL.md 7): publicTrade.<symbol> and orderbook.<depth>.<symbol>, spot
TRADE_TOPIC = "publicTrade"
BOOK_TOPIC = "orderbook"
BOOK_DEPTHS = (1, 50, 200)  # spot also has 1000; these are the depths the flow stream takes
BUY = "Buy"  # a trade's `S`, the taker side: "Buy" or "Sell"
SELL = "Sell"
BOOK_SNAPSHOT = "snapshot"  # a book push's `type`: a snapshot resets the book, a delta patches it
BOOK_DELTA = "delta"


def trade_topic(symbol: str) -> str:
    return f"{TRADE_TOPIC}.{symbol}"


def book_topic(depth: int, symbol: str) -> str:
    return f"{BOOK_TOPIC}.{depth}.{symbol}"
