"""Bybit v5 WebSocket text frames -> what they are: a push (candles), pong, subscription ack or refusal, junk.

Pure functions with no connection state, so a broken frame is a value to count and log, never an
exception that could end the stream.
"""

from __future__ import annotations

import enum
from typing import Any, NamedTuple

from forecaster.candles import Candle, CandleError, candle_from_ws
from forecaster.json_decode import loads
from forecaster.sources.bybit.protocol import ALREADY_SUBSCRIBED

LOGGED_TEXT_CHARS = 200


class Kind(enum.Enum):
    CANDLES = "candles"
    PUSH = "push"  # a topic's data, decoded but not parsed (`message`)
    PONG = "pong"
    ACK = "ack"
    REJECTED = "rejected"
    OTHER = "other"  # valid JSON we have no use for


class Parsed(NamedTuple):
    """What one frame is (a named tuple: every pushed message makes one, a frozen dataclass costs 1.5 us)."""

    kind: Kind
    candles: tuple[Candle, ...] = ()
    errors: tuple[str, ...] = ()  # one per malformed part; a message can be all errors
    detail: str = ""  # a refusal's ret_msg; a push's text
    message: dict[str, Any] | None = None  # a PUSH, decoded


def parse_message(text: str, topic: str, timeframe: str) -> Parsed:
    """One text frame of a kline connection -> what it is. Never raises: a broken frame is in `errors`."""
    parsed = parse_control(text)
    if parsed.kind is not Kind.PUSH:
        return parsed
    assert parsed.message is not None
    if parsed.message["topic"] != topic:
        return Parsed(Kind.OTHER, errors=(f"unexpected push: {text[:LOGGED_TEXT_CHARS]!r}",))
    return candles_from_push(parsed.message, timeframe, text)


def parse_control(text: str) -> Parsed:
    """One text frame -> PUSH (decoded, for its topic's parser), PONG, ACK, REJECTED or junk. Never raises."""
    try:
        message = loads(text)
    except ValueError as exc:
        return Parsed(Kind.OTHER, errors=(f"not JSON ({exc}): {text[:LOGGED_TEXT_CHARS]!r}",))
    if not isinstance(message, dict):
        return Parsed(Kind.OTHER, errors=(f"not a JSON object: {text[:LOGGED_TEXT_CHARS]!r}",))
    if "topic" in message:  # every pushed message: positional, as keywords cost a named tuple 1 us more
        return Parsed(Kind.PUSH, (), (), text, message)
    ret_msg = str(message.get("ret_msg", ""))
    if ret_msg == "pong" or message.get("op") == "pong":  # spot answers op "ping"; others op "pong"
        return Parsed(Kind.PONG)
    if message.get("op") == "subscribe":
        if message.get("success") is True or ALREADY_SUBSCRIBED in ret_msg:
            return Parsed(Kind.ACK)
        return Parsed(Kind.REJECTED, detail=ret_msg)
    if message.get("op") == "unsubscribe":  # before a resubscribe (a book out of sync)
        return Parsed(Kind.OTHER)
    return Parsed(Kind.OTHER, errors=(f"unexpected message: {text[:LOGGED_TEXT_CHARS]!r}",))


def candles_from_push(message: dict[str, Any], timeframe: str, text: str) -> Parsed:
    """A decoded kline push -> CANDLES, one error per bad item."""
    data = message.get("data")
    if not isinstance(data, list):
        return Parsed(Kind.OTHER, errors=(f"unexpected push: {text[:LOGGED_TEXT_CHARS]!r}",))
    candles, errors = [], []
    for item in data:
        try:
            candles.append(candle_from_ws(item, timeframe))
        except (CandleError, TypeError) as exc:  # TypeError: an item that is not an object
            errors.append(str(exc)[:LOGGED_TEXT_CHARS])
    return Parsed(Kind.CANDLES, tuple(candles), tuple(errors))
