"""Through the real entry point: a host that never answers ends the command in seconds, with one line.

Retrying a refused connection or a failed DNS lookup used to cost 96-110 s (8 retries with
backoff) and MLflow's own retries minutes more; the subprocess timeout is well below that, so a
return of those retries fails here by timeout, without a timing assert.
"""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from tests.conftest import run_cli

WAIT_S = 60  # a failure now takes a few seconds (startup included); the old retries took 100 s and more


@pytest.fixture
def closed_port() -> int:
    with socket.socket() as sock:  # bound, then closed: nobody listens there, a connect is refused
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (
            ["mode=train", "source.rest_url=http://127.0.0.1:{port}", "data.days=1", "tracking=off"],
            "ERROR cannot reach http://127.0.0.1:{port}: connection refused by 127.0.0.1:{port} "
            "(is the emulator running? check source.rest_url)",
        ),
        (
            ["mode=live", "source=replay", "tracking.uri=http://nonexistent.invalid:5000"],
            "ERROR MLflow: cannot reach http://nonexistent.invalid:5000: DNS lookup failed for "
            "nonexistent.invalid (no network, or a typo in tracking.uri?); or run with tracking=off",
        ),
    ],
    ids=["train_rest_refused", "live_tracking_dns"],
)
def test_an_unreachable_host_is_one_line_in_seconds(
    args: list[str], expected: str, closed_port: int, tmp_path: Path
) -> None:
    result = run_cli(*(a.format(port=closed_port) for a in args), cwd=tmp_path, timeout=WAIT_S)
    assert result.returncode == 2, result.stderr[-2000:]
    assert "Traceback" not in result.stderr and "retry" not in result.stderr
    (line,) = [line for line in result.stderr.splitlines() if "ERROR" in line]
    assert line.endswith(expected.format(port=closed_port)), line
