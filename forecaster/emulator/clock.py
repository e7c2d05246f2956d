"""The emulator's one simulated clock: REST and WS both ask it which candles are closed, so they agree."""

from __future__ import annotations

import asyncio
import contextlib
import time

from forecaster.candles import MINUTE_MS

REAL_TIME = 1 / 60  # candles per second at the exchange's own pace: one 1m candle a minute


class Clock:
    """Simulated exchange time from a settable origin, running at `speed` 1m candles per real second
    (the unit of source.speed; REAL_TIME is the exchange's pace)."""

    def __init__(self, now_ms: int, speed: float) -> None:
        if not speed > 0:
            raise ValueError(f"speed must be > 0 candles per second, got {speed}")
        self._ms_per_s = speed * MINUTE_MS  # simulated ms per real second
        self._changed = asyncio.Event()
        self._anchor(now_ms)

    def _anchor(self, now_ms: int) -> None:
        self._origin_ms = now_ms
        self._origin_real = time.monotonic()

    def now_ms(self) -> int:
        return self._origin_ms + int((time.monotonic() - self._origin_real) * self._ms_per_s)

    def set_now(self, now_ms: int) -> None:
        """Jump (forward, normally). Sleepers wake and see the new time."""
        self._anchor(now_ms)
        self._changed.set()
        self._changed = asyncio.Event()

    async def sleep_until(self, sim_ms: int) -> None:
        while (delay := (sim_ms - self.now_ms()) / self._ms_per_s) > 0:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):  # not wait_for: on 3.11 it can swallow a cancel
                    await self._changed.wait()
