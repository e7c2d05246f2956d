"""Higher timeframes: candles aggregated from the 1m stream agree with Bybit's native intervals."""

from __future__ import annotations

import numpy as np
import pytest

from forecaster.candles import MINUTE_MS, aggregate
from forecaster.sources.bybit.rest import BybitRest
from tests.bybit_fixtures import DAY1, emulator, fast_source


@pytest.mark.parametrize("timeframe", ["5m", "15m", "60m"])
async def test_aggregated_equals_native_on_the_emulator(timeframe: str) -> None:
    start, end = DAY1, DAY1 + 1440 * MINUTE_MS  # one whole day, already closed at the emulator's "now"
    async with emulator() as emu, BybitRest(fast_source(emu), progress=False) as rest:
        native = await rest.klines(start, end, timeframe)
        one_minute = await rest.klines(start, end, "1m")
    aggregated = aggregate(one_minute, timeframe)
    assert aggregated.incomplete.size == 0 and aggregated.pending is None
    ours = aggregated.candles
    assert len(ours) == len(native) == 1440 * MINUTE_MS // (ours.start_ms[1] - ours.start_ms[0])
    for column in ("start_ms", "open", "high", "low", "close"):
        assert np.array_equal(getattr(ours, column), getattr(native, column)), column
    np.testing.assert_allclose(ours.volume, native.volume, rtol=1e-9)
