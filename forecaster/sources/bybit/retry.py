"""When to try Bybit again and how long to wait: shared by the REST client and the WebSocket stream."""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from forecaster.sources.bybit.protocol import RETRYABLE_CODES, THROTTLE_CODES, THROTTLE_STATUS
from forecaster.sources.bybit.source import BybitSource

SERVER_ERROR_STATUS = 500  # this status and above: the server failed, the request may succeed later
MAX_DOUBLINGS = 62  # caps the exponent: base * 2**n never overflows a float, however long retries go on


class TransientFailure(Exception):
    """A failure worth another try; `throttled` ones pause every request of the client, not just this one."""

    def __init__(self, reason: str, throttled: bool = False) -> None:
        super().__init__(reason)
        self.throttled = throttled


def status_failure(status: int) -> TransientFailure | None:
    """The transient failure an HTTP status means (rate limit, ban, 5xx), or None."""
    if status in THROTTLE_STATUS or status >= SERVER_ERROR_STATUS:
        return TransientFailure(f"HTTP {status}", throttled=status in THROTTLE_STATUS)
    return None


def code_failure(code: object, message: str) -> TransientFailure | None:
    """The transient failure a retCode means (timeout, too many visits, restarting), or None."""
    if code in RETRYABLE_CODES:
        return TransientFailure(message, throttled=code in THROTTLE_CODES)
    return None


@dataclass
class Backoff:
    """Exponential backoff with half jitter: the n-th delay is uniform in [d/2, d], d = min(cap, base*2**n).

    Jitter spreads clients that failed together; the lower half-bound keeps a retry from firing at
    once, which matters against Bybit's limit on new connections per 5 minutes.
    """

    base_s: float
    cap_s: float
    rng: random.Random = field(default_factory=random.Random)
    attempt: int = 0

    @classmethod
    def from_source(cls, source: BybitSource, rng: random.Random | None = None) -> Backoff:
        return cls(source.backoff_base_s, source.max_backoff_s, rng or random.Random())

    def next_delay(self) -> float:
        ceiling = min(self.cap_s, self.base_s * 2 ** min(self.attempt, MAX_DOUBLINGS))
        self.attempt += 1
        return self.rng.uniform(ceiling / 2, ceiling)

    def reset(self) -> None:
        self.attempt = 0
