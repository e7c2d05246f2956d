"""The emulator as its own process (`python -m forecaster.emulator`), for the demo and the tests."""

from __future__ import annotations

import re
import select
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

URLS = re.compile(r"rest_url=(\S+) ws_url=(\S+)")  # in the first line the emulator prints
START_TIMEOUT_S = 30
STOP_TIMEOUT_S = 10  # after SIGTERM; then it is killed
LOG_TAIL_CHARS = 500  # of its stderr, quoted when it does not start


class EmulatorDidNotStart(RuntimeError):
    """The emulator printed no URLs in time (bad arguments or data, or it crashed)."""


@dataclass(frozen=True)
class LaunchedEmulator:
    rest_url: str
    ws_url: str
    process: subprocess.Popen[str]  # its exit code is set once the context is left


@contextmanager
def launch_emulator(*args: str) -> Iterator[LaunchedEmulator]:
    """`python -m forecaster.emulator --port 0 ARGS` until the block ends, then SIGTERM (kill if it hangs).

    Its log (stderr) goes to a temporary file rather than the caller's console and is quoted in
    the error when it does not start.
    """
    command = [sys.executable, "-m", "forecaster.emulator", "--port", "0", *args]
    with (
        tempfile.TemporaryFile("w+") as log,
        subprocess.Popen(command, stdout=subprocess.PIPE, stderr=log, text=True) as process,
    ):
        assert process.stdout is not None
        try:
            ready, _, _ = select.select([process.stdout], [], [], START_TIMEOUT_S)
            found = URLS.search(process.stdout.readline()) if ready else None
            if found:
                yield LaunchedEmulator(found.group(1), found.group(2), process)
        finally:
            _stop(process)
        if not found:
            log.seek(0)
            raise EmulatorDidNotStart(
                f"the emulator did not start within {START_TIMEOUT_S} s: {log.read()[-LOG_TAIL_CHARS:]}"
            )


def _stop(process: subprocess.Popen[str]) -> None:
    process.terminate()
    try:
        process.wait(STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
