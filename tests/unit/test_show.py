"""A mode's results: one block on stdout, kept in the log file, never printed twice."""

from __future__ import annotations

import logging

import pytest

from forecaster.show import show


class Caught(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def test_a_block_is_printed_once_and_logged_to_its_own_logger_only(
    capsys: pytest.CaptureFixture[str],
) -> None:
    log_file, console = Caught(), Caught()
    results, root = logging.getLogger("forecaster.results"), logging.getLogger()
    # what conf/hydra/job_logging does: INFO, to the log file's handler
    results.setLevel(logging.INFO)
    results.addHandler(log_file)
    root.addHandler(console)
    try:
        show("validation split:", "model  0.51")
    finally:
        results.removeHandler(log_file)
        results.setLevel(logging.NOTSET)
        root.removeHandler(console)
    assert capsys.readouterr().out == "validation split:\nmodel  0.51\n", "no sweep label in a single run"
    assert log_file.messages == ["validation split:\nmodel  0.51"]
    assert not console.messages, "the console (root logger) does not get it a second time"
