"""`make demo`: a live session against the local Bybit emulator, offline, in under a minute.

Starts `forecaster.emulator` on a free port of 127.0.0.1 over the shipped sample at high speed,
runs `python -m forecaster mode=live` against it for a few hundred candles (extra arguments are
passed on as overrides), then stops the emulator and says where the records and MLflow run are.
"""

from __future__ import annotations

import argparse
import re
import select
import subprocess
import sys
import tempfile
from typing import IO

from forecaster.data import SAMPLE_CSV

URLS = re.compile(r"rest_url=(\S+) ws_url=(\S+)")
EMULATOR_START_TIMEOUT_S = 30
EMULATOR_STOP_TIMEOUT_S = 10


def _start_emulator(data: str, speed: float, log: IO[str]) -> tuple[subprocess.Popen, str, str]:
    """The emulator process and its REST and WS URLs; a clear exit if it does not come up in time."""
    command = [
        sys.executable,
        "-m",
        "forecaster.emulator",
        "--data",
        data,
        "--port",
        "0",
        "--speed",
        str(speed),
    ]
    emulator = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=log, text=True)
    assert emulator.stdout is not None
    ready, _, _ = select.select([emulator.stdout], [], [], EMULATOR_START_TIMEOUT_S)
    found = URLS.search(emulator.stdout.readline()) if ready else None
    if not found:
        _stop(emulator)
        log.seek(0)
        sys.exit(f"demo: the emulator did not start within {EMULATOR_START_TIMEOUT_S} s: {log.read()[-500:]}")
    return emulator, found.group(1), found.group(2)


def _stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(EMULATOR_STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m forecaster.demo", description=__doc__.split("\n")[0])
    parser.add_argument("--candles", type=int, default=300, help="live candles to predict (default 300)")
    parser.add_argument("--speed", type=float, default=600, help="emulator speed: 600 = 10 candles/s")
    parser.add_argument("--data", default=str(SAMPLE_CSV), help="1m candle CSV(.gz) (default: the sample)")
    args, overrides = parser.parse_known_args()
    with tempfile.TemporaryFile("w+") as log:
        emulator, rest_url, ws_url = _start_emulator(args.data, args.speed, log)
        try:
            print(
                f"demo: Bybit emulator on {rest_url} (x{args.speed:g}); live mode for {args.candles} candles"
            )
            live = [sys.executable, "-m", "forecaster", "mode=live", f"source.rest_url={rest_url}"]
            live += [f"source.ws_url={ws_url}", f"live.max_candles={args.candles}", *overrides]
            code = subprocess.call(live)
        finally:
            emulator.stdout.close()  # type: ignore[union-attr]
            _stop(emulator)
    if code == 0:
        print("demo: done. Records (candles/predictions/facts.jsonl) are in the run dir above; `make ui`")
    sys.exit(code)


if __name__ == "__main__":
    main()
