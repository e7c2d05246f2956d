"""Progress bars only on a terminal; elsewhere plain log lines without carriage returns."""

from __future__ import annotations

import io
import logging

import pytest

from forecaster import progress
from forecaster.progress import Progress


def test_off_a_terminal_progress_is_a_log_line_every_n_steps_and_the_last(
    caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    bar = Progress(5, "BTCUSDT 1m", "page", 2)
    with caplog.at_level(logging.INFO, logger="forecaster.progress"):
        for _ in range(5):
            bar.update(loss="0.69")
    assert [r.getMessage() for r in caplog.records] == [
        "BTCUSDT 1m: 2/5 page (loss=0.69)",
        "BTCUSDT 1m: 4/5 page (loss=0.69)",
        "BTCUSDT 1m: 5/5 page (loss=0.69)",
    ]
    assert "\r" not in capsys.readouterr().err


def test_on_a_terminal_progress_is_a_bar_and_disabled_is_silent(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    terminal = io.StringIO()
    monkeypatch.setattr(progress, "on_terminal", lambda: True)
    monkeypatch.setattr("sys.stderr", terminal)
    with caplog.at_level(logging.INFO, logger="forecaster.progress"):
        with Progress(3, "train twohead", "epoch") as bar:
            bar.update(val="0.5")
        with Progress(3, "quiet", "epoch", enabled=False) as bar:
            bar.update()
    assert "train twohead" in terminal.getvalue() and "\r" in terminal.getvalue()
    assert "quiet" not in terminal.getvalue()
    assert not caplog.records
