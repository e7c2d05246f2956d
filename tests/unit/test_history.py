"""History over a period: an empty one names its source and what the model knew; a short one warns."""

from __future__ import annotations

import logging
from dataclasses import replace

import pytest

from forecaster.candles import utc_text
from forecaster.config import compose_config
from forecaster.data import SAMPLE_CSV
from forecaster.errors import UserError
from forecaster.history import load_history

CONFIG = compose_config(["source=replay", "tracking=off"])


def test_times_in_messages_read_as_utc() -> None:
    assert utc_text(1_733_011_200_000) == "2024-12-01 00:00"


def test_an_empty_period_names_the_file_and_the_trained_range() -> None:
    data = replace(CONFIG.data, start="2025-01-01", end="2025-02-01")
    with pytest.raises(UserError) as caught:
        load_history(CONFIG.source, data, "1m", CONFIG.paths, trained="2024-12-01T00:00Z..2024-12-03T23:59Z")
    message = str(caught.value)
    assert "(2025-01-01 .. 2025-02-01)" in message and str(SAMPLE_CSV) in message
    assert message.endswith("the model was trained on 2024-12-01T00:00Z..2024-12-03T23:59Z")


def test_an_end_after_the_newest_candle_warns(caplog: pytest.LogCaptureFixture) -> None:
    data = replace(CONFIG.data, start="2024-12-05", end="2025-01-01")
    with caplog.at_level(logging.WARNING):
        candles = load_history(CONFIG.source, data, "1m", CONFIG.paths)
    assert len(candles) == 1440
    assert "data.end 2025-01-01 00:00 UTC is after the newest candle of " in caplog.text
    assert "(2024-12-05 23:59 UTC): the period ends there" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        load_history(CONFIG.source, replace(data, end="2024-12-06"), "1m", CONFIG.paths)
    assert "newest candle" not in caplog.text, "an end right after the last candle is no shorter period"
